"""Input checks shared by the public ops: each failure says what was wrong and what to do."""

from __future__ import annotations

import functools
import math
from numbers import Real

import torch

FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)


def check_tensor(name: str, x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} has dtype {x.dtype}; the fused ops take float32, bfloat16, float16 or float64 "
            f"(convert with {name}.float())"
        )
    if x.dim() == 0:
        raise ValueError(f"{name} must have at least one dimension (..., A); got a 0-dim tensor")
    if x.shape[-1] == 0 or x.numel() == 0:
        raise ValueError(f"{name} of shape {tuple(x.shape)} is empty; the fused ops need at least one row and one column")
    return x


def check_same(names: tuple[str, ...], tensors: tuple[torch.Tensor, ...]) -> None:
    """All tensors share shape, dtype and device with the first."""
    first_name, first = names[0], tensors[0]
    for name, t in zip(names[1:], tensors[1:]):
        if t.shape != first.shape:
            raise ValueError(
                f"{name} has shape {tuple(t.shape)} but {first_name} has shape {tuple(first.shape)}; they must match"
            )
        if t.dtype != first.dtype:
            raise TypeError(f"{name} has dtype {t.dtype} but {first_name} has dtype {first.dtype}; they must match")
        if t.device != first.device:
            raise ValueError(
                f"{name} is on {t.device} but {first_name} is on {first.device}; move them to one device"
            )


def check_inputs(names: tuple[str, ...], tensors: tuple) -> None:
    """:func:`check_tensor` of each and :func:`check_same`, with the common case (valid inputs) decided in a few
    attribute reads: this runs on every eager call of an op, where a microsecond is a measurable share."""
    first = tensors[0]
    if type(first) is torch.Tensor or isinstance(first, torch.Tensor):
        shape, dtype, device = first.shape, first.dtype, first.device
        if dtype in FLOAT_DTYPES and shape and shape[-1] and first.numel():
            for t in tensors[1:]:
                if not (isinstance(t, torch.Tensor) and t.shape == shape and t.dtype == dtype and t.device == device):
                    break
            else:
                return
    for name, t in zip(names, tensors):
        check_tensor(name, t)
    check_same(names, tensors)


def is_rows(x: torch.Tensor) -> bool:
    """Whether ``x`` already is what :func:`as_rows` makes: 2-D and contiguous."""
    return x.dim() == 2 and x.is_contiguous()


def as_rows(x: torch.Tensor) -> torch.Tensor:
    """(..., A) -> contiguous (N, A); non-contiguous inputs are copied (the kernels assume row-major rows)."""
    return x.reshape(-1, x.shape[-1]).contiguous()


def incoming_grad(grad: torch.Tensor | None, like: torch.Tensor, shape) -> torch.Tensor:
    """An output's incoming gradient as the backends' backward kernels take it: real and contiguous (a sum's backward
    hands over stride-0 expanded tensors; an unused output's gradient arrives as None and counts as zeros)."""
    return like.new_zeros(shape) if grad is None else grad.contiguous()


def per_action(name: str, value, like: torch.Tensor, compute_dtype: torch.dtype) -> torch.Tensor | None:
    """``None``, a number, or a tensor of 1 or A elements -> an (A,) contiguous tensor in the compute dtype, or None
    (what the custom ops and the kernels take)."""
    value = per_action_broadcast(name, value, like, compute_dtype)
    if value is None:
        return None
    if isinstance(value, float):
        return torch.full((like.shape[-1],), value, dtype=compute_dtype, device=like.device)
    return value.contiguous()


