"""Pure-PyTorch reference of the fused SAC ops: the CPU path, the ground truth, and the backend contract.

Every backend (this module, ``fastsac.kernels`` for Triton, ``fastsac.ops.extension`` for the C++/CUDA extension)
provides the same primitives with the same signatures and semantics:

``squashed_gaussian_fwd(mean, log_std, noise, scale, bias, lo, hi, want_sum) -> (action, log_prob, lp_sum)``
``squashed_gaussian_bwd(grad_action, grad_log_prob, mean, log_std, noise, scale, lo, hi) -> (d_mean, d_log_std)``
``categorical_fwd(logits, want_sum) -> (probs, log_probs, entropy, entropy_sum)``
``categorical_bwd(grad_probs, grad_log_probs, grad_entropy, logits) -> d_logits``
``categorical_td_fwd(logits, target_probs, reward, not_done, entropy_term, gamma, v_min, v_max) -> (loss, m)``
``categorical_td_bwd(grad_loss, logits, m) -> d_logits``

Conventions (the public wrappers in ``fastsac.ops`` validate and normalise before calling a primitive):

- ``mean``, ``log_std``, ``noise``, ``logits``: 2-D ``(N, A)``, contiguous, one dtype (float32, bfloat16, float16;
  float64 too for the torch and C++ backends), one device. Math runs in float32 (float64 for float64 inputs) and
  outputs come back in the input dtype. (This module's primitives also accept any ``(..., A)``.)
- ``scale``, ``bias``: ``None`` or 1-D ``(A,)`` tensors in the compute dtype on the same device.
- ``lo``, ``hi``: both ``None`` (``log_std`` is the log standard deviation) or both floats with ``lo < hi``
  (``log_std`` is the raw network output, bounded smoothly as ``lo + 0.5 * (hi - lo) * (tanh(raw) + 1)``).
- ``categorical_td``: ``logits`` 3-D ``(C, B, K)`` (C critic members, B samples, K atoms), contiguous;
  ``target_probs`` ``(B, K)`` and ``reward``, ``not_done``, ``entropy_term`` ``(B,)``, contiguous, in the compute
  dtype on the logits' device; ``gamma``, ``v_min < v_max`` floats, ``K >= 2``. ``loss`` is ``(C, B)`` in the
  logits' dtype, ``m`` the projected target ``(B, K)`` in the compute dtype (what the backward reads);
  ``grad_loss`` is ``(C, B)`` in the logits' dtype.
- ``want_sum``: when True, the forward also returns the sum over rows of ``log_prob`` (``entropy``) as a 0-dim
  tensor in the compute dtype, accumulated in the compute dtype from the unrounded per-row values (the fused
  alpha loss is built from it); when False that slot is ``None``.
- Incoming gradients are real tensors (zeros where an output was unused), in the input dtype, contiguous.
- ``d_log_std`` is the gradient with respect to the ``log_std`` argument as given (the raw input when bounds
  are set). ``noise`` gets no gradient.

Numerics. With ``v = |u| + log1p(exp(-2|u|)) = u + softplus(-2u)`` the Jacobian terms are
``log(1 - tanh(u)^2) = 2 (log 2 - v)`` and ``1 - tanh(u)^2 = 4 exp(-2v)`` (the code keeps ``v`` shifted by the
constant terms of the log-prob): exact and finite for any finite ``u``
(no ``+1e-6``), and ``1 - a^2`` keeps its relative accuracy when tanh saturates (|u| of 20 or 50), where
``1 - tanh(u)**2`` would round to 0. ``v`` is one ``softplus`` with ``beta = -2`` (``u - 2 softplus(u, beta=-2)``),
its cut-over to the linear branch set per dtype so that it drops less than an ulp. This module is written for
few, large tensor operations, because on a CPU every operation costs a few microseconds whatever its size: the
eager path of the public ops (:class:`fastsac.ops.squashed_gaussian`) runs :func:`squashed_gaussian_parts` and
:func:`squashed_gaussian_grads` directly, the ``torch`` backend's primitives below wrap the same two functions.
Kernels without a native tanh may form ``tanh(u) = sign(u) (1 - e) / (1 + e)`` from ``e = exp(-2|u|)`` (absolute
error of an ulp or two near 0; the tests bound every backend's error by twice PyTorch's own error in the same
dtype plus a few ulps).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
LOG_2 = math.log(2.0)
# softplus(u, beta=-2) returns u once -2u exceeds this: the term dropped, log1p(exp(-threshold)) / 2, is below an
# ulp of |u| there (float32: e^-20 / 2 = 1e-9 against an ulp of 10 of 1e-6; float64: e^-40 / 2 = 2e-18 against
# 3.6e-15 at 20).
_SOFTPLUS_THRESHOLD = {torch.float64: 40.0}
_SOFTPLUS_THRESHOLD_DEFAULT = 20.0


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the math runs in for inputs of ``dtype``."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def bound_log_std(raw: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Smoothly map a raw network output into ``[lo, hi]``."""
    return lo + 0.5 * (hi - lo) * (torch.tanh(raw) + 1.0)


