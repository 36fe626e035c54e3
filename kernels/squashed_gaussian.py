"""Triton kernels for the tanh-squashed Gaussian (continuous SAC): forward and backward in one pass each.

Contract: ``fastsac/ops/reference.py`` (same signatures, same semantics, same numerics). Inputs are ``(N, A)``
row-major tensors; each program owns a tile of ``BLOCK_N`` rows x ``BLOCK_A = next_pow2(A)`` columns (masked), so
the per-row log-prob sum is a register reduction. Math runs in float32 whatever the input dtype (float32, bfloat16,
float16); outputs come back in the input dtype. float64 is left to the torch / C++ backends.

Numerics (as the reference): ``tanh(u)``, ``1 - tanh(u)^2`` and ``log(1 - tanh(u)^2)`` are all formed from
``e = exp(-2|u|)``, so they stay exact and finite when tanh saturates (|u| of 20 or 50). There is no ``tl.tanh`` /
``tl.log1p`` in the Triton interpreter (and libdevice is unusable there), hence the helper below.

``want_sum`` (the fused alpha-loss pass): each program writes the sum of its rows' float32 log-probs to one slot of a
``(num_programs,)`` buffer and the launcher sums that buffer: deterministic, no atomics.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from . import _launch

# ----------------------------------------------------------------------------------------------------------------
# Constants
# ----------------------------------------------------------------------------------------------------------------
LOG_SQRT_2PI = tl.constexpr(0.5 * math.log(2.0 * math.pi))
LOG_2 = tl.constexpr(math.log(2.0))

SUPPORTED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)

# Launch shape on the GPU. Both kernels are memory-bound (fwd reads 3 and writes 1 (N, A) tensor, bwd reads 4 and
# writes 2), so what matters is the bytes of loads in flight per SM: an H100 needs roughly 20-40 KB per SM to
# cover HBM3 latency (3.35 TB/s x ~0.7-1.5 us / 132 SMs). Register use, read from the AOT-compiled sm_90 cubins
# (cuobjdump --dump-resource-usage, all flags on, fp32, A = 6 / 17): 8 lanes per thread -> fwd 97 / 86, bwd 94 / 64
# registers; 16 lanes per thread -> fwd ~147, bwd ~189 (one program per SM: its loads never overlap another's math).
# So: 8 lanes per thread, 8 warps, a 2048-lane tile (A = 6: 256 rows; A = 17: 64 rows of 32 lanes). At least 2
# programs fit on an SM: >= 48 KB (fwd) / 64 KB (bwd) of fp32 loads in flight per SM, half that for
# bf16/fp16. N = 2^20 gives 4096 (A = 6) or 16384 (A = 17) programs, >= 10 waves, so the tail wave costs < 10%.
# Padding lanes (A = 6 -> 8, A = 17 -> 32) issue no memory traffic, and a warp-wide load still covers contiguous
# memory (fp32: 96 B for A = 6, 68 B for A = 17), so the load/store units issue far fewer instructions than the
# ~15 B/clk/SM that HBM feeds an SM could absorb. Reasoned, not yet measured on the H100: retune these three
# numbers with `bench/bench_ops.py --device cuda --ops squashed_gaussian` and record the figure here.
GPU_TILE_LANES = 2048  # BLOCK_N * BLOCK_A, padding included; BLOCK_N = GPU_TILE_LANES // BLOCK_A (capped by N)
LANES_PER_THREAD = 8  # num_warps = tile lanes / (32 * LANES_PER_THREAD): 8 warps at a full tile, fewer for small N
MAX_NUM_WARPS = 16  # reached only for A > 2048 (one row per program, BLOCK_A lanes)
# Longest row: 16 warps x 8 lanes. Beyond, lanes per thread (and registers: 189 at 16 lanes in the bwd) double and a
# 512-thread program would no longer fit an SM's 64K registers. SAC action spaces have A <= 64 or so.
MAX_A = 4096

# Under TRITON_INTERPRET=1 (tests on CPU tensors) each program instance costs ~15 ms of Python, whatever its size,
# so the launcher uses one huge tile instead: 2^16 lanes covers N=300 x A=64 in a single program.
INTERPRET_TILE_LANES = 1 << 16

# Whether the kernels below are interpreted (read at import, when @triton.jit reads it).
_INTERPRETED = _launch.INTERPRETED

# Test hooks (never set in library code): the allocator for outputs and partial sums (tests swap in NaN-filled
# buffers to prove every element is written), and a forced BLOCK_N (tests use it to run several programs with a
# ragged last tile under the interpreter).
_alloc = torch.empty
_FORCE_BLOCK_N: int | None = None


# ----------------------------------------------------------------------------------------------------------------
# Kernels
# ----------------------------------------------------------------------------------------------------------------
@triton.jit
def _tanh_parts(x):
    """``(|x|, e, tanh(x))`` with ``e = exp(-2|x|)``: exact for any finite x (no tl.tanh in the interpreter)."""
    ax = tl.abs(x)
    e = tl.exp(-2.0 * ax)
    t = (1.0 - e) / (1.0 + e)
    t = tl.where(x < 0.0, -t, t)
    return ax, e, t


@triton.jit
def _sample(mean_ptr, log_std_ptr, noise_ptr, offs, mask, mid, half_range, HAS_BOUNDS: tl.constexpr):
    """Load a tile and form the sample: ``(noise, log_std, e_raw, sigma, |u|, e, tanh(u))`` in float32, with
    ``e = exp(-2|u|)`` and ``e_raw = exp(-2|raw|)`` (the bound's Jacobian; 0 without bounds). Shared by the forward
    and the backward, which recomputes it from the inputs (nothing else is saved)."""
    m = tl.load(mean_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    s = tl.load(log_std_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    n = tl.load(noise_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    e_raw = s * 0.0
    if HAS_BOUNDS:  # the argument is the raw output: log_std = lo + (hi - lo)/2 * (tanh(raw) + 1)
        _, e_raw, t_raw = _tanh_parts(s)
        # Same value written as (lo + hi)/2 + (hi - lo)/2 * tanh(raw): no cancellation between lo and the rest,
        # which costs the reference's float32 form up to ulp(|lo|) of absolute error in log_std (and sigma).
        s = mid + half_range * t_raw
    sigma = tl.exp(s)
    u = m + sigma * n
    abs_u, e, a = _tanh_parts(u)
    return n, s, e_raw, sigma, abs_u, e, a


@triton.jit
def _squashed_gaussian_fwd_kernel(
    mean_ptr,
    log_std_ptr,
    noise_ptr,
    scale_ptr,
    bias_ptr,
    action_ptr,
    log_prob_ptr,
    partial_ptr,
    N,
    A,
    mid,
    half_range,
    HAS_SCALE: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    HAS_BOUNDS: tl.constexpr,
    WANT_SUM: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_A: tl.constexpr,
):
    pid, rows, cols, row_mask, col_mask, mask, offs = _launch.row_tile(N, A, BLOCK_N, BLOCK_A)

    n, s, _, _, abs_u, e, a = _sample(mean_ptr, log_std_ptr, noise_ptr, offs, mask, mid, half_range, HAS_BOUNDS)
    # log1p(e) as log(1 + e): its absolute error (<= 2^-24) is that of rounding log 2 here, so an exact log1p
    # (absent from the interpreter) would buy nothing in float32; for saturated u it is simply ~e -> 0.
    log_one_minus_a2 = 2.0 * (LOG_2 - abs_u - tl.log(1.0 + e))
    term = -0.5 * n * n - s - LOG_SQRT_2PI - log_one_minus_a2

    action = a
    if HAS_SCALE:
        scale = tl.load(scale_ptr + cols, mask=col_mask, other=1.0).to(tl.float32)
        action = action * scale[None, :]
        term = term - tl.log(tl.abs(scale))[None, :]
    if HAS_BIAS:
        bias = tl.load(bias_ptr + cols, mask=col_mask, other=0.0).to(tl.float32)
        action = action + bias[None, :]

    log_prob = tl.sum(tl.where(mask, term, 0.0), axis=1)
    tl.store(action_ptr + offs, action.to(action_ptr.dtype.element_ty), mask=mask)
    tl.store(log_prob_ptr + rows, log_prob.to(log_prob_ptr.dtype.element_ty), mask=row_mask)
    if WANT_SUM:  # unrounded fp32 per-row values; padded rows contribute 0
        tl.store(partial_ptr + pid, tl.sum(tl.where(row_mask, log_prob, 0.0), axis=0))


@triton.jit
def _squashed_gaussian_bwd_kernel(
    grad_action_ptr,
    grad_log_prob_ptr,
    mean_ptr,
    log_std_ptr,
    noise_ptr,
    scale_ptr,
    d_mean_ptr,
    d_log_std_ptr,
    N,
    A,
    mid,
    half_range,
    HAS_SCALE: tl.constexpr,
    HAS_BOUNDS: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_A: tl.constexpr,
):
    pid, rows, cols, row_mask, col_mask, mask, offs = _launch.row_tile(N, A, BLOCK_N, BLOCK_A)

    # Recompute u, a, sigma from the inputs (nothing but the inputs is saved for backward).
    n, _, e_raw, sigma, _, e, a = _sample(mean_ptr, log_std_ptr, noise_ptr, offs, mask, mid, half_range, HAS_BOUNDS)
    one_plus_e = 1.0 + e
    one_minus_a2 = 4.0 * e / (one_plus_e * one_plus_e)  # keeps relative accuracy when tanh saturates

    g_a = tl.load(grad_action_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    if HAS_SCALE:
        scale = tl.load(scale_ptr + cols, mask=col_mask, other=1.0).to(tl.float32)
        g_a = g_a * scale[None, :]
    g_lp = tl.load(grad_log_prob_ptr + rows, mask=row_mask, other=0.0).to(tl.float32)[:, None]

    d_u = g_a * one_minus_a2 + g_lp * 2.0 * a
    d_s = d_u * sigma * n - g_lp
    if HAS_BOUNDS:  # chain through the bound: d log_std / d raw = (hi - lo)/2 * (1 - tanh(raw)^2)
        one_plus_e_raw = 1.0 + e_raw
        d_s = d_s * (half_range * (4.0 * e_raw / (one_plus_e_raw * one_plus_e_raw)))

    tl.store(d_mean_ptr + offs, d_u.to(d_mean_ptr.dtype.element_ty), mask=mask)
    tl.store(d_log_std_ptr + offs, d_s.to(d_log_std_ptr.dtype.element_ty), mask=mask)


# ----------------------------------------------------------------------------------------------------------------
# Launchers
# ----------------------------------------------------------------------------------------------------------------
def _gpu_launch_config(n_rows: int, n_cols: int) -> tuple[int, int, int]:
    """``(BLOCK_N, BLOCK_A, num_warps)`` launched on the GPU for an ``(n_rows, n_cols)`` problem."""
    return _launch.gpu_launch_config(
        n_rows, n_cols, tile_lanes=GPU_TILE_LANES, lanes_per_thread=LANES_PER_THREAD, max_num_warps=MAX_NUM_WARPS
    )


def _launch_config(n_rows: int, n_cols: int, device: torch.device) -> tuple[int, int, int]:
    return _launch.launch_config(
        n_rows, n_cols, device, gpu_config=_gpu_launch_config, interpret_tile_lanes=INTERPRET_TILE_LANES,
        force_block_n=_FORCE_BLOCK_N,
    )


def _check_device(t: torch.Tensor) -> None:
    if t.device.type != "cuda" and not _INTERPRETED:
        raise RuntimeError(
            f"fastsac.kernels: Triton kernels need CUDA tensors (got {t.device}); on CPU they run only under "
            "TRITON_INTERPRET=1 (tests), set before fastsac.kernels is imported"
        )


def _check_inputs(mean, log_std, noise, scale, bias, lo, hi, what: str) -> None:
    if mean.dim() != 2:
        raise ValueError(f"{what}: mean must be 2-D (N, A), got shape {tuple(mean.shape)}")
    if mean.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"{what}: dtype {mean.dtype} not supported by the Triton backend (float32/bfloat16/float16)")
    for name, t in (("log_std", log_std), ("noise", noise)):
        if t.shape != mean.shape or t.dtype != mean.dtype or t.device != mean.device:
            raise ValueError(
                f"{what}: {name} must match mean (shape {tuple(mean.shape)}, {mean.dtype}, {mean.device}); got "
                f"{tuple(t.shape)}, {t.dtype}, {t.device}"
            )
    for name, t in (("mean", mean), ("log_std", log_std), ("noise", noise)):
        if not t.is_contiguous():
            raise ValueError(f"{what}: {name} must be contiguous (strides {t.stride()})")
    A = mean.shape[1]
    if not 1 <= A <= MAX_A:
        raise ValueError(
            f"{what}: the Triton backend supports action dimensions 1 <= A <= {MAX_A}, got shape {tuple(mean.shape)}; "
            "use the torch backend"
        )
    for name, t in (("scale", scale), ("bias", bias)):
        if t is None:
            continue
        if t.shape != (A,) or t.dtype != torch.float32 or t.device != mean.device or not t.is_contiguous():
            raise ValueError(
                f"{what}: {name} must be a contiguous float32 tensor of shape ({A},) on {mean.device}; got "
                f"{tuple(t.shape)}, {t.dtype}, {t.device}, strides {t.stride()}"
            )
    if (lo is None) != (hi is None):
        raise ValueError(f"{what}: lo and hi must both be given or both be None")
    if lo is not None and not float(lo) < float(hi):
        raise ValueError(f"{what}: need lo < hi, got lo={lo}, hi={hi}")
    _check_device(mean)


def _bounds_args(lo, hi) -> tuple[float, float]:
    """``(mid, half_range)`` of the log-std bounds (computed in double, passed as float32 kernel arguments)."""
    if lo is None:
        return 0.0, 0.0
    return 0.5 * (float(lo) + float(hi)), 0.5 * (float(hi) - float(lo))


def squashed_gaussian_fwd(mean, log_std, noise, scale, bias, lo, hi, want_sum):
    """``(action, log_prob, lp_sum)``: see ``fastsac.ops.reference.squashed_gaussian_fwd``."""
    _check_inputs(mean, log_std, noise, scale, bias, lo, hi, "squashed_gaussian_fwd")
    N, A = mean.shape
    action = _alloc((N, A), dtype=mean.dtype, device=mean.device)
    log_prob = _alloc((N,), dtype=mean.dtype, device=mean.device)
    if N == 0:
        lp_sum = torch.zeros((), dtype=torch.float32, device=mean.device) if want_sum else None
        return action, log_prob, lp_sum
    block_n, block_a, num_warps = _launch_config(N, A, mean.device)
    grid = triton.cdiv(N, block_n)
    partial = _alloc((grid,), dtype=torch.float32, device=mean.device) if want_sum else log_prob  # unused if not
    mid, half_range = _bounds_args(lo, hi)
    with _launch.on_device(mean.device):
        _squashed_gaussian_fwd_kernel[(grid,)](
            mean, log_std, noise,
            scale if scale is not None else mean,  # dummy pointer, never read when HAS_SCALE is False
            bias if bias is not None else mean,
            action, log_prob, partial,
            N, A, mid, half_range,
            HAS_SCALE=scale is not None,
            HAS_BIAS=bias is not None,
            HAS_BOUNDS=lo is not None,
            WANT_SUM=bool(want_sum),
            BLOCK_N=block_n,
            BLOCK_A=block_a,
            num_warps=num_warps,
        )  # fmt: skip
    lp_sum = partial.sum() if want_sum else None
    return action, log_prob, lp_sum


def squashed_gaussian_bwd(grad_action, grad_log_prob, mean, log_std, noise, scale, lo, hi):
    """``(d_mean, d_log_std)``: see ``fastsac.ops.reference.squashed_gaussian_bwd``."""
    _check_inputs(mean, log_std, noise, scale, None, lo, hi, "squashed_gaussian_bwd")
    N, A = mean.shape
    if grad_action.shape != (N, A) or grad_log_prob.shape != (N,):
        raise ValueError(
            f"squashed_gaussian_bwd: grad_action must be ({N}, {A}) and grad_log_prob ({N},); got "
            f"{tuple(grad_action.shape)} and {tuple(grad_log_prob.shape)}"
        )
    for name, g in (("grad_action", grad_action), ("grad_log_prob", grad_log_prob)):
        if g.dtype not in SUPPORTED_DTYPES or g.device != mean.device or not g.is_contiguous():
            raise ValueError(
                f"squashed_gaussian_bwd: {name} must be a contiguous float32/bfloat16/float16 tensor on "
                f"{mean.device}; got {g.dtype}, {g.device}, strides {g.stride()}"
            )
    d_mean = _alloc((N, A), dtype=mean.dtype, device=mean.device)
    d_log_std = _alloc((N, A), dtype=mean.dtype, device=mean.device)
    if N == 0:
        return d_mean, d_log_std
    block_n, block_a, num_warps = _launch_config(N, A, mean.device)
    grid = triton.cdiv(N, block_n)
    mid, half_range = _bounds_args(lo, hi)
    with _launch.on_device(mean.device):
        _squashed_gaussian_bwd_kernel[(grid,)](
            grad_action, grad_log_prob, mean, log_std, noise,
            scale if scale is not None else mean,  # dummy pointer, never read when HAS_SCALE is False
            d_mean, d_log_std,
            N, A, mid, half_range,
            HAS_SCALE=scale is not None,
            HAS_BOUNDS=lo is not None,
            BLOCK_N=block_n,
            BLOCK_A=block_a,
            num_warps=num_warps,
        )  # fmt: skip
    return d_mean, d_log_std
