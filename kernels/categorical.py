"""Triton kernels for the categorical policy (discrete SAC): softmax, log-softmax and entropy in one pass.

Contract: ``fastsac/ops/reference.py`` (same signatures, same semantics). Inputs are ``(N, A)`` row-major logits;
each program owns ``BLOCK_N`` rows x ``BLOCK_A = next_pow2(A)`` columns, so every row sits in registers whole and
the max / sum / entropy reductions are register reductions (one read of the logits, one write of each output).
Math in float32; outputs in the input dtype (float32, bfloat16, float16).

Masked actions: ``-inf`` logits give probability 0, log-probability ``-inf`` and contribute ``0 * log 0 = 0`` to
the entropy (and nothing to the gradient's entropy term), exactly as the reference. A row whose logits are all
``-inf`` has no distribution; it yields NaN, as the reference does.

Row length: one tile holds a whole row, up to ``MAX_A = 8192`` columns (``A = 1024`` runs 2 rows per program).
Longer rows are rejected with a ValueError (the caller falls back to the torch backend); a looped online-softmax
variant would be needed beyond that, and discrete SAC action spaces are far smaller.
"""

from __future__ import annotations


import torch
import triton
import triton.language as tl

from . import _launch

# ----------------------------------------------------------------------------------------------------------------
# Constants
# ----------------------------------------------------------------------------------------------------------------
SUPPORTED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)

# Launch shape on the GPU. Memory-bound like the squashed Gaussian (fwd reads 1 and writes 2 (N, A) tensors, bwd
# reads 3 and writes 1); an H100 needs roughly 20-40 KB of loads in flight per SM to cover HBM3 latency. Register
# use read from the AOT-compiled sm_90 cubins (cuobjdump --dump-resource-usage, fp32): at 8 lanes per thread and
# 8 warps, fwd 64 and bwd 60-63 registers, so 4 programs fit on an SM: 32 KB (fwd) / 96 KB (bwd) of fp32 loads in
# flight per SM (the fwd reads a single tensor; its bf16 case, 16 KB, is the first to retune). N = 2^20 gives
# >= 4096 programs for A <= 8 (>= 8 waves). Rows longer than the tile get a tile of their own (BLOCK_N = 1) and
# more warps, up to 16. Reasoned, not yet measured on the H100: retune with
# `bench/bench_ops.py --device cuda --ops categorical` and record the figure here.
GPU_TILE_LANES = 2048  # BLOCK_N * BLOCK_A, padding included; BLOCK_N = GPU_TILE_LANES // BLOCK_A (capped by N)
LANES_PER_THREAD = 8  # num_warps = tile lanes / (32 * LANES_PER_THREAD), capped by MAX_NUM_WARPS
MAX_NUM_WARPS = 16
# Longest row kept in one tile. At A = 8192 (16 warps, 16 lanes per thread) the bwd uses 84-128 registers (with /
# without the A % 16 == 0 hint) and no spills: 512 threads x 128 = 65536 at worst, one program per SM. Twice that
# (32 warps x 16 lanes, or 16 x 32) would not fit an SM's registers.
MAX_A = 8192

# Under TRITON_INTERPRET=1 (tests on CPU tensors) a program instance costs ~15 ms of Python whatever its size,
# so the launcher uses one huge tile instead: 2^16 lanes covers N=300 x A=64, or 64 rows of A=1024, per program.
INTERPRET_TILE_LANES = 1 << 16

# Whether the kernels below are interpreted (read at import, when @triton.jit reads it).
_INTERPRETED = _launch.INTERPRETED

# Test hooks (never set in library code): the output allocator (tests swap in NaN-filled buffers to prove every
# element is written) and a forced BLOCK_N (several programs with a ragged last tile under the interpreter).
_alloc = torch.empty
_FORCE_BLOCK_N: int | None = None


