"""Categorical policy statistics for discrete SAC in one pass: the op's public face.

From logits ``(..., A)``: ``probs = softmax``, ``log_probs = log_softmax``, ``entropy = -sum(probs * log_probs)``,
row-wise, with gradients to the logits; logits of ``-inf`` (masked actions) contribute ``0 * log 0 = 0``.
The alpha-loss variant adds ``alpha_loss = log_alpha * (mean(entropy.detach()) - target_entropy)`` from the same
pass (the op returns the entropy gap; the loss is one multiply in its own autograd node), with gradient to
``log_alpha`` only. Inside ``torch.compile`` and on the ``triton`` / ``cpp`` backends on GPU tensors, forward and
backward are one graph node each: the C++ extension's ops registered with torch's dispatcher where the extension is the
backend (csrc/library.cpp), else ``torch.library`` custom ops in Python. Eager, without the custom-op dispatch: on
CPU tensors the C++ extension is called directly, its forward alone or, when a gradient is wanted, its C++ autograd
node (``auto``'s first choice on a CPU where the extension is built), and on the torch backend the reference math
runs under autograd (``log_softmax`` has a fused backward).
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import _validate
from . import extension, reference
from .backends import backend_module, resolve_backend
from .reference import compute_dtype


@torch.library.custom_op("fastsac::categorical", mutates_args=())
def _categorical(logits: Tensor, target: Tensor | None, backend: str) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Returns ``(probs, log_probs, entropy, gap)``; with ``target`` given, ``gap = mean(entropy) - target`` (0-dim,
    from the kernel's per-block partial sums; not differentiable), else ``gap`` is an empty tensor."""
    want_gap = target is not None
    probs, log_probs, entropy, entropy_sum = backend_module(backend).categorical_fwd(logits, want_gap)
    gap = entropy_sum / logits.shape[0] - target if want_gap else logits.new_empty((0,))
    return probs, log_probs, entropy, gap


def _fake(logits, target, *backend):
    gap = target.new_empty(()) if target is not None else logits.new_empty((0,))
    return torch.empty_like(logits), torch.empty_like(logits), logits.new_empty(logits.shape[:-1]), gap


_categorical.register_fake(_fake)


@torch.library.custom_op("fastsac::categorical_backward", mutates_args=())
def _categorical_backward(
    grad_probs: Tensor, grad_log_probs: Tensor, grad_entropy: Tensor, logits: Tensor, backend: str
) -> Tensor:
    return backend_module(backend).categorical_bwd(grad_probs, grad_log_probs, grad_entropy, logits)


def _fake_backward(grad_probs, grad_log_probs, grad_entropy, logits, *backend):
    return torch.empty_like(logits)


_categorical_backward.register_fake(_fake_backward)


def _autograd(backward_op):
    """``(backward, setup_context)`` of an op with the inputs ``(logits, target, *extra)`` whose backward op is
    ``backward_op(grad_probs, grad_log_probs, grad_entropy, logits, *extra)``; ``extra`` is the Python custom op's
    backend name, nothing for the extension's dispatcher op."""

    def setup(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])
        ctx.extra = tuple(inputs[2:])
        ctx.mark_non_differentiable(output[3])
        ctx.set_materialize_grads(False)  # an unused output's gradient arrives as None

    def backward(ctx, grad_probs, grad_log_probs, grad_entropy, _grad_gap):
        no_grads = (None,) * (len(ctx.needs_input_grad) - 1)
        if not ctx.needs_input_grad[0] or (grad_probs is None and grad_log_probs is None and grad_entropy is None):
            return (None, *no_grads)
        (logits,) = ctx.saved_tensors
        d_logits = backward_op(
            _validate.incoming_grad(grad_probs, logits, logits.shape),
            _validate.incoming_grad(grad_log_probs, logits, logits.shape),
            _validate.incoming_grad(grad_entropy, logits, logits.shape[:1]),
            logits,
            *ctx.extra,
        )
        return (d_logits, *no_grads)

    return backward, setup


_backward, _setup = _autograd(_categorical_backward)
_categorical.register_autograd(_backward, setup_context=_setup)


extension.register_dispatcher_op("categorical", _fake, _fake_backward, _autograd)  # csrc/library.cpp


def _op_call(logits, target, name):
    """The op on (N, A) rows as one graph node: the extension's dispatcher op where backend ``name`` is the
    extension (no Python in its dispatch), else the Python custom op."""
    ext = extension.dispatcher_ops(logits.device.type) if name == "cpp" else None
    if ext is not None:
        return ext.categorical(logits, target)
    return _categorical(logits, target, name)


