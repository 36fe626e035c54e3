"""Tanh-squashed Gaussian sampling with the exact log-prob and the fused temperature loss: the op's public face.

Math (see ``fastsac.ops.reference`` for the numerics every backend follows)::

    sigma = exp(log_std);  u = mean + sigma * noise;  a = tanh(u)
    action   = a * action_scale + action_bias
    log_prob = sum_A [-0.5 noise^2 - log_std - 0.5 log(2 pi) - log(1 - tanh(u)^2) - log|action_scale|]

The forward is one ``torch.library`` custom op with a fake implementation and autograd, so ``torch.compile``
with ``fullgraph=True`` sees one node for the forward and one for the backward. With a target entropy it also
returns ``gap = mean(log_prob) + target`` from the same pass; the alpha loss ``-log_alpha * gap`` is then one
multiply in its own autograd node. The backward is a custom op too:
the backends implement the closed forms (``d_u = g_a * scale * (1 - a^2) + g_lp * 2a``, ``d_mean = d_u``,
``d_log_std = d_u * sigma * noise - g_lp``), not autograd of the reference.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import _validate
from .backends import backend_module, resolve_backend
from .reference import compute_dtype

# ----------------------------------------------------------------------------------------------------------------
# custom ops over (N, A) rows; the public functions below validate and reshape
# ----------------------------------------------------------------------------------------------------------------


@torch.library.custom_op("fastsac::squashed_gaussian", mutates_args=())
def _squashed_gaussian(
    mean: Tensor,
    log_std: Tensor,
    noise: Tensor,
    scale: Tensor | None,
    bias: Tensor | None,
    lo: float | None,
    hi: float | None,
    target: Tensor | None,
    backend: str,
) -> tuple[Tensor, Tensor, Tensor]:
    """Returns ``(action, log_prob, gap)``; with ``target`` given, ``gap = mean(log_prob) + target`` (0-dim, from
    the kernel's per-block partial sums; not differentiable), else ``gap`` is an empty tensor."""
    want_gap = target is not None
    action, log_prob, lp_sum = backend_module(backend).squashed_gaussian_fwd(
        mean, log_std, noise, scale, bias, lo, hi, want_gap
    )
    gap = lp_sum / mean.shape[0] + target if want_gap else mean.new_empty((0,))
    return action, log_prob, gap


@_squashed_gaussian.register_fake
def _(mean, log_std, noise, scale, bias, lo, hi, target, backend):
    gap = target.new_empty(()) if target is not None else mean.new_empty((0,))
    return torch.empty_like(mean), mean.new_empty(mean.shape[:-1]), gap


@torch.library.custom_op("fastsac::squashed_gaussian_backward", mutates_args=())
def _squashed_gaussian_backward(
    grad_action: Tensor,
    grad_log_prob: Tensor,
    mean: Tensor,
    log_std: Tensor,
    noise: Tensor,
    scale: Tensor | None,
    lo: float | None,
    hi: float | None,
    backend: str,
) -> tuple[Tensor, Tensor]:
    return backend_module(backend).squashed_gaussian_bwd(grad_action, grad_log_prob, mean, log_std, noise, scale, lo, hi)


@_squashed_gaussian_backward.register_fake
def _(grad_action, grad_log_prob, mean, log_std, noise, scale, lo, hi, backend):
    return torch.empty_like(mean), torch.empty_like(log_std)


def _incoming(grad: Tensor | None, like: Tensor, shape) -> Tensor:
    """Backends take real, contiguous gradients (a sum's backward hands over stride-0 expanded tensors)."""
    return like.new_zeros(shape) if grad is None else grad.contiguous()


def _setup(ctx, inputs, output):
    mean, log_std, noise, scale, _bias, lo, hi = inputs[:7]
    ctx.save_for_backward(mean, log_std, noise, scale)
    ctx.lo, ctx.hi, ctx.backend = lo, hi, inputs[-1]
    ctx.mark_non_differentiable(output[2])
    ctx.set_materialize_grads(False)  # an unused output's gradient arrives as None


def _backward(ctx, grad_action, grad_log_prob, _grad_gap):
    no_grads = (None,) * 7
    if not (ctx.needs_input_grad[0] or ctx.needs_input_grad[1]) or (grad_action is None and grad_log_prob is None):
        return (None, None, *no_grads)
    mean, log_std, noise, scale = ctx.saved_tensors
    d_mean, d_log_std = _squashed_gaussian_backward(
        _incoming(grad_action, mean, mean.shape),
        _incoming(grad_log_prob, mean, mean.shape[:1]),
        mean,
        log_std,
        noise,
        scale,
        ctx.lo,
        ctx.hi,
        ctx.backend,
    )
    return (d_mean, d_log_std, *no_grads)


_squashed_gaussian.register_autograd(_backward, setup_context=_setup)


# ----------------------------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------------------------


def _prepare(mean, log_std, noise, action_scale, action_bias, log_std_bounds, backend):
    names = ("mean", "log_std", "noise")
    tensors = tuple(_validate.check_tensor(n, t) for n, t in zip(names, (mean, log_std, noise)))
    _validate.check_same(names, tensors)
    cd = compute_dtype(mean.dtype)
    scale = _validate.per_action("action_scale", action_scale, mean, cd)
    bias = _validate.per_action("action_bias", action_bias, mean, cd)
    lo, hi = _validate.bounds(log_std_bounds)
    name = resolve_backend(mean, backend=backend)
    rows = tuple(_validate.as_rows(t) for t in tensors)
    return rows, scale, bias, lo, hi, name


def squashed_gaussian(
    mean: Tensor,
    log_std: Tensor,
    noise: Tensor,
    *,
    action_scale=None,
    action_bias=None,
    log_std_bounds=None,
    backend: str = "auto",
) -> tuple[Tensor, Tensor]:
    """Sample ``action = tanh(mean + exp(log_std) * noise) * action_scale + action_bias`` and its exact log-prob.

    Args:
        mean, log_std, noise: tensors of shape ``(..., A)``, one dtype (float32, bfloat16, float16, or float64),
            one device. ``noise`` is standard normal (``torch.randn_like(mean)``) and receives no gradient.
            With ``log_std_bounds`` given, ``log_std`` is the raw network output.
        action_scale, action_bias: ``None``, a number, or a tensor of shape ``(A,)``; constants (no gradient).
        log_std_bounds: ``None`` or ``(lo, hi)``; bounds ``log_std`` smoothly as
            ``lo + 0.5 * (hi - lo) * (tanh(raw) + 1)``.
        backend: ``"auto"``, ``"torch"``, ``"triton"`` or ``"cuda"`` (``FASTSAC_BACKEND`` overrides ``auto``).

    Returns:
        ``(action, log_prob)`` of shapes ``(..., A)`` and ``(...)``, in the input dtype. The log-prob includes
        the tanh Jacobian in its exact form and stays finite when tanh saturates.
    """
    (m, s, n), scale, bias, lo, hi, name = _prepare(mean, log_std, noise, action_scale, action_bias, log_std_bounds, backend)
    action, log_prob, _ = _squashed_gaussian(m, s, n, scale, bias, lo, hi, None, name)
    return action.reshape(mean.shape), log_prob.reshape(mean.shape[:-1])


def squashed_gaussian_with_alpha_loss(
    mean: Tensor,
    log_std: Tensor,
    noise: Tensor,
    log_alpha: Tensor,
    target_entropy,
    *,
    action_scale=None,
    action_bias=None,
    log_std_bounds=None,
    backend: str = "auto",
) -> tuple[Tensor, Tensor, Tensor]:
    """``squashed_gaussian`` plus ``alpha_loss = -log_alpha * mean(log_prob.detach() + target_entropy)``.

    The loss comes from the same kernel pass (per-block partial sums of the log-prob). Its gradient reaches
    ``log_alpha`` only. ``log_alpha`` is a 0-dim tensor; ``target_entropy`` a number or a 0-dim tensor (pass a
    tensor when it changes during training so compiled code does not recompile).

    Returns:
        ``(action, log_prob, alpha_loss)``; ``alpha_loss`` is 0-dim in ``log_alpha``'s dtype.
    """
    (m, s, n), scale, bias, lo, hi, name = _prepare(mean, log_std, noise, action_scale, action_bias, log_std_bounds, backend)
    log_alpha = _validate.log_alpha(log_alpha, mean)
    target = _validate.target_entropy(target_entropy, mean, compute_dtype(mean.dtype))
    action, log_prob, gap = _squashed_gaussian(m, s, n, scale, bias, lo, hi, target, name)
    # A separate (one-multiply) autograd node: backpropagating the actor loss first does not free what the
    # alpha loss needs, so Velora-style code with two .backward() calls works.
    alpha_loss = -(log_alpha * gap.to(log_alpha.dtype))
    return action.reshape(mean.shape), log_prob.reshape(mean.shape[:-1]), alpha_loss


def deterministic_action(mean: Tensor, *, action_scale=None, action_bias=None) -> Tensor:
    """The evaluation action ``tanh(mean) * action_scale + action_bias``."""
    _validate.check_tensor("mean", mean)
    action = torch.tanh(mean)
    cd = compute_dtype(mean.dtype)
    scale = _validate.per_action("action_scale", action_scale, mean, cd)
    bias = _validate.per_action("action_bias", action_bias, mean, cd)
    if scale is not None:
        action = action * scale.to(mean.dtype)
    if bias is not None:
        action = action + bias.to(mean.dtype)
    return action
