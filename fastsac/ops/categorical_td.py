"""The categorical (C51) TD loss of a distributional critic in one pass: the op's public face.

Math (FlashSAC's critic, arXiv 2604.04539; see ``fastsac.ops.reference.categorical_td_project``): the support is
``z_k = v_min + k dz`` with ``dz = (v_max - v_min) / (K - 1)``. Per sample ``b`` each atom of the target
distribution ``p`` moves to ``t_k = clip(reward + gamma * not_done * (z_k - entropy_term), v_min, v_max)`` and its
mass is split between its two neighbouring atoms (C51; on an atom, all of it goes there, so the projection ``m``
keeps the mass: ``sum m = sum p``). The loss of each critic member and sample is the cross-entropy
``loss = -sum_k m_k log_softmax(logits)_k``. Gradient, to ``logits`` only (the target is a constant)::

    d loss / d logits_j = softmax(logits)_j * sum_k m_k - m_j          (times the incoming gradient)

The forward computes ``m`` once per sample (shared by the members) and keeps it for the backward: ``m`` is B x K
floats written once and read once per member, where recomputing it in the backward would repeat the projection (a
scatter whose every atom depends on where its neighbours landed, which does not vectorise) once per member, and the
backward would read the same B x K floats anyway (the target probabilities) plus three vectors.

Paths, chosen per call as for the other ops (``fastsac.ops.squashed_gaussian``): inside ``torch.compile`` and for
the ``triton`` / ``cpp`` backends on GPU tensors one op with a fake implementation and autograd (one graph node for
the forward, one for the backward: the extension's dispatcher op ``categorical_td`` where the extension is the
backend, else the ``torch.library`` custom op ``fastsac::categorical_td``); eager on CPU tensors with the extension
its C++ entry point, an autograd node in C++ when a gradient is wanted; eager on the torch backend the reference
projection and autograd of ``log_softmax`` (one fused backward node).
"""

from __future__ import annotations

from numbers import Real

import torch
from torch import Tensor

from . import _validate
from . import extension, reference
from . import backends
from .backends import backend_module, resolve_backend
from .reference import compute_dtype

# ----------------------------------------------------------------------------------------------------------------
# custom op over (C, B, K) logits; the public function below validates and reshapes
# ----------------------------------------------------------------------------------------------------------------


@torch.library.custom_op("fastsac::categorical_td", mutates_args=())
def _categorical_td(
    logits: Tensor,
    target_probs: Tensor,
    reward: Tensor,
    not_done: Tensor,
    entropy_term: Tensor,
    gamma: float,
    v_min: float,
    v_max: float,
    backend: str,
) -> tuple[Tensor, Tensor]:
    """Returns ``(loss (C, B), m (B, K))``; ``m`` (the projected target, compute dtype) is not differentiable."""
    loss, m = backend_module(backend).categorical_td_fwd(logits, target_probs, reward, not_done, entropy_term,
                                                         gamma, v_min, v_max)
    return loss, m


def _fake(logits, target_probs, reward, not_done, entropy_term, gamma, v_min, v_max, *backend):
    return logits.new_empty(logits.shape[:-1]), torch.empty_like(target_probs)


_categorical_td.register_fake(_fake)


@torch.library.custom_op("fastsac::categorical_td_backward", mutates_args=())
def _categorical_td_backward(grad_loss: Tensor, logits: Tensor, m: Tensor, backend: str) -> Tensor:
    return backend_module(backend).categorical_td_bwd(grad_loss, logits, m)


def _fake_backward(grad_loss, logits, m, *backend):
    return torch.empty_like(logits)


_categorical_td_backward.register_fake(_fake_backward)


def _autograd(backward_op):
    """``(backward, setup_context)`` of an op with the inputs ``(logits, target_probs, reward, not_done,
    entropy_term, gamma, v_min, v_max, *extra)`` whose backward op is ``backward_op(grad_loss, logits, m, *extra)``;
    ``extra`` is the Python custom op's backend name, nothing for the extension's dispatcher op."""

    def setup(ctx, inputs, output):
        ctx.save_for_backward(inputs[0], output[1])
        ctx.extra = tuple(inputs[8:])
        ctx.mark_non_differentiable(output[1])
        ctx.set_materialize_grads(False)  # an unused output's gradient arrives as None

    def backward(ctx, grad_loss, _grad_m):
        no_grads = (None,) * (len(ctx.needs_input_grad) - 1)
        if not ctx.needs_input_grad[0] or grad_loss is None:
            return (None, *no_grads)
        logits, m = ctx.saved_tensors
        return (backward_op(grad_loss.contiguous(), logits, m, *ctx.extra), *no_grads)

    return backward, setup


