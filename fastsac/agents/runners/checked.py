"""The first-call check: a wrapper that runs the first working implementation of a chain (native -> compile ->
eager) and proves each fast one against the eager update before keeping its results.

:class:`CheckedRunner` holds the fast implementations still to try, best first (each made when its turn comes), and
the eager update after them. The first call of the running fast implementation with a new signature (input shapes,
dtypes, devices and Python values: the call that compiles) is checked:

- before it, every tensor the update writes is snapshotted (:func:`snapshot`), so a call that raises leaves the
  learner as it was, and the next implementation runs on it;
- after it, the eager update is run once from the same snapshot and the two are compared on the tensors that change
  smoothly with the gradients (optimizer moments, running statistics, metric sums, the actions the update returns;
  not the parameters, whose first Adam step is about ``lr * sign(grad)`` and flips with rounding), each relative to
  its largest magnitude, or to a small fraction of its group's where its own is at the level of rounding noise
  (:data:`GROUP_FLOOR`). Beyond
  :data:`VERIFY_RTOL` the implementation is dropped for the next one and the learner keeps the eager result of that
  call (torch 2.11 miscompiles CrossQ's update this way: the critics' batch-renorm statistics read stale in the
  actor's loss). Within it, the fast result is kept (the state after it is restored), so no update's numbers depend
  on whether it was a process's first: a resumed run's first update is one, and resume is exact.

Every drop is a recorded, loud fallback (``fastsac.fallbacks``, kinds ``native`` and ``compile``).
:func:`snapshot` and :func:`restore` are also what a CUDA-graph capture uses around its warm-up calls.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from fastsac.agents.runners.implementations import EagerRunner
from fastsac.fallbacks import Fallback, fall_back

__all__ = ["GROUP_FLOOR", "VERIFY_RTOL", "CheckedRunner", "group_of", "restore", "snapshot", "worst_difference"]

#: How far a fast implementation's first call may be from the eager one on a compared tensor, relative to that
#: tensor's largest magnitude. Rounding (inductor's fused, reordered float32 arithmetic; the native update's own
#: loops) stays below 1e-5 after one update on a CPU (asserted by the real compiles in tests/agents); the
#: miscompiled CrossQ update of torch 2.11 is off by 2.5e-3.
VERIFY_RTOL = 1e-4


def snapshot(tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Copies of ``tensors`` (what :func:`restore` puts back)."""
    with torch.no_grad():
        return [t.detach().clone() for t in tensors]


def restore(tensors: Sequence[torch.Tensor], saved: Sequence[torch.Tensor]) -> None:
    """Copy ``saved`` back into ``tensors`` in place (their addresses, which compiled code and captured graphs
    use, stay)."""
    with torch.no_grad():
        torch._foreach_copy_(list(tensors), list(saved))


