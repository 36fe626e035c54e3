"""Input checks shared by the public ops: each failure says what was wrong and what to do."""

from __future__ import annotations

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


def as_rows(x: torch.Tensor) -> torch.Tensor:
    """(..., A) -> contiguous (N, A); non-contiguous inputs are copied (the kernels assume row-major rows)."""
    return x.reshape(-1, x.shape[-1]).contiguous()


def per_action(name: str, value, like: torch.Tensor, compute_dtype: torch.dtype) -> torch.Tensor | None:
    """``None``, a number, or a tensor of 1 or A elements -> an (A,) tensor in the compute dtype, or None."""
    if value is None:
        return None
    num_actions = like.shape[-1]
    if isinstance(value, Real) and not isinstance(value, bool):
        if not math.isfinite(float(value)):
            raise ValueError(f"{name} must be finite, got {value}")
        return torch.full((num_actions,), float(value), dtype=compute_dtype, device=like.device)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be None, a number or a tensor of shape ({num_actions},); got {type(value).__name__}")
    if value.device != like.device:
        raise ValueError(f"{name} is on {value.device} but the inputs are on {like.device}; move it to one device")
    if not value.dtype.is_floating_point:
        raise TypeError(f"{name} has dtype {value.dtype}; give a floating-point tensor")
    if value.numel() not in (1, num_actions) or value.dim() > 1:
        raise ValueError(
            f"{name} must be a scalar or have shape ({num_actions},) to match the action dimension; "
            f"got shape {tuple(value.shape)}"
        )
    return value.detach().to(compute_dtype).reshape(-1).expand(num_actions).contiguous()


def bounds(log_std_bounds) -> tuple[float | None, float | None]:
    if log_std_bounds is None:
        return None, None
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
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.dim() > 1:
            raise ValueError(f"target_entropy must be a number or a 0-dim tensor, got shape {tuple(value.shape)}")
        if value.device != like.device:
            raise ValueError(
                f"target_entropy is on {value.device} but the inputs are on {like.device}; move it to one device"
            )
        return value.detach().to(compute_dtype).reshape(())
    if isinstance(value, Real) and not isinstance(value, bool):
        if not math.isfinite(float(value)):
            raise ValueError(f"target_entropy must be finite, got {value}")
        return torch.full((), float(value), dtype=compute_dtype, device=like.device)
    raise TypeError(f"target_entropy must be a number or a 0-dim tensor, got {type(value).__name__}")