def per_action_broadcast(name: str, value, like: torch.Tensor, dtype: torch.dtype):
    """As :func:`per_action`, for the eager path: ``None``, a finite Python float, or a tensor that broadcasts
    against ``(..., A)`` (1 or A elements, no copy unless the dtype differs)."""
    if value is None:
        return None
    if isinstance(value, Real) and not isinstance(value, bool):
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value}")
        return value
    num_actions = like.shape[-1]
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be None, a number or a tensor of shape ({num_actions},); got {type(value).__name__}")
    if value.device != like.device:
        raise ValueError(f"{name} is on {value.device} but the inputs are on {like.device}; move it to one device")
    if not value.dtype.is_floating_point:
        raise TypeError(f"{name} has dtype {value.dtype}; give a floating-point tensor")
    n = value.numel()
    if n not in (1, num_actions) or value.dim() > 1:
        raise ValueError(
            f"{name} must be a scalar or have shape ({num_actions},) to match the action dimension; "
            f"got shape {tuple(value.shape)}"
        )
    value = value.detach()
    if value.dtype != dtype:
        value = value.to(dtype)
    return value if n == num_actions and value.dim() == 1 else value.reshape(-1).expand(num_actions)


@functools.lru_cache(maxsize=64)
def _bounds_cached(log_std_bounds: tuple) -> tuple[float | None, float | None]:
    return _bounds(log_std_bounds)


def bounds(log_std_bounds) -> tuple[float | None, float | None]:
    """``(lo, hi)`` as floats (``(None, None)`` without bounds); checked once per distinct tuple."""
    if log_std_bounds is None:
        return None, None
    if type(log_std_bounds) is tuple and not torch.compiler.is_compiling():  # dynamo traces through caches
        try:
            return _bounds_cached(log_std_bounds)
        except TypeError:  # unhashable entries: checked below, uncached
            pass
    return _bounds(log_std_bounds)


def _bounds(log_std_bounds) -> tuple[float | None, float | None]:
    try:
        lo, hi = (float(v) for v in log_std_bounds)
    except (TypeError, ValueError):
        raise TypeError(f"log_std_bounds must be a pair (lo, hi) of numbers, got {log_std_bounds!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"log_std_bounds must be finite, got ({lo}, {hi})")
    if not lo < hi:
        raise ValueError(f"log_std_bounds must satisfy lo < hi, got ({lo}, {hi})")
    return lo, hi


def log_alpha(value, like: torch.Tensor) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"log_alpha must be a 0-dim torch.Tensor (e.g. an nn.Parameter), got {type(value).__name__}")
    if value.dim() != 0:
        raise ValueError(f"log_alpha must be a 0-dim tensor (a single temperature), got shape {tuple(value.shape)}")
    if not value.dtype.is_floating_point:
        raise TypeError(f"log_alpha has dtype {value.dtype}; give a floating-point tensor")
    if value.device != like.device:
        raise ValueError(f"log_alpha is on {value.device} but the inputs are on {like.device}; move it to one device")
    return value


def target_entropy(value, like: torch.Tensor, compute_dtype: torch.dtype) -> torch.Tensor:
    """A float or a 0-dim tensor -> a 0-dim tensor in the compute dtype (tensors avoid recompiles when it changes)."""
    value = target_entropy_eager(value, like)
    if isinstance(value, float):
        return torch.full((), value, dtype=compute_dtype, device=like.device)
    return value.to(compute_dtype)


def as_number(value) -> float | None:
    """What :func:`target_entropy_eager` returned, as a Python float (None stays None)."""
    return value if value is None or type(value) is float else value.item()


def target_entropy_eager(value, like: torch.Tensor):
    """As :func:`target_entropy`, for the eager path: a finite float, or the 0-dim tensor detached (no copy)."""
    if type(value) is torch.Tensor and value.dim() == 0 and value.is_cpu and like.is_cpu:
        return value.detach()  # the common CPU case, decided in a few attribute reads (a call costs microseconds)
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.dim() > 1:
            raise ValueError(f"target_entropy must be a number or a 0-dim tensor, got shape {tuple(value.shape)}")
        if value.device != like.device:
            raise ValueError(
                f"target_entropy is on {value.device} but the inputs are on {like.device}; move it to one device"
            )
        return value.detach().reshape(())
    if isinstance(value, Real) and not isinstance(value, bool):
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"target_entropy must be finite, got {value}")
        return value
    raise TypeError(f"target_entropy must be a number or a 0-dim tensor, got {type(value).__name__}")
