"""Triton kernels for the categorical (C51) TD loss of distributional critics: projection and cross-entropy in one pass.

Contract: ``fastsac/ops/reference.py`` (``categorical_td_fwd`` / ``categorical_td_bwd``, same signatures and
semantics). ``logits`` is ``(C, B, K)`` row-major (C critic members), ``target_probs`` ``(B, K)`` and ``reward``,
``not_done``, ``entropy_term`` ``(B,)`` float32. Math in float32; the loss comes back in the logits' dtype
(float32, bfloat16, float16), the projected target ``m`` in float32.

Forward: a program owns ``BLOCK_B`` samples (1 on the GPU: one program per sample) with whole rows of
``BLOCK_K = next_pow2(K)`` atoms in registers. The projection is formed densely: atom k lands at ``pos_k`` with
lower neighbour ``l_k`` and share ``frac_k`` (as sac_math.h's ``td_atom_target``), and
``m_j = sum_k p_k ([j == l_k] (1 - frac_k) + [j == u_k] frac_k)``, a masked sum over ``BLOCK_S`` source atoms
at a time: registers cannot scatter, and K^2 = 10^4 multiply-adds per sample (K = 101) is nothing next to the loads. Then, for each
member, the row's log-sum-exp and ``-sum_j m_j log p_j``. Backward: ``BLOCK_N`` member rows per program,
``d_j = g (softmax_j sum(m) - m_j)``, with the sample's ``m`` row re-read.

Row length: up to ``MAX_K = 256`` atoms (a row of logits in registers, and BLOCK_K^2 share products per sample);
longer supports are rejected with a ValueError (use the cpp or torch backend).
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
MAX_K = 256

# GPU launch shape of the forward: one sample per program, the projection's share tile SOURCE_ATOMS x BLOCK_K at a
# time (32 x 128 = 4096 floats at K = 101: 32 a thread over 4 warps): 96 registers a thread at K = 101 and at 256
# (sm_90, AOT-compiled: tests/kernels/test_triton_lowering.py), 5 programs an SM. The whole BLOCK_K x BLOCK_K tile
# at once took 212 registers at 8 warps (255 at K = 256): one program an SM. Backward: as
# kernels/categorical.py (2048 tile lanes, 8 lanes a thread, up to 16 warps). Reasoned, not yet measured on a GPU:
# retune with `bench/bench_ops.py --device cuda --ops categorical_td --variants op --dims 101` and record it here.
SOURCE_ATOMS = 32
FWD_NUM_WARPS = 4
GPU_TILE_LANES = 2048
LANES_PER_THREAD = 8
MAX_NUM_WARPS = 16

# Under TRITON_INTERPRET=1 (tests on CPU tensors) each program costs ~15 ms of Python whatever its size: the
# forward takes as many samples per program as keep its BLOCK_B x SOURCE_ATOMS x BLOCK_K share tile within 2^20
# elements, the backward one tile of 2^16 lanes.
INTERPRET_FWD_ELEMENTS = 1 << 20  # triton's largest tensor
INTERPRET_TILE_LANES = 1 << 16

_INTERPRETED = _launch.INTERPRETED

# Test hooks (never set in library code): the output allocator (tests swap in NaN-filled buffers) and forced
# BLOCK_B / BLOCK_N (several programs with a ragged last one under the interpreter).
_alloc = torch.empty
_FORCE_BLOCK_B: int | None = None
_FORCE_BLOCK_N: int | None = None


# ----------------------------------------------------------------------------------------------------------------
# Kernels
# ----------------------------------------------------------------------------------------------------------------
@triton.jit
def _categorical_td_fwd_kernel(
    logits_ptr, probs_ptr, reward_ptr, not_done_ptr, entropy_ptr, loss_ptr, m_ptr,
    gamma, v_min, v_max, dz, top,
    C, B, K,
    BLOCK_B: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_S: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    bs = pid.to(tl.int64) * BLOCK_B + tl.arange(0, BLOCK_B)  # samples
    ks = tl.arange(0, BLOCK_K)  # atoms: source k and target j alike
    b_mask = bs < B
    k_mask = ks < K
    mask = b_mask[:, None] & k_mask[None, :]
    offs = bs[:, None] * K + ks[None, :]

    r = tl.load(reward_ptr + bs, mask=b_mask, other=0.0).to(tl.float32)
    gnd = tl.load(not_done_ptr + bs, mask=b_mask, other=0.0).to(tl.float32) * gamma
    ent = tl.load(entropy_ptr + bs, mask=b_mask, other=0.0).to(tl.float32)

    # m_j = sum_k p_k ([j == l_k] (1 - frac_k) + [j == u_k] frac_k), over BLOCK_S source atoms k at a time: axis 1
    # of the share tile is k (source), axis 2 is j (target).
    m = tl.zeros((BLOCK_B, BLOCK_K), dtype=tl.float32)
    j3 = ks[None, None, :]
    for k0 in range(0, K, BLOCK_S):
        kk = k0 + tl.arange(0, BLOCK_S)
        s_mask = b_mask[:, None] & (kk < K)[None, :]
        p = tl.load(probs_ptr + bs[:, None] * K + kk[None, :], mask=s_mask, other=0.0).to(tl.float32)  # pad: 0
        # Where each atom lands (sac_math.h td_atom_target): lower neighbour l, share frac to u = min(l + 1, K - 1).
        z = v_min + kk.to(tl.float32) * dz
        t = r[:, None] + gnd[:, None] * (z[None, :] - ent[:, None])
        # propagate_nan: a NaN reward or entropy term must reach m and the loss, as in the other backends
        t = tl.minimum(tl.maximum(t, v_min, propagate_nan=tl.PropagateNan.ALL), v_max,
                       propagate_nan=tl.PropagateNan.ALL)
        pos = tl.maximum((t - v_min) / dz, 0.0, propagate_nan=tl.PropagateNan.ALL)
        pos = tl.minimum(pos, top, propagate_nan=tl.PropagateNan.ALL)
        lo_i = tl.minimum(tl.maximum(tl.floor(pos).to(tl.int32), 0), K - 1)  # NaN: some atom, frac NaN (reaches m)
        frac = pos - lo_i.to(tl.float32)
        up_i = tl.minimum(lo_i + 1, K - 1)
        w = tl.where(lo_i[:, :, None] == j3, (1.0 - frac)[:, :, None], 0.0) + \
            tl.where(up_i[:, :, None] == j3, frac[:, :, None], 0.0)
        m += tl.sum(p[:, :, None] * w, axis=1)  # 0 in the padding columns
    tl.store(m_ptr + offs, m, mask=mask)

    x_ptrs = logits_ptr + offs  # member c's rows: advanced by B * K a member
    loss_ptrs = loss_ptr + bs
    for _ in range(0, C):
        x = tl.load(x_ptrs, mask=mask, other=0.0).to(tl.float32)
        x = tl.where(k_mask[None, :], x, float("-inf"))  # padding atoms: probability 0
        x_max = tl.max(x, axis=1)
        xs = x - x_max[:, None]
        lse = tl.log(tl.sum(tl.exp(xs), axis=1))
        log_p = tl.where(k_mask[None, :], xs - lse[:, None], 0.0)
        loss = -tl.sum(m * log_p, axis=1)
        tl.store(loss_ptrs, loss.to(loss_ptr.dtype.element_ty), mask=b_mask)
        x_ptrs += B * K
        loss_ptrs += B


@triton.jit
def _categorical_td_bwd_kernel(
    grad_ptr, logits_ptr, m_ptr, d_ptr,
    N, B, K,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):  # fmt: skip
    """``d_j = g (softmax_j sum(m) - m_j)`` for ``BLOCK_N`` member rows; row ``n`` reads sample ``n % B``'s m."""
    pid, rows, cols, row_mask, col_mask, mask, offs = _launch.row_tile(N, K, BLOCK_N, BLOCK_K)
    x = tl.load(logits_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    x = tl.where(col_mask[None, :], x, float("-inf"))
    x_max = tl.max(x, axis=1)
    e = tl.exp(x - x_max[:, None])
    p = e / tl.sum(e, axis=1)[:, None]
    m = tl.load(m_ptr + (rows % B)[:, None] * K + cols[None, :], mask=mask, other=0.0)
    g = tl.load(grad_ptr + rows, mask=row_mask, other=0.0).to(tl.float32)
    d = g[:, None] * (p * tl.sum(m, axis=1)[:, None] - m)
    tl.store(d_ptr + offs, d.to(d_ptr.dtype.element_ty), mask=mask)


# ----------------------------------------------------------------------------------------------------------------
# Launchers
# ----------------------------------------------------------------------------------------------------------------
def _gpu_fwd_config(n_atoms: int) -> tuple[int, int, int, int]:
    """``(BLOCK_B, BLOCK_K, BLOCK_S, num_warps)`` of the forward on the GPU."""
    block_k = triton.next_power_of_2(n_atoms)
    return 1, block_k, min(SOURCE_ATOMS, block_k), FWD_NUM_WARPS


def _gpu_bwd_config(n_rows: int, n_atoms: int) -> tuple[int, int, int]:
    """``(BLOCK_N, BLOCK_K, num_warps)`` of the backward on the GPU."""
    return _launch.gpu_launch_config(n_rows, n_atoms, tile_lanes=GPU_TILE_LANES, lanes_per_thread=LANES_PER_THREAD,
                                     max_num_warps=MAX_NUM_WARPS)


def _check(what: str, logits: torch.Tensor, named: tuple) -> None:
    if logits.dim() != 3:
        raise ValueError(f"{what}: logits must be 3-D (C, B, K), got shape {tuple(logits.shape)}")
    if logits.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"{what}: dtype {logits.dtype} not supported by the Triton backend (float32/bfloat16/float16)")
    if not logits.is_contiguous():
        raise ValueError(f"{what}: logits must be contiguous (strides {logits.stride()})")
    K = logits.shape[2]
    if not 2 <= K <= MAX_K:
        raise ValueError(f"{what}: the Triton backend supports 2 <= K <= {MAX_K} atoms, got K={K}; use the cpp or "
                         "torch backend for larger supports")
    if logits.device.type != "cuda" and not _INTERPRETED:
        raise RuntimeError(
            f"fastsac.kernels: Triton kernels need CUDA tensors (got {logits.device}); on CPU they run only under "
            "TRITON_INTERPRET=1 (tests), set before fastsac.kernels is imported"
        )
    for name, t, shape, dtype in named:
        if tuple(t.shape) != shape or t.dtype != dtype or t.device != logits.device or not t.is_contiguous():
            raise ValueError(
                f"{what}: {name} must be a contiguous {dtype} tensor of shape {shape} on {logits.device}; got "
                f"{tuple(t.shape)}, {t.dtype}, {t.device}, strides {t.stride()}"
            )