_backward, _setup = _autograd(_categorical_td_backward)
_categorical_td.register_autograd(_backward, setup_context=_setup)


extension.register_dispatcher_op("categorical_td", _fake, _fake_backward, _autograd)  # csrc/library.cpp


def _op_call(logits, target_probs, reward, not_done, entropy_term, gamma, v_min, v_max, name):
    """``loss (C, B)`` as one graph node: the extension's dispatcher op where backend ``name`` is the extension,
    else the Python custom op."""
    ext = extension.dispatcher_ops(logits.device.type) if name == "cpp" else None
    if ext is not None:
        return ext.categorical_td(logits, target_probs, reward, not_done, entropy_term, gamma, v_min, v_max)[0]
    return _categorical_td(logits, target_probs, reward, not_done, entropy_term, gamma, v_min, v_max, name)[0]


# ----------------------------------------------------------------------------------------------------------------
# eager paths
# ----------------------------------------------------------------------------------------------------------------


def _reference(logits, target_probs, reward, not_done, entropy_term, gamma, v_min, v_max):
    """The loss ``(..., B)`` by the reference: the projection without autograd, then the cross-entropy under
    autograd (``log_softmax``'s backward is one fused node: ``g (softmax * sum m - m)``)."""
    dtype = logits.dtype
    cd = compute_dtype(dtype)
    z = logits if dtype == cd else logits.to(cd)
    with torch.no_grad():
        m = reference.categorical_td_project(target_probs, reward, not_done, entropy_term, gamma, v_min, v_max)
    loss = torch.linalg.vecdot(torch.log_softmax(z, dim=-1), m).neg()
    return loss if dtype == cd else loss.to(dtype)


def _direct(logits, target_probs, reward, not_done, entropy_term, gamma, v_min, v_max):
    """The loss by the CPU extension: its forward alone, or, when a gradient is wanted, its C++ autograd node."""
    grad = torch.is_grad_enabled() and logits.requires_grad
    x = _as_members(logits)
    loss = extension.module_for("cpu").categorical_td_eager(x, target_probs, reward, not_done, entropy_term, gamma,
                                                            v_min, v_max, grad)
    return loss.view(logits.shape[:-1])


# ----------------------------------------------------------------------------------------------------------------
# checks and the public function
# ----------------------------------------------------------------------------------------------------------------


def _as_members(logits: Tensor) -> Tensor:
    """``(..., B, K)`` -> contiguous ``(C, B, K)`` (C the product of the leading dims, 1 without any)."""
    x = logits.reshape(-1, logits.shape[-2], logits.shape[-1])
    return x if x.is_contiguous() else x.contiguous()