def _reference(logits, target):
    """``(probs, log_probs, entropy, gap)`` by the reference math under autograd (its ``log_softmax`` has one fused
    backward node, cheaper on a CPU than a Python closed form); ``gap = mean(entropy) - target``, detached."""
    dtype = logits.dtype
    cd = compute_dtype(dtype)
    z = logits if dtype == cd else logits.to(cd)
    # On a CPU, whether any action is masked (-inf) is known at once; elsewhere it would cost a device sync.
    masked = z.device.type != "cpu" or bool(torch.isneginf(z).any())
    probs, log_probs, entropy, _ = reference.categorical_parts(z, masked=masked)
    gap = None if target is None else entropy.detach().mean().sub_(target)
    if dtype != cd:
        probs, log_probs, entropy = probs.to(dtype), log_probs.to(dtype), entropy.to(dtype)
    return probs, log_probs, entropy, gap


def _direct(logits, target):
    """``(probs, log_probs, entropy, gap)`` in the input's shapes by the CPU extension: its forward alone, or, when a
    gradient is wanted, its C++ autograd node (forward and closed-form backward without Python in between)."""
    rows = _validate.is_rows(logits)
    z = logits if rows else _validate.as_rows(logits)
    grad = torch.is_grad_enabled() and logits.requires_grad
    probs, log_probs, entropy, gap = extension.module_for("cpu").categorical_eager(z, _validate.as_number(target), grad)
    if rows:  # a view costs ~2.5 us a call on a CPU: only where the shape changes
        return probs, log_probs, entropy, gap
    return probs.view(logits.shape), log_probs.view(logits.shape), entropy.view(logits.shape[:-1]), gap


def _prepare(logits, backend):
    """Validate; returns ``(backend name, eager path or None)``: the eager function to call, or None for the
    custom op."""
    _validate.check_tensor("logits", logits)
    name = resolve_backend(logits, backend=backend)
    if torch.compiler.is_compiling():
        return name, None
    if name == "torch":
        return name, _reference
    return name, _direct if name == "cpp" and logits.device.type == "cpu" else None


def categorical(logits: Tensor, *, backend: str = "auto") -> tuple[Tensor, Tensor, Tensor]:
    """Return ``(probs, log_probs, entropy)`` of the categorical distribution with these logits.

    Args:
        logits: ``(..., A)`` in float32, bfloat16, float16 or float64; ``-inf`` masks an action.
        backend: ``"auto"``, ``"torch"``, ``"triton"`` or ``"cpp"`` (the C++ extension); ``FASTSAC_BACKEND``
            overrides ``auto``. The former name ``"cuda"`` raises and names ``"cpp"``.

    Returns:
        ``probs`` and ``log_probs`` of shape ``(..., A)`` and ``entropy`` of shape ``(...)``, in the input dtype.
    """
    name, eager = _prepare(logits, backend)
    if eager is not None:
        return eager(logits, None)[:3]
    probs, log_probs, entropy, _ = _op_call(_validate.as_rows(logits), None, name)
    return probs.reshape(logits.shape), log_probs.reshape(logits.shape), entropy.reshape(logits.shape[:-1])


def categorical_with_alpha_loss(
    logits: Tensor, log_alpha: Tensor, target_entropy, *, backend: str = "auto"
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``categorical`` plus ``alpha_loss = log_alpha * (mean(entropy.detach()) - target_entropy)``.

    Alpha rises when the policy's entropy is below the target and falls when above. The gradient of the loss
    reaches ``log_alpha`` only.
    """
    name, eager = _prepare(logits, backend)
    log_alpha = _validate.log_alpha(log_alpha, logits)
    if eager is not None:
        probs, log_probs, entropy, gap = eager(logits, _validate.target_entropy_eager(target_entropy, logits))
    else:
        target = _validate.target_entropy(target_entropy, logits, compute_dtype(logits.dtype))
        probs, log_probs, entropy, gap = _op_call(_validate.as_rows(logits), target, name)
        probs, log_probs = probs.reshape(logits.shape), log_probs.reshape(logits.shape)
        entropy = entropy.reshape(logits.shape[:-1])
    if gap.dtype != log_alpha.dtype:
        gap = gap.to(log_alpha.dtype)
    alpha_loss = log_alpha * gap  # its own node: see squashed_gaussian_with_alpha_loss
    return probs, log_probs, entropy, alpha_loss
