"""Step schedules for the target entropy and for the entropy coefficient.

A schedule maps a training step to a float: ``schedule.value(step)`` (or ``schedule(step)``). Every schedule
starts at ``start`` at step 0, reaches ``end`` at step ``steps`` and holds ``end`` afterwards. Both end points are
returned exactly (not recomputed through floating-point interpolation), so ``value(steps) == end`` holds bit for
bit. The same classes serve two different purposes in :mod:`fastsac.entropy`:

- ``target_entropy=LinearSchedule(-1.0, -6.0, 100_000)``: the entropy *level* the learned temperature holds
  changes over training (alpha keeps adapting);
- ``alpha_schedule=ExponentialSchedule(0.2, 0.01, 100_000)``: the entropy *coefficient* itself is annealed by
  hand (no learning).

Schedules are plain value objects: ``to_dict()`` / ``Schedule.from_dict(d)`` round-trip them through a
checkpoint using only strings, ints and floats (``torch.load(weights_only=True)`` reads them back). A subclass is
registered by its class name when it is defined; it must implement ``value`` and ``_params`` (its constructor
keywords).
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any, ClassVar

__all__ = [
    "Schedule",
    "ConstantSchedule",
    "LinearSchedule",
    "CosineSchedule",
    "ExponentialSchedule",
    "as_schedule",
]


def _real(name: str, value: Any, owner: str) -> float:
    """``value`` as a finite float, or a TypeError/ValueError naming ``owner``'s argument ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{owner}: {name} must be finite, got {value}")
    return value


def _step(step: Any, owner: str) -> int:
    """``step`` as a non-negative int, or a TypeError/ValueError."""
    if isinstance(step, bool):
        raise TypeError(f"{owner}: step must be an int, got bool {step!r}")
    try:
        step = operator.index(step)
    except TypeError:
        raise TypeError(f"{owner}: step must be an int, got {type(step).__name__} {step!r}") from None
    if step < 0:
        raise ValueError(f"{owner}: step must be >= 0, got {step}")
    return step


class Schedule:
    """Base class: a float that depends on the training step. Subclasses implement ``value`` and ``_params``."""

    _registry: ClassVar[dict[str, type[Schedule]]] = {}

    start: float
    end: float
    steps: int

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            Schedule._registry[cls.__name__] = cls

    def value(self, step: int) -> float:
        """The scheduled value at ``step`` (an int >= 0)."""
        raise NotImplementedError(f"{type(self).__name__} must implement value(step)")

    def __call__(self, step: int) -> float:
        return self.value(step)

    def _params(self) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__} must implement _params() (its constructor keywords)")

    def to_dict(self) -> dict[str, Any]:
        """A checkpoint-friendly description: ``{"type": class name, **constructor keywords}``."""
        return {"type": type(self).__name__, **self._params()}

    @staticmethod
    def from_dict(spec: dict[str, Any]) -> Schedule:
        """Rebuild a schedule written by :meth:`to_dict`."""
        if not isinstance(spec, dict) or "type" not in spec:
            raise TypeError(f"Schedule.from_dict: expected a dict with a 'type' key, got {spec!r}")
        kwargs = dict(spec)
        name = kwargs.pop("type")
        cls = Schedule._registry.get(name)
        if cls is None:
            known = ", ".join(sorted(Schedule._registry))
            raise ValueError(
                f"Schedule.from_dict: unknown schedule type {name!r} (known: {known}); import the module that "
                "defines it before loading"
            )
        return cls(**kwargs)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Schedule):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.to_dict().items())))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({args})"


class ConstantSchedule(Schedule):
    """The same value at every step (what a plain float target becomes)."""

    def __init__(self, value: float):
        self.start = self.end = _real("value", value, "ConstantSchedule")
        self.steps = 0

    def value(self, step: int) -> float:
        _step(step, "ConstantSchedule")
        return self.start

    def _params(self) -> dict[str, Any]:
        return {"value": self.start}


class _Interpolated(Schedule):
    """Shared checks and end-point handling for schedules that go from ``start`` to ``end`` in ``steps``."""

    def __init__(self, start: float, end: float, steps: int):
        owner = type(self).__name__
        self.start = _real("start", start, owner)
        self.end = _real("end", end, owner)
        if isinstance(steps, bool) or not isinstance(steps, numbers.Integral):
            raise TypeError(f"{owner}: steps must be an int, got {type(steps).__name__} {steps!r}")
        if steps < 1:
            raise ValueError(f"{owner}: steps must be >= 1 (the step at which end is reached), got {steps}")
        self.steps = int(steps)

    def value(self, step: int) -> float:
        step = _step(step, type(self).__name__)
        if step == 0:
            return self.start
        if step >= self.steps:
            return self.end
        return self._interpolate(step / self.steps)

    def _interpolate(self, t: float) -> float:  # t strictly inside (0, 1)
        raise NotImplementedError

    def _params(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "steps": self.steps}


class LinearSchedule(_Interpolated):
    """``start + (end - start) * t`` with ``t = min(step / steps, 1)``."""

    def _interpolate(self, t: float) -> float:
        return self.start + (self.end - self.start) * t


class CosineSchedule(_Interpolated):
    """Half-cosine from ``start`` to ``end``: ``end + (start - end) * (1 + cos(pi * t)) / 2``; flat at both ends."""

    def _interpolate(self, t: float) -> float:
        return self.end + (self.start - self.end) * 0.5 * (1.0 + math.cos(math.pi * t))


class ExponentialSchedule(_Interpolated):
    """Geometric interpolation ``start * (end / start) ** t``: a constant factor per step.

    ``start`` and ``end`` must be nonzero and of the same sign (a geometric path cannot cross zero); use
    :class:`LinearSchedule` or :class:`CosineSchedule` for a path through zero.
    """

    def __init__(self, start: float, end: float, steps: int):
        super().__init__(start, end, steps)
        if self.start == 0.0 or self.end == 0.0 or (self.start > 0.0) != (self.end > 0.0):
            raise ValueError(
                f"ExponentialSchedule: start and end must be nonzero and of the same sign, got start={self.start}, "
                f"end={self.end}; use LinearSchedule or CosineSchedule to pass through zero"
            )

    def _interpolate(self, t: float) -> float:
        return self.start * (self.end / self.start) ** t


def as_schedule(value: Any, name: str = "value") -> Schedule:
    """A :class:`Schedule` as is; a real number as a :class:`ConstantSchedule`; anything else raises TypeError."""
    if isinstance(value, Schedule):
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be a real number or a fastsac.entropy schedule (ConstantSchedule, LinearSchedule, "
            f"CosineSchedule, ExponentialSchedule), got {type(value).__name__} {value!r}"
        )
    return ConstantSchedule(_real(name, value, "as_schedule"))
