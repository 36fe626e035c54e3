"""Tanh-squashed Gaussian sampling with the exact log-prob and the fused temperature loss: the op's public face.

Math (see ``fastsac.ops.reference`` for the numerics every backend follows)::

    sigma = exp(log_std);  u = mean + sigma * noise;  a = tanh(u)
    action   = a * action_scale + action_bias
    log_prob = sum_A [-0.5 noise^2 - log_std - 0.5 log(2 pi) - log(1 - tanh(u)^2) - log|action_scale|]

Three paths, chosen per call, with the same math and results within the accuracy contract:

- **compiled** (inside ``torch.compile``) and the ``triton`` / ``cpp`` backends on GPU tensors: one op with a fake
  implementation and autograd, so ``torch.compile`` with ``fullgraph=True`` sees one node for the forward and one
  for the backward. With the C++ extension as the backend (CPU, or its CUDA build) it is the extension's op
  registered with torch's dispatcher (csrc/library.cpp: no Python between the dispatcher and the kernel); with
  the other backends a ``torch.library`` custom op in Python (``fastsac::squashed_gaussian``);
- **eager, the C++ extension on CPU tensors** (``auto``'s first choice on a CPU where the extension is built): the
  extension called directly, without the custom-op dispatch (~15 us a call): its forward alone, or, when a gradient
  is wanted, its C++ autograd node (csrc/autograd.cpp), whose backward runs without Python;
- **eager on the torch backend** (a CPU without the extension, or ``backend="torch"``): the reference math runs
  directly inside a small ``torch.autograd.Function`` with the same closed-form backward.

In the eager paths an autograd node is only made when a gradient is wanted; under ``no_grad`` the forward runs
bare. With a target entropy the forward also returns ``gap = mean(log_prob) + target`` from the same pass; the alpha
loss ``-log_alpha * gap`` is then one multiply in its own autograd node. Every backward is the closed form
(``d_u = g_a * scale * (1 - a^2) + g_lp * 2a``, ``d_mean = d_u``, ``d_log_std = d_u * sigma * noise - g_lp``), not
autograd of the reference.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import _validate
from . import _eager, extension, reference
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


def _fake(mean, log_std, noise, scale, bias, lo, hi, target, *backend):
    gap = target.new_empty(()) if target is not None else mean.new_empty((0,))
    return torch.empty_like(mean), mean.new_empty(mean.shape[:-1]), gap


_squashed_gaussian.register_fake(_fake)


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


def _fake_backward(grad_action, grad_log_prob, mean, log_std, noise, scale, lo, hi, *backend):
    return torch.empty_like(mean), torch.empty_like(log_std)


_squashed_gaussian_backward.register_fake(_fake_backward)


def _autograd(backward_op):
    """``(backward, setup_context)`` of an op with the inputs ``(mean, log_std, noise, scale, bias, lo, hi, target,
    *extra)`` whose backward op is ``backward_op(grad_action, grad_log_prob, mean, log_std, noise, scale, lo, hi,
    *extra)``; ``extra`` is the Python custom op's backend name, nothing for the extension's dispatcher op."""

    def setup(ctx, inputs, output):
        mean, log_std, noise, scale, _bias, lo, hi = inputs[:7]
        ctx.save_for_backward(mean, log_std, noise, scale)
        ctx.lo, ctx.hi, ctx.extra = lo, hi, tuple(inputs[8:])
        ctx.mark_non_differentiable(output[2])
        ctx.set_materialize_grads(False)  # an unused output's gradient arrives as None

    def backward(ctx, grad_action, grad_log_prob, _grad_gap):
        no_grads = (None,) * (len(ctx.needs_input_grad) - 2)
        if not (ctx.needs_input_grad[0] or ctx.needs_input_grad[1]) or (grad_action is None and grad_log_prob is None):
            return (None, None, *no_grads)
        mean, log_std, noise, scale = ctx.saved_tensors
        d_mean, d_log_std = backward_op(
            _validate.incoming_grad(grad_action, mean, mean.shape),
            _validate.incoming_grad(grad_log_prob, mean, mean.shape[:1]),
            mean,
            log_std,
            noise,
            scale,
            ctx.lo,
            ctx.hi,
            *ctx.extra,
        )
        return (d_mean, d_log_std, *no_grads)

    return backward, setup


_backward, _setup = _autograd(_squashed_gaussian_backward)
_squashed_gaussian.register_autograd(_backward, setup_context=_setup)


extension.register_dispatcher_op("squashed_gaussian", _fake, _fake_backward, _autograd)  # csrc/library.cpp


def _op_call(mean, log_std, noise, scale, bias, lo, hi, target, name):
    """The op on (N, A) rows as one graph node: the extension's dispatcher op where backend ``name`` is the
    extension (no Python in its dispatch), else the Python custom op."""
    ext = extension.dispatcher_ops(mean.device.type) if name == "cpp" else None
    if ext is not None:
        return ext.squashed_gaussian(mean, log_std, noise, scale, bias, lo, hi, target)
    return _squashed_gaussian(mean, log_std, noise, scale, bias, lo, hi, target, name)


# ----------------------------------------------------------------------------------------------------------------
# eager path on the torch backend: the reference math without the custom-op dispatch
# ----------------------------------------------------------------------------------------------------------------


class _EagerSquashedGaussian(torch.autograd.Function):
    """``(action, log_prob, gap)`` on (..., A) tensors with the closed-form backward of ``fastsac.ops.reference``;
    ``gap = mean(log_prob) + target`` (not differentiable) when ``target`` is given, else None."""

    @staticmethod
    def forward(ctx, mean, log_std, noise, scale, bias, lo, hi, target):
        dtype = mean.dtype
        cd = compute_dtype(dtype)
        if dtype != cd:
            mean, log_std, noise = mean.to(cd), log_std.to(cd), noise.to(cd)
        action, log_prob, parts = reference.squashed_gaussian_parts(mean, log_std, noise, scale, bias, lo, hi)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(*parts)
        ctx.scale, ctx.lo, ctx.hi, ctx.dtype = scale, lo, hi, dtype
        gap = None
        if target is not None:
            gap = log_prob.mean().add_(target)
            ctx.mark_non_differentiable(gap)
        if dtype != cd:
            action, log_prob = action.to(dtype), log_prob.to(dtype)
        return action, log_prob, gap

    @staticmethod
    def backward(ctx, g_action, g_log_prob, _g_gap):
        no_grads = (None,) * 6
        if g_action is None and g_log_prob is None:
            return (None, None, *no_grads)
        parts = reference.SquashedGaussianParts(*ctx.saved_tensors)
        cd = parts.a.dtype
        if ctx.dtype != cd:
            g_action = None if g_action is None else g_action.to(cd)
            g_log_prob = None if g_log_prob is None else g_log_prob.to(cd)
        d_mean, d_log_std = reference.squashed_gaussian_grads(g_action, g_log_prob, parts, ctx.scale, ctx.lo, ctx.hi)
        if ctx.dtype != cd:
            d_mean, d_log_std = d_mean.to(ctx.dtype), d_log_std.to(ctx.dtype)
        return (d_mean, d_log_std, *no_grads)


def _eager_call(mean, log_std, noise, scale, bias, lo, hi, target):
    return _eager.run(_EagerSquashedGaussian, mean.requires_grad or log_std.requires_grad,
                      mean, log_std, noise, scale, bias, lo, hi, target)


# ----------------------------------------------------------------------------------------------------------------
# eager path of the C++ extension on CPU tensors: its functions without the custom-op dispatch
# ----------------------------------------------------------------------------------------------------------------


def _direct_call(mean, log_std, noise, scale, bias, lo, hi, target):
    """``(action, log_prob, gap)`` in the inputs' shapes by the CPU extension: its forward alone, or, when a gradient
    is wanted, its C++ autograd node (forward and closed-form backward without Python in between)."""
    rows = _validate.is_rows(mean) and _validate.is_rows(log_std) and _validate.is_rows(noise)
    m, s, n = (mean, log_std, noise) if rows else (_validate.as_rows(t) for t in (mean, log_std, noise))
    grad = torch.is_grad_enabled() and (mean.requires_grad or log_std.requires_grad)
    action, log_prob, gap = extension.module_for("cpu").squashed_gaussian_eager(
        m, s, n, scale, bias, lo, hi, _validate.as_number(target), grad)
    if rows:  # a view costs ~2.5 us a call on a CPU: only where the shape changes
        return action, log_prob, gap
    return action.view(mean.shape), log_prob.view(mean.shape[:-1]), gap


# ----------------------------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------------------------


_NAMES = ("mean", "log_std", "noise")
_REFERENCE, _DIRECT, _OP = "reference", "direct", "op"


def _path(name: str, x: Tensor) -> str:
    """Which of the three paths runs backend ``name`` for tensors like ``x``."""
    if torch.compiler.is_compiling():
        return _OP
    if name == "torch":
        return _REFERENCE
    return _DIRECT if name == "cpp" and x.device.type == "cpu" else _OP


def _check(mean, log_std, noise, action_scale, action_bias, log_std_bounds, backend):
    """Validate everything; returns ``(scale, bias, lo, hi, backend name, path)``, ``path`` one of
    ``_REFERENCE``, ``_DIRECT`` and ``_OP`` (see the module docstring). On the reference path ``scale`` and ``bias``
    stay numbers or broadcastable tensors; on the others they are (A,) tensors."""
    _validate.check_inputs(_NAMES, (mean, log_std, noise))
    lo, hi = _validate.bounds(log_std_bounds)
    name = resolve_backend(mean, backend=backend)
    path = _path(name, mean)
    cd = compute_dtype(mean.dtype)
    check = _validate.per_action_broadcast if path is _REFERENCE else _validate.per_action
    return check("action_scale", action_scale, mean, cd), check("action_bias", action_bias, mean, cd), lo, hi, name, path


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
        backend: ``"auto"``, ``"torch"``, ``"triton"`` or ``"cpp"`` (the C++ extension); ``FASTSAC_BACKEND``
            overrides ``auto``. The former name ``"cuda"`` raises and names ``"cpp"``.

    Returns:
        ``(action, log_prob)`` of shapes ``(..., A)`` and ``(...)``, in the input dtype. The log-prob includes
        the tanh Jacobian in its exact form and stays finite when tanh saturates.
    """
    scale, bias, lo, hi, name, path = _check(mean, log_std, noise, action_scale, action_bias, log_std_bounds, backend)
    if path is _REFERENCE:
        return _eager_call(mean, log_std, noise, scale, bias, lo, hi, None)[:2]
    if path is _DIRECT:
        return _direct_call(mean, log_std, noise, scale, bias, lo, hi, None)[:2]
    m, s, n = (_validate.as_rows(t) for t in (mean, log_std, noise))
    action, log_prob, _ = _op_call(m, s, n, scale, bias, lo, hi, None, name)
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
    scale, bias, lo, hi, name, path = _check(mean, log_std, noise, action_scale, action_bias, log_std_bounds, backend)
    log_alpha = _validate.log_alpha(log_alpha, mean)
    if path is not _OP:
        call = _eager_call if path is _REFERENCE else _direct_call
        action, log_prob, gap = call(mean, log_std, noise, scale, bias, lo, hi,
                                     _validate.target_entropy_eager(target_entropy, mean))
    else:
        target = _validate.target_entropy(target_entropy, mean, compute_dtype(mean.dtype))
        m, s, n = (_validate.as_rows(t) for t in (mean, log_std, noise))
        action, log_prob, gap = _op_call(m, s, n, scale, bias, lo, hi, target, name)
        action, log_prob = action.reshape(mean.shape), log_prob.reshape(mean.shape[:-1])
    # A separate (one-multiply) autograd node: backpropagating the actor loss first does not free what the
    # alpha loss needs, so Velora-style code with two .backward() calls works.
    alpha_loss = log_alpha * (gap.neg_() if gap.dtype == log_alpha.dtype else gap.to(log_alpha.dtype).neg_())
    return action, log_prob, alpha_loss


def deterministic_action(mean: Tensor, *, action_scale=None, action_bias=None) -> Tensor:
    """The evaluation action ``tanh(mean) * action_scale + action_bias``."""
    _validate.check_tensor("mean", mean)
    action = torch.tanh(mean)
    scale = _validate.per_action_broadcast("action_scale", action_scale, mean, mean.dtype)
    bias = _validate.per_action_broadcast("action_bias", action_bias, mean, mean.dtype)
    if scale is not None:
        action = action * scale
    if bias is not None:
        action = action + bias
    return action
