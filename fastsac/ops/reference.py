"""Pure-PyTorch reference of the fused SAC ops: the CPU fallback, the ground truth, and the backend contract.

Every backend (this module, ``fastsac.kernels`` for Triton, ``fastsac._extension`` for the C++/CUDA extension)
provides the same four primitives with the same signatures and semantics:

``squashed_gaussian_fwd(mean, log_std, noise, scale, bias, lo, hi, want_sum) -> (action, log_prob, lp_sum)``
``squashed_gaussian_bwd(grad_action, grad_log_prob, mean, log_std, noise, scale, lo, hi) -> (d_mean, d_log_std)``
``categorical_fwd(logits, want_sum) -> (probs, log_probs, entropy, entropy_sum)``
``categorical_bwd(grad_probs, grad_log_probs, grad_entropy, logits) -> d_logits``

Conventions (the public wrappers in ``fastsac.ops`` validate and normalise before calling a primitive):

- ``mean``, ``log_std``, ``noise``, ``logits``: 2-D ``(N, A)``, contiguous, one dtype (float32, bfloat16, float16;
  float64 too for the torch and C++ backends), one device. Math runs in float32 (float64 for float64 inputs) and
  outputs come back in the input dtype.
- ``scale``, ``bias``: ``None`` or 1-D ``(A,)`` contiguous tensors in the compute dtype on the same device.
- ``lo``, ``hi``: both ``None`` (``log_std`` is the log standard deviation) or both floats with ``lo < hi``
  (``log_std`` is the raw network output, bounded smoothly as ``lo + 0.5 * (hi - lo) * (tanh(raw) + 1)``).
- ``want_sum``: when True, the forward also returns the sum over rows of ``log_prob`` (``entropy``) as a 0-dim
  tensor in the compute dtype, accumulated in the compute dtype from the unrounded per-row values (the fused
  alpha loss is built from it); when False that slot is ``None``.
- Incoming gradients are real tensors (zeros where an output was unused), in the input dtype, contiguous.
- ``d_log_std`` is the gradient with respect to the ``log_std`` argument as given (the raw input when bounds
  are set). ``noise`` gets no gradient.

Numerics: the Jacobian terms are formed from ``e = exp(-2|u|)``: ``1 - tanh(u)^2 = 4 e / (1 + e)^2`` and
``log(1 - tanh(u)^2) = 2 (log 2 - |u| - log1p(e))``. These are exact and finite for any finite ``u`` (no
``+1e-6``), and ``1 - a^2`` keeps its relative accuracy when tanh saturates (|u| of 20 or 50), where
``1 - tanh(u)**2`` would round to 0. Kernels without a native tanh may form ``tanh(u) = sign(u) (1 - e) / (1 + e)``
from the same ``e`` (absolute error of an ulp or two near 0; the tests bound every backend's error by twice
PyTorch's own error in the same dtype plus a few ulps).
"""

from __future__ import annotations

import math

import torch

LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
LOG_2 = math.log(2.0)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the math runs in for inputs of ``dtype``."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _tanh_parts(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return ``(tanh(u), 1 - tanh(u)^2, log(1 - tanh(u)^2))``, all exact for saturated ``u``."""
    abs_u = u.abs()
    e = torch.exp(-2.0 * abs_u)
    a = torch.tanh(u)
    one_minus_a2 = 4.0 * e / (1.0 + e).square()
    log_one_minus_a2 = 2.0 * (LOG_2 - abs_u - torch.log1p(e))
    return a, one_minus_a2, log_one_minus_a2


def bound_log_std(raw: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Smoothly map a raw network output into ``[lo, hi]``."""
    return lo + 0.5 * (hi - lo) * (torch.tanh(raw) + 1.0)


def squashed_gaussian_fwd(mean, log_std, noise, scale, bias, lo, hi, want_sum):
    dtype, cd = mean.dtype, compute_dtype(mean.dtype)
    m, s, n = mean.to(cd), log_std.to(cd), noise.to(cd)
    if lo is not None:
        s = bound_log_std(s, lo, hi)
    u = m + torch.exp(s) * n
    a, _, log_one_minus_a2 = _tanh_parts(u)
    log_prob = (-0.5 * n.square() - s - LOG_SQRT_2PI - log_one_minus_a2).sum(-1)
    action = a
    if scale is not None:
        action = action * scale
        log_prob = log_prob - torch.log(scale.abs()).sum()
    if bias is not None:
        action = action + bias
    lp_sum = log_prob.sum() if want_sum else None
    return action.to(dtype), log_prob.to(dtype), lp_sum


def squashed_gaussian_bwd(grad_action, grad_log_prob, mean, log_std, noise, scale, lo, hi):
    dtype, cd = mean.dtype, compute_dtype(mean.dtype)
    m, raw, n = mean.to(cd), log_std.to(cd), noise.to(cd)
    s = bound_log_std(raw, lo, hi) if lo is not None else raw
    sigma = torch.exp(s)
    u = m + sigma * n
    a, one_minus_a2, _ = _tanh_parts(u)
    g_a = grad_action.to(cd)
    if scale is not None:
        g_a = g_a * scale
    g_lp = grad_log_prob.to(cd).unsqueeze(-1)
    d_u = g_a * one_minus_a2 + g_lp * 2.0 * a
    d_s = d_u * sigma * n - g_lp
    if lo is not None:
        d_s = d_s * (0.5 * (hi - lo)) * (1.0 - torch.tanh(raw).square())
    return d_u.to(dtype), d_s.to(dtype)


def _plogp(p: torch.Tensor, log_p: torch.Tensor) -> torch.Tensor:
    """``p * log_p`` with ``0 * log 0 = 0`` (actions masked with ``-inf`` logits contribute nothing)."""
    return torch.where(p > 0, p * log_p, torch.zeros((), dtype=p.dtype, device=p.device))


def categorical_fwd(logits, want_sum):
    dtype, cd = logits.dtype, compute_dtype(logits.dtype)
    log_probs = torch.log_softmax(logits.to(cd), dim=-1)
    probs = log_probs.exp()
    entropy = -_plogp(probs, log_probs).sum(-1)
    entropy_sum = entropy.sum() if want_sum else None
    return probs.to(dtype), log_probs.to(dtype), entropy.to(dtype), entropy_sum


def categorical_bwd(grad_probs, grad_log_probs, grad_entropy, logits):
    """``d z_j = g_lp_j - p_j sum(g_lp) + p_j (g_p_j - sum(g_p p)) - g_H p_j (log p_j + H)``."""
    dtype, cd = logits.dtype, compute_dtype(logits.dtype)
    log_probs = torch.log_softmax(logits.to(cd), dim=-1)
    probs = log_probs.exp()
    entropy = -_plogp(probs, log_probs).sum(-1, keepdim=True)
    g_p, g_lp = grad_probs.to(cd), grad_log_probs.to(cd)
    g_h = grad_entropy.to(cd).unsqueeze(-1)
    d = g_lp - probs * g_lp.sum(-1, keepdim=True)
    d = d + probs * (g_p - (g_p * probs).sum(-1, keepdim=True))
    # p_j (log p_j + H) vanishes with p_j (masked actions); keep it finite there.
    d = d - g_h * torch.where(probs > 0, probs * (log_probs + entropy), torch.zeros((), dtype=cd, device=d.device))
    return d.to(dtype)