def categorical_td_fwd(logits, target_probs, reward, not_done, entropy_term, gamma, v_min, v_max):
    """``(loss, m)``: see ``fastsac.ops.reference.categorical_td_fwd``."""
    C, B, K = logits.shape if logits.dim() == 3 else (0, 0, 0)
    f32 = torch.float32
    _check("categorical_td_fwd", logits, (("target_probs", target_probs, (B, K), f32), ("reward", reward, (B,), f32),
                                          ("not_done", not_done, (B,), f32),
                                          ("entropy_term", entropy_term, (B,), f32)))
    loss = _alloc((C, B), dtype=logits.dtype, device=logits.device)
    m = _alloc((B, K), dtype=f32, device=logits.device)
    if B == 0:
        return loss, m
    block_b, block_k, block_s, num_warps = _gpu_fwd_config(K)
    if logits.device.type != "cuda" or _INTERPRETED:
        block_b, num_warps = max(1, min(triton.next_power_of_2(B), INTERPRET_FWD_ELEMENTS // (block_s * block_k))), 1
    if _FORCE_BLOCK_B is not None:
        block_b = _FORCE_BLOCK_B
    dz = (float(v_max) - float(v_min)) / (K - 1)
    with _launch.on_device(logits.device):
        _categorical_td_fwd_kernel[(triton.cdiv(B, block_b),)](
            logits, target_probs, reward, not_done, entropy_term, loss, m,
            float(gamma), float(v_min), float(v_max), dz, float(K - 1),
            C, B, K,
            BLOCK_B=block_b, BLOCK_K=block_k, BLOCK_S=block_s, num_warps=num_warps,
        )  # fmt: skip
    return loss, m


def categorical_td_bwd(grad_loss, logits, m):
    """``d_logits``: see ``fastsac.ops.reference.categorical_td_bwd``."""
    C, B, K = logits.shape if logits.dim() == 3 else (0, 0, 0)
    _check("categorical_td_bwd", logits, (("m", m, (B, K), torch.float32),))
    if (tuple(grad_loss.shape) != (C, B) or grad_loss.dtype != logits.dtype or grad_loss.device != logits.device
            or not grad_loss.is_contiguous()):
        raise ValueError(f"categorical_td_bwd: grad_loss must be a contiguous {logits.dtype} tensor of shape {(C, B)} "
                         f"on {logits.device}; got {tuple(grad_loss.shape)}, {grad_loss.dtype}, {grad_loss.device}")
    d_logits = _alloc((C, B, K), dtype=logits.dtype, device=logits.device)
    N = C * B
    if N == 0:
        return d_logits
    block_n, block_k, num_warps = _launch.launch_config(
        N, K, logits.device, gpu_config=_gpu_bwd_config, interpret_tile_lanes=INTERPRET_TILE_LANES,
        force_block_n=_FORCE_BLOCK_N,
    )  # fmt: skip
    with _launch.on_device(logits.device):
        _categorical_td_bwd_kernel[(triton.cdiv(N, block_n),)](
            grad_loss, logits, m, d_logits,
            N, B, K,
            BLOCK_N=block_n, BLOCK_K=block_k, num_warps=num_warps,
        )  # fmt: skip
    return d_logits