def signature(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """What makes dynamo compile anew: tensors' shapes, dtypes and devices, and the other arguments' values."""
    return tuple((a.shape, a.dtype, a.device) if isinstance(a, torch.Tensor) else a for a in args)


#: A compared tensor whose largest magnitude is below this fraction of the largest in its group (the same kind of
#: tensor in the same network or optimizer: :func:`group_of`) is compared against that fraction of the group's scale
#: instead of its own: its values are then at the level of rounding noise (a batch-norm running mean of features
#: whose batch mean is zero by construction: ~1e-9 in FlashSAC's networks after one update, where eager and
#: compiled float32 differ by ~1.6e-9 and the largest running mean of the same critic is 0.016), and a relative
#: comparison would reject every correct implementation. A tensor of ordinary size is still compared with itself.
GROUP_FLOOR = 1e-2


def group_of(name: str) -> str:
    """The group of a compared tensor's name: its network or optimizer and its kind
    (``"actor.trunk.blocks.0.norm1.running_mean"`` -> ``"actor:running_mean"``,
    ``"critic_optim.exp_avg_sq[3]"`` -> ``"critic_optim:exp_avg_sq"``)."""
    parts = name.split(".")
    return f"{parts[0]}:{parts[-1].split('[')[0]}" if len(parts) > 1 else name


def worst_difference(names: list[str], fast: list[torch.Tensor], eager: list[torch.Tensor]) -> tuple[float, str]:
    """The largest ``max |fast - eager|`` over the tensors, each relative to the eager tensor's largest magnitude
    (floored at :data:`GROUP_FLOOR` of its group's), and where it is: ``(ratio, description)``. Integer tensors
    count as 0 when equal and ``inf`` otherwise, as do non-finite values in other places than the eager tensor's."""
    scales: list[float] = []
    for e in eager:
        finite = e[torch.isfinite(e)] if e.is_floating_point() else None
        scales.append(float(finite.double().abs().max()) if finite is not None and finite.numel() else 0.0)
    group_scale: dict[str, float] = {}
    for name, scale in zip(names, scales):
        group_scale[group_of(name)] = max(group_scale.get(group_of(name), 0.0), scale)
    worst, where = 0.0, "all compared tensors equal"
    for name, c, e, scale in zip(names, fast, eager, scales):
        if not e.is_floating_point():
            ratio, what = (0.0, "") if torch.equal(c, e) else (math.inf, f"{name} differs")
        else:
            finite = torch.isfinite(e)
            if not torch.equal(torch.isfinite(c), finite):
                ratio, what = math.inf, f"{name}: non-finite values in other places than the eager update's"
            elif not bool(finite.any()):
                ratio, what = 0.0, ""
            else:
                diff = float((c[finite].double() - e[finite].double()).abs().max())
                against = max(scale, GROUP_FLOOR * group_scale[group_of(name)], 1e-12)
                ratio = diff / against if diff > 0 else 0.0
                floor = "" if against == scale else f" (floored at {GROUP_FLOOR:g} of its group's {group_of(name)})"
                what = f"{name}: max |fast - eager| = {diff:.3g} against its largest magnitude {scale:.3g}{floor}"
        if ratio > worst:
            worst, where = ratio, what
    return worst, where


class CheckedRunner:
    """The first implementation of ``chain`` that works, checked at its first call of each signature.

    Args:
        chain: factories of the fast implementations to try, best first (each called when its turn comes); the
            eager update ``eager`` runs after the last one fails (or at once with an empty chain).
        eager: the update itself; it must only write tensors listed by ``mutable``.
        what: what the update is, for the messages ("SACLearner update").
        mutable: returns every tensor the update writes (snapshotted before a checked call).
        compared: returns ``(name, tensor)`` pairs, written by the update, on which a first call is compared with the
            eager update (module docstring).
        fallbacks: the learner's list of fallbacks; each drop is appended to it.
        rtol: the largest relative difference kept (:func:`worst_difference`); :data:`VERIFY_RTOL` unless the
            learner's float32 arithmetic is measured to spread further (``Learner.first_call_rtol``).
    """

    def __init__(self, chain: Sequence[Callable[[], Any]], eager: Callable[..., Any], what: str,
                 mutable: Callable[[], list[torch.Tensor]], compared: Callable[[], list[tuple[str, torch.Tensor]]],
                 fallbacks: list[Fallback], rtol: float = VERIFY_RTOL):
        self.rtol = float(rtol)
        self._next = list(chain)
        self._eager, self._what = EagerRunner(eager), what
        self._mutable, self._compared, self._fallbacks = mutable, compared, fallbacks
        #: per call signature, the worst relative difference of its first fast call from the eager update
        self.first_call_differences: dict[tuple[Any, ...], float] = {}
        self._checked: set[tuple[Any, ...]] = set()
        self.runner = self._advance()

    @property
    def kind(self) -> str:
        """What runs now: ``native``, ``compile`` or ``eager``."""
        return self.runner.kind

    def use(self, runner: Any) -> None:
        """Run ``runner`` from now on, checked at its first calls like any fast implementation (tests and
        benchmarks swap in a traced or a deliberately broken one)."""
        self.runner, self._checked = runner, set()

    def _advance(self):
        """The next implementation of the chain (the eager update after the last)."""
        self._checked = set()
        return self._next.pop(0)() if self._next else self._eager

    def _fail(self, reason: BaseException | str) -> None:
        """The running implementation failed: record it and move on to the next."""
        failed = self.runner
        self.runner = self._advance()
        self._fallbacks.append(fall_back(failed.kind, f"{failed.what} ({self._what})", self.runner.what, reason))

    def __call__(self, *args: Any) -> Any:
        runner = self.runner
        if runner is self._eager:
            return runner(*args)
        key = signature(args)
        if key in self._checked:
            return runner(*args)
        saved = snapshot(self._mutable())
        try:
            out = runner(*args)
        except Exception as exc:  # dynamo, inductor, a kernel compiler or the native call failed here
            restore(self._mutable(), saved)
            self._fail(exc)
            return self(*args)
        self._checked.add(key)
        return self._check(args, key, out, saved)

    def _check(self, args: tuple[Any, ...], key: tuple[Any, ...], out: Any, saved: list[torch.Tensor]) -> Any:
        """Compare the fast first call (already run, its result in the learner) with the eager update from
        ``saved``; keep the fast result within ``rtol``, else the eager one (and fall back)."""
        names, tensors = map(list, zip(*self._compared()))
        fast_state = snapshot(self._mutable())
        fast_values = snapshot(tensors)
        fast_out = out.detach().clone() if isinstance(out, torch.Tensor) else None
        restore(self._mutable(), saved)
        eager_out = self._eager(*args)
        if fast_out is not None:  # what the update returns (the actions it computes) is compared too
            names.append("returned actions")
            fast_values.append(fast_out)
            tensors.append(eager_out)
        worst, where = worst_difference(names, fast_values, tensors)
        self.first_call_differences[key] = worst
        if not worst <= self.rtol:
            self._fail(f"its first call gave other numbers than the eager update (torch {torch.__version__}): "
                       f"{where}, {worst:.2g} of it (allowed {self.rtol:g})")
            return eager_out  # the learner keeps the eager result
        restore(self._mutable(), fast_state)
        return fast_out