def _number(name: str, value) -> float:
    if isinstance(value, torch.Tensor) or not isinstance(value, Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a Python number, got {type(value).__name__}")
    value = float(value)
    if not value - value == 0.0:  # math.isfinite, in a form torch.compile(dynamic=True) traces (a SymFloat here)
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _side_input(name: str, t, shape: tuple, logits: Tensor, cd: torch.dtype) -> Tensor:
    """A target-side input: a tensor of ``shape`` in float32 or the logits' dtype, on the logits' device; returned
    detached, contiguous, in the compute dtype (no copy in the common case)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if tuple(t.shape) != shape:
        raise ValueError(f"{name} must have shape {shape} (from logits of shape {tuple(logits.shape)}: "
                         f"(..., B, K)), got {tuple(t.shape)}")
    if t.dtype not in (torch.float32, logits.dtype):
        raise TypeError(f"{name} has dtype {t.dtype}; give float32 or the logits' dtype ({logits.dtype})")
    if t.device != logits.device:
        raise ValueError(f"{name} is on {t.device} but logits is on {logits.device}; move them to one device")
    t = t.detach()
    if t.dtype != cd:
        t = t.to(cd)
    return t if t.is_contiguous() else t.contiguous()


def _check(logits, target_probs, reward, not_done, entropy_term, gamma, v_min, v_max):
    """Validate; returns the target-side tensors in the compute dtype and the three numbers as floats."""
    _validate.check_tensor("logits", logits)
    if logits.dim() < 2:
        raise ValueError(f"logits must be (..., B, K) with at least 2 dimensions, got shape {tuple(logits.shape)}")
    B, K = logits.shape[-2], logits.shape[-1]
    if K < 2:
        raise ValueError(f"the support needs K >= 2 atoms, got logits of shape {tuple(logits.shape)} (K = {K})")
    gamma, v_min, v_max = _number("gamma", gamma), _number("v_min", v_min), _number("v_max", v_max)
    if not v_min < v_max:
        raise ValueError(f"the support needs v_min < v_max, got v_min={v_min}, v_max={v_max}")
    cd = compute_dtype(logits.dtype)
    tp = _side_input("target_probs", target_probs, (B, K), logits, cd)
    r, nd, ent = (_side_input(n, t, (B,), logits, cd)
                  for n, t in (("reward", reward), ("not_done", not_done), ("entropy_term", entropy_term)))
    return tp, r, nd, ent, gamma, v_min, v_max


def categorical_td_loss(
    logits: Tensor,
    target_probs: Tensor,
    reward: Tensor,
    not_done: Tensor,
    entropy_term: Tensor,
    *,
    gamma: float,
    v_min: float,
    v_max: float,
    backend: str = "auto",
) -> Tensor:
    """The C51 cross-entropy of the online critics' ``logits`` against the projected soft TD target.

    Args:
        logits: ``(..., B, K)`` online critic logits (leading dims: critic members, e.g. ``(2, B, K)``; or just
            ``(B, K)``), float32, bfloat16, float16 or float64; math in float32 (float64 for float64).
        target_probs: ``(B, K)`` target distribution over the support ``z_k = v_min + k (v_max - v_min) / (K - 1)``,
            shared by all members; a constant (no gradient).
        reward, not_done, entropy_term: ``(B,)`` each: the reward, ``1 - terminated`` (float) and
            ``alpha * log pi(a'|s')``; constants. These and ``target_probs`` are float32 or the logits' dtype.
        gamma: the discount; v_min, v_max: the support's ends (``v_min < v_max``; ``K >= 2``).
        backend: ``"auto"``, ``"torch"``, ``"triton"`` or ``"cpp"``; ``FASTSAC_BACKEND`` overrides ``auto``. The
            Triton kernels take K <= 256 atoms: ``auto`` passes a larger support to the next backend, a named
            ``"triton"`` raises.

    Returns:
        ``loss`` of shape ``(..., B)`` in the logits' dtype: ``-sum_k m_k log_softmax(logits)_k`` with ``m`` the
        projection of the target shifted to ``clip(reward + gamma * not_done * (z - entropy_term), v_min, v_max)``.
        Its gradient reaches ``logits`` only: ``grad * (softmax(logits) * sum(m) - m)``.
    """
    tp, r, nd, ent, gamma, v_min, v_max = _check(logits, target_probs, reward, not_done, entropy_term,
                                                 gamma, v_min, v_max)
    name = resolve_backend(logits, backend=backend)
    if name == "triton" and logits.shape[-1] > backend_module("triton").categorical_td.MAX_K and \
            backends.requested_backend(backend) == "auto":  # a support too large for a Triton tile: auto's next choice
        name = "cpp" if extension.is_available(logits.device.type) else "torch"
    if not torch.compiler.is_compiling():
        if name == "torch":
            return _reference(logits, tp, r, nd, ent, gamma, v_min, v_max)
        if name == "cpp" and logits.device.type == "cpu":
            return _direct(logits, tp, r, nd, ent, gamma, v_min, v_max)
    loss = _op_call(_as_members(logits), tp, r, nd, ent, gamma, v_min, v_max, name)
    return loss.reshape(logits.shape[:-1])