class SquashedGaussianParts(NamedTuple):
    """What the backward needs from a forward (all in the compute dtype, shape ``(..., A)``)."""

    a: torch.Tensor  #: tanh(u)
    w: torch.Tensor  #: u + softplus(-2u) - log 2 - log sqrt(2 pi) / 2, so that log(1 - a^2) = -2w - log sqrt(2 pi)
    sigma: torch.Tensor  #: exp(log_std) (bounded)
    noise: torch.Tensor
    tanh_raw: torch.Tensor | None  #: tanh of the raw log-std when bounds are set


_SUM_WEIGHTS: dict[tuple[int, torch.dtype, torch.device], torch.Tensor] = {}


def _twos(num_actions: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``2 * ones(A)``: ``mv(half_terms, twos)`` is the log-prob in one operation (the row sum and its factor 2)."""
    key = (num_actions, dtype, device)
    twos = _SUM_WEIGHTS.get(key)
    if twos is None:
        twos = _SUM_WEIGHTS[key] = torch.full((num_actions,), 2.0, dtype=dtype, device=device)
    return twos


def squashed_gaussian_parts(m, s, n, scale, bias, lo, hi) -> tuple[torch.Tensor, torch.Tensor, SquashedGaussianParts]:
    """``(action, log_prob, parts)`` in the compute dtype from inputs already in it. ``scale``/``bias``: None, a
    Python number, or a tensor broadcasting against ``(..., A)`` in the compute dtype."""
    tanh_raw = None
    if lo is not None:
        half = 0.5 * (hi - lo)
        tanh_raw = torch.tanh(s)
        s = tanh_raw.mul(half).add_(lo + half)
    sigma = torch.exp(s)
    u = torch.addcmul(m, sigma, n)
    a = torch.tanh(u)
    threshold = _SOFTPLUS_THRESHOLD.get(u.dtype, _SOFTPLUS_THRESHOLD_DEFAULT)
    # The constants go into every element's term, not subtracted from the row sum at the end: A * 2.3 subtracted
    # from a sum of that size would cancel (an error of ~1.4e-5 at A = 64 where the terms' own is ~1e-6).
    w = torch.sub(u, F.softplus(u, beta=-2.0, threshold=threshold), alpha=2.0).sub_(LOG_2 + 0.5 * LOG_SQRT_2PI)
    # per element: -0.5 n^2 - s - log sqrt(2 pi) - log(1 - a^2) = 2 (w - s/2 - n^2/4)
    half_terms = torch.sub(w, s, alpha=0.5).addcmul_(n, n, value=-0.25)
    twos = _twos(s.shape[-1], s.dtype, s.device)
    log_prob = torch.mv(half_terms, twos) if half_terms.dim() == 2 else torch.matmul(half_terms, twos)
    if scale is None:
        action = a if bias is None else a + bias
    elif isinstance(scale, torch.Tensor):
        log_prob = log_prob.sub_(torch.log(scale.abs()).sum())
        action = torch.addcmul(bias, a, scale) if isinstance(bias, torch.Tensor) else \
            (a * scale if bias is None else (a * scale).add_(bias))
    else:  # a Python number
        log_prob = log_prob.sub_(s.shape[-1] * math.log(abs(scale)))
        action = a * scale if bias is None else (a * scale).add_(bias)
    return action, log_prob, SquashedGaussianParts(a, w, sigma, n, tanh_raw)


def squashed_gaussian_grads(g_a, g_lp, parts: SquashedGaussianParts, scale, lo, hi):
    """``(d_mean, d_log_std)`` in the compute dtype: ``d_u = g_a scale (1 - a^2) + 2 g_lp a``, ``d_mean = d_u``,
    ``d_log_std = d_u sigma noise - g_lp`` (times the bound's derivative when bounds are set). ``g_a`` (..., A) and
    ``g_lp`` (...) may be None (no gradient from that output)."""
    d_u = None
    if g_a is not None:
        d_u = torch.exp(parts.w.mul(-2.0).sub_(LOG_SQRT_2PI)).mul_(g_a)  # g_a (1 - a^2)
        if scale is not None:
            d_u = d_u.mul_(scale)
    if g_lp is not None:
        g_lp = g_lp.unsqueeze(-1)
        d_u = torch.mul(parts.a, g_lp).mul_(2.0) if d_u is None else d_u.addcmul_(parts.a, g_lp, value=2.0)
        d_s = torch.mul(d_u, parts.sigma).mul_(parts.noise).sub_(g_lp)
    else:
        d_s = torch.mul(d_u, parts.sigma).mul_(parts.noise)
    if lo is not None:
        d_s = d_s.mul_(torch.addcmul(torch.ones_like(parts.tanh_raw), parts.tanh_raw, parts.tanh_raw, value=-1.0)
                       .mul_(0.5 * (hi - lo)))
    return d_u, d_s


def squashed_gaussian_fwd(mean, log_std, noise, scale, bias, lo, hi, want_sum):
    dtype, cd = mean.dtype, compute_dtype(mean.dtype)
    action, log_prob, _ = squashed_gaussian_parts(mean.to(cd), log_std.to(cd), noise.to(cd), scale, bias, lo, hi)
    lp_sum = log_prob.sum() if want_sum else None
    return action.to(dtype), log_prob.to(dtype), lp_sum


def squashed_gaussian_bwd(grad_action, grad_log_prob, mean, log_std, noise, scale, lo, hi):
    dtype, cd = mean.dtype, compute_dtype(mean.dtype)
    _, _, parts = squashed_gaussian_parts(mean.to(cd), log_std.to(cd), noise.to(cd), None, None, lo, hi)
    d_u, d_s = squashed_gaussian_grads(grad_action.to(cd), grad_log_prob.to(cd), parts, scale, lo, hi)
    return d_u.to(dtype), d_s.to(dtype)


# Log-probabilities below this are clamped to it where they multiply a probability: exp(-1e4) is 0 in every float
# format, so p * log p is unchanged wherever p > 0, and a masked action (logit -inf: p = 0, log p = -inf) gives
# 0 * -1e4 = 0 instead of 0 * -inf = nan, in the value and, for autograd, in the gradient (which stays finite).
MASKED_LOG_PROB = -1.0e4


def categorical_parts(z, *, masked: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(probs, log_probs, entropy, clamped_log_probs)`` in the compute dtype from logits already in it.
    Differentiable by autograd (the eager path uses it that way: autograd of ``log_softmax`` is one fused node).

    ``masked=False`` promises that no logit is -inf: the entropy is then ``-sum(p log p)`` as written, one
    operation and its backward fewer than the clamped form (``clamped_log_probs`` is then ``log_probs``)."""
    log_probs = torch.log_softmax(z, dim=-1)
    probs = torch.exp(log_probs)
    if not masked:
        return probs, log_probs, (probs * log_probs).sum(-1).neg(), log_probs
    clamped = log_probs.clamp_min(MASKED_LOG_PROB)
    entropy = torch.linalg.vecdot(probs, clamped).neg_()
    return probs, log_probs, entropy, clamped


def categorical_grads(g_p, g_lp, g_h, probs, entropy, clamped_log_probs):
    """``d z`` in the compute dtype from the incoming gradients (each may be None):
    ``d z_j = g_lp_j + p_j (g_p_j - sum(g_p p) - sum(g_lp) - g_H (log p_j + H))``, with the clamped log-probs in
    the last term so that masked actions (p = 0) contribute 0."""
    coeff = None  # what multiplies p_j: (..., A) or (..., 1)
    if g_p is not None:
        coeff = g_p - torch.linalg.vecdot(g_p, probs).unsqueeze(-1)
    if g_lp is not None:
        c = g_lp.sum(-1, keepdim=True)
        coeff = c.neg_() if coeff is None else coeff.sub_(c)
    if g_h is not None:
        c = torch.add(clamped_log_probs, entropy.unsqueeze(-1)).mul_(g_h.unsqueeze(-1))
        coeff = c.neg_() if coeff is None else coeff.sub_(c)
    return torch.mul(probs, coeff) if g_lp is None else torch.addcmul(g_lp, probs, coeff)


def categorical_fwd(logits, want_sum):
    dtype, cd = logits.dtype, compute_dtype(logits.dtype)
    probs, log_probs, entropy, _ = categorical_parts(logits.to(cd))
    entropy_sum = entropy.sum() if want_sum else None
    return probs.to(dtype), log_probs.to(dtype), entropy.to(dtype), entropy_sum


def categorical_bwd(grad_probs, grad_log_probs, grad_entropy, logits):
    """The closed form of :func:`categorical_grads`."""
    dtype, cd = logits.dtype, compute_dtype(logits.dtype)
    probs, _, entropy, clamped = categorical_parts(logits.to(cd))
    d = categorical_grads(grad_probs.to(cd), grad_log_probs.to(cd), grad_entropy.to(cd), probs, entropy, clamped)
    return d.to(dtype)


# ---------------------------------------------------------------------------------------------- categorical TD loss


def categorical_td_project(target_probs, reward, not_done, entropy_term, gamma: float, v_min: float, v_max: float):
    """The C51 projection ``m`` ``(B, K)`` of the shifted target distribution, in the dtype of ``target_probs``.

    Atom ``k`` (``z_k = v_min + k dz``, ``dz = (v_max - v_min) / (K - 1)``) moves to
    ``t_k = clip(reward + gamma * not_done * (z_k - entropy_term), v_min, v_max)``, at the fractional index
    ``pos_k = (t_k - v_min) / dz`` (clamped to ``[0, K - 1]`` against rounding); its mass ``p_k`` is split between
    ``l = floor(pos_k)`` (share ``1 - (pos_k - l)``) and ``u = min(l + 1, K - 1)`` (share ``pos_k - l``). On an atom
    (``pos_k`` an integer, ``K - 1`` included) everything goes to ``l``: ``sum_j m_j = sum_k p_k`` always."""
    K = target_probs.shape[-1]
    dz = (v_max - v_min) / (K - 1)
    z = torch.arange(K, dtype=target_probs.dtype, device=target_probs.device).mul_(dz).add_(v_min)
    t = (z - entropy_term.unsqueeze(-1)).mul_((not_done * gamma).unsqueeze(-1)).add_(reward.unsqueeze(-1))
    pos = t.clamp_(v_min, v_max).sub_(v_min).div_(dz).clamp_(0.0, K - 1)
    lo_idx = pos.floor().long().clamp_(0, K - 1)  # a NaN position: index 0 and frac NaN (the NaN reaches m)
    frac = pos.sub_(lo_idx)
    hi_idx = (lo_idx + 1).clamp_max_(K - 1)
    m = torch.zeros_like(target_probs)
    m.scatter_add_(-1, lo_idx, target_probs * (1.0 - frac))
    return m.scatter_add_(-1, hi_idx, target_probs * frac)


def categorical_td_fwd(logits, target_probs, reward, not_done, entropy_term, gamma, v_min, v_max):
    """``(loss, m)``: ``loss = -sum_k m_k log_softmax(logits)_k`` per member and sample, ``m`` the projection."""
    dtype, cd = logits.dtype, compute_dtype(logits.dtype)
    m = categorical_td_project(target_probs.to(cd), reward.to(cd), not_done.to(cd), entropy_term.to(cd),
                               gamma, v_min, v_max)
    loss = torch.linalg.vecdot(torch.log_softmax(logits.to(cd), dim=-1), m).neg_()
    return loss.to(dtype), m


def categorical_td_bwd(grad_loss, logits, m):
    """``d_logits = grad_loss * (softmax(logits) * sum_k m_k - m)``: the closed form (``d loss / d z_j =
    -m_j + softmax_j sum_k m_k``; the sum is 1 for a normalised target, kept for any ``m``)."""
    dtype, cd = logits.dtype, compute_dtype(logits.dtype)
    probs = torch.softmax(logits.to(cd), dim=-1)
    d = probs.mul_(m.sum(-1, keepdim=True)).sub_(m).mul_(grad_loss.to(cd).unsqueeze(-1))
    return d.to(dtype)