# ----------------------------------------------------------------------------------------------------------------
# Kernels
# ----------------------------------------------------------------------------------------------------------------
@triton.jit
def _softmax_parts(logits_ptr, offs, mask, col_mask):
    """Row-wise ``(p, log p with -inf -> 0, log p, entropy)`` in float32 for one tile of logits."""
    z = tl.load(logits_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    # Padding columns act as masked actions (-inf). Padding *rows* keep finite zeros so no NaN is ever formed.
    z = tl.where(col_mask[None, :], z, float("-inf"))
    z_max = tl.max(z, axis=1)
    zs = z - z_max[:, None]
    ez = tl.exp(zs)
    denom = tl.sum(ez, axis=1)
    log_p = zs - tl.log(denom)[:, None]
    p = ez / denom[:, None]
    # 0 * log 0 = 0: masked actions (p == 0, log p == -inf) drop out of the entropy.
    log_p_finite = tl.where(p > 0.0, log_p, 0.0)
    entropy = -tl.sum(p * log_p_finite, axis=1)
    return p, log_p_finite, log_p, entropy


@triton.jit
def _categorical_fwd_kernel(
    logits_ptr,
    probs_ptr,
    log_probs_ptr,
    entropy_ptr,
    partial_ptr,
    N,
    A,
    WANT_SUM: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_A: tl.constexpr,
):
    pid, rows, cols, row_mask, col_mask, mask, offs = _launch.row_tile(N, A, BLOCK_N, BLOCK_A)

    p, _, log_p, entropy = _softmax_parts(logits_ptr, offs, mask, col_mask)

    tl.store(probs_ptr + offs, p.to(probs_ptr.dtype.element_ty), mask=mask)
    tl.store(log_probs_ptr + offs, log_p.to(log_probs_ptr.dtype.element_ty), mask=mask)
    tl.store(entropy_ptr + rows, entropy.to(entropy_ptr.dtype.element_ty), mask=row_mask)
    if WANT_SUM:  # unrounded fp32 per-row entropies; padded rows contribute 0
        tl.store(partial_ptr + pid, tl.sum(tl.where(row_mask, entropy, 0.0), axis=0))


@triton.jit
def _categorical_bwd_kernel(
    grad_probs_ptr,
    grad_log_probs_ptr,
    grad_entropy_ptr,
    logits_ptr,
    d_logits_ptr,
    N,
    A,
    BLOCK_N: tl.constexpr,
    BLOCK_A: tl.constexpr,
):
    """``d z_j = g_lp_j - p_j sum(g_lp) + p_j (g_p_j - sum(g_p p)) - g_H p_j (log p_j + H)``."""
    pid, rows, cols, row_mask, col_mask, mask, offs = _launch.row_tile(N, A, BLOCK_N, BLOCK_A)

    p, log_p_finite, _, entropy = _softmax_parts(logits_ptr, offs, mask, col_mask)

    g_p = tl.load(grad_probs_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    g_lp = tl.load(grad_log_probs_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    g_h = tl.load(grad_entropy_ptr + rows, mask=row_mask, other=0.0).to(tl.float32)

    sum_g_lp = tl.sum(g_lp, axis=1)
    sum_g_p_p = tl.sum(g_p * p, axis=1)
    d = g_lp - p * sum_g_lp[:, None] + p * (g_p - sum_g_p_p[:, None])
    # p_j (log p_j + H) vanishes where p_j == 0 (masked actions): log p_j was replaced by 0 there.
    d = d - g_h[:, None] * (p * (log_p_finite + entropy[:, None]))

    tl.store(d_logits_ptr + offs, d.to(d_logits_ptr.dtype.element_ty), mask=mask)


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


def _check_logits(logits: torch.Tensor, what: str) -> None:
    if logits.dim() != 2:
        raise ValueError(f"{what}: logits must be 2-D (N, A), got shape {tuple(logits.shape)}")
    if logits.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"{what}: dtype {logits.dtype} not supported by the Triton backend (float32/bfloat16/float16)")
    if not logits.is_contiguous():
        raise ValueError(f"{what}: logits must be contiguous (strides {logits.stride()})")
    A = logits.shape[1]
    if not 1 <= A <= MAX_A:
        raise ValueError(
            f"{what}: the Triton backend keeps a row in one tile and supports 1 <= A <= {MAX_A} actions, got A={A}; "
            "use the torch backend for longer rows"
        )
    if logits.device.type != "cuda" and not _INTERPRETED:
        raise RuntimeError(
            f"fastsac.kernels: Triton kernels need CUDA tensors (got {logits.device}); on CPU they run only under "
            "TRITON_INTERPRET=1 (tests), set before fastsac.kernels is imported"
        )


def categorical_fwd(logits, want_sum):
    """``(probs, log_probs, entropy, entropy_sum)``: see ``fastsac.ops.reference.categorical_fwd``."""
    _check_logits(logits, "categorical_fwd")
    N, A = logits.shape
    probs = _alloc((N, A), dtype=logits.dtype, device=logits.device)
    log_probs = _alloc((N, A), dtype=logits.dtype, device=logits.device)
    entropy = _alloc((N,), dtype=logits.dtype, device=logits.device)
    if N == 0:
        entropy_sum = torch.zeros((), dtype=torch.float32, device=logits.device) if want_sum else None
        return probs, log_probs, entropy, entropy_sum
    block_n, block_a, num_warps = _launch_config(N, A, logits.device)
    grid = triton.cdiv(N, block_n)
    partial = _alloc((grid,), dtype=torch.float32, device=logits.device) if want_sum else entropy  # unused if not
    with _launch.on_device(logits.device):
        _categorical_fwd_kernel[(grid,)](
            logits, probs, log_probs, entropy, partial,
            N, A,
            WANT_SUM=bool(want_sum),
            BLOCK_N=block_n,
            BLOCK_A=block_a,
            num_warps=num_warps,
        )  # fmt: skip
    entropy_sum = partial.sum() if want_sum else None
    return probs, log_probs, entropy, entropy_sum


def categorical_bwd(grad_probs, grad_log_probs, grad_entropy, logits):
    """``d_logits``: see ``fastsac.ops.reference.categorical_bwd``."""
    _check_logits(logits, "categorical_bwd")
    N, A = logits.shape
    for name, g, shape in (
        ("grad_probs", grad_probs, (N, A)),
        ("grad_log_probs", grad_log_probs, (N, A)),
        ("grad_entropy", grad_entropy, (N,)),
    ):
        if g.shape != shape or g.dtype not in SUPPORTED_DTYPES or g.device != logits.device or not g.is_contiguous():
            raise ValueError(
                f"categorical_bwd: {name} must be a contiguous float32/bfloat16/float16 tensor of shape {shape} on "
                f"{logits.device}; got {tuple(g.shape)}, {g.dtype}, {g.device}, strides {g.stride()}"
            )
    d_logits = _alloc((N, A), dtype=logits.dtype, device=logits.device)
    if N == 0:
        return d_logits
    block_n, block_a, num_warps = _launch_config(N, A, logits.device)
    grid = triton.cdiv(N, block_n)
    with _launch.on_device(logits.device):
        _categorical_bwd_kernel[(grid,)](
            grad_probs, grad_log_probs, grad_entropy, logits, d_logits,
            N, A,
            BLOCK_N=block_n,
            BLOCK_A=block_a,
            num_warps=num_warps,
        )  # fmt: skip
    return d_logits
