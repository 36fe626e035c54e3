"""The first-call check: a wrapper that runs the first working implementation of a chain (native -> compile ->
eager) and proves each fast one against the eager update before keeping its results.

:class:`CheckedRunner` holds the fast implementations still to try, best first (each made when its turn comes), and
the eager update after them. The first call of the running fast implementation with a new signature (input shapes,
dtypes, devices and Python values: the call that compiles) is checked:

- before it, every tensor the update writes is snapshotted (:func:`snapshot`), so a call that raises leaves the
  learner as it was, and the next implementation runs on it;
- after it, the eager update is run once from the same snapshot and the two are compared on what the update writes
  that moves smoothly with its arithmetic (not the parameters, whose first Adam step is about ``lr * sign(grad)``
  and flips with rounding), in two classes:

  - the forward quantities (running statistics, each metric sum, the actions the update returns): element by
    element, each relative to its tensor's largest magnitude, or to a small fraction of its group's where its own is
    at the level of rounding noise (:data:`GROUP_FLOOR`), within :data:`VERIFY_RTOL`;
  - the optimizer moments (the gradients): each tensor by the Frobenius norm of its difference relative to its own,
    within :data:`MOMENT_RTOL`. Two correct float32 updates of a ReLU network differ where rounding moves a
    pre-activation across zero: that sample's share of a gradient row flips (one in 256 at batch 256), a few percent
    of a tensor's largest element but a fraction of a percent of its norm, while every forward quantity stays
    within ~1e-6.

  Beyond either bound the implementation is dropped for the next one and the learner keeps the eager result of that
  call (torch 2.11 miscompiles CrossQ's update this way: the critics' batch-renorm statistics read stale in the
  actor's loss, whose metric sum is then 2.2e-4 off). Within both, the fast result is kept (the state after it is
  restored), so no update's numbers depend on whether it was a process's first: a resumed run's first update is
  one, and resume is exact.

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

__all__ = ["GROUP_FLOOR", "MOMENT_RTOL", "VERIFY_RTOL", "CheckedRunner", "group_of", "is_moment",
           "moment_difference", "restore", "snapshot", "worst_difference"]

#: How far a fast implementation's first call may be from the eager one on a forward quantity, relative to that
#: tensor's largest magnitude. Rounding (inductor's fused, reordered float32 arithmetic; the native update's own
#: loops) stays below 1e-5 after one update on a CPU (asserted by the real compiles in tests/agents; 2.5e-7 for
#: CrossQ's 512-wide critics on a real HalfCheetah batch, bench/RESULTS.md); the miscompiled CrossQ update of torch
#: 2.11 puts its actor loss 2.2e-4 off.
VERIFY_RTOL = 1e-4

#: How far an optimizer moment of the first call may be from the eager one's: the Frobenius norm of the difference
#: relative to the eager tensor's. ReLU kinks crossed by rounding measured up to 6.2e-3 (CrossQ, 512-wide critics,
#: the first update of a HalfCheetah run: bench/RESULTS.md); a wrong gradient (a scale, a sign, a missing term) is
#: of order 1.
MOMENT_RTOL = 5e-2


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
    ``"critic_optim.exp_avg_sq[3]"`` -> ``"critic_optim:exp_avg_sq"``, ``"metric sums[q_mean]"`` ->
    ``"metric sums"``)."""
    parts = name.split(".")
    return f"{parts[0]}:{parts[-1].split('[')[0]}" if len(parts) > 1 else name.split("[")[0]


def is_moment(name: str) -> bool:
    """Whether a compared tensor is an optimizer moment (``"critic_optim.exp_avg[2]"``): compared by
    :func:`moment_difference`, the rest by :func:`worst_difference`."""
    return "_optim." in name


def moment_difference(names: list[str], fast: list[torch.Tensor], eager: list[torch.Tensor]) -> tuple[float, str]:
    """The largest ``||fast - eager|| / ||eager||`` (Frobenius norms) over the tensors, and where it is:
    ``(ratio, description)``; ``inf`` where the fast tensor has a non-finite value the eager one has not."""
    worst, where = 0.0, "all compared moments equal"
    for name, c, e in zip(names, fast, eager):
        c, e = c.double(), e.double()
        if not bool(torch.isfinite(c).all()) and bool(torch.isfinite(e).all()):
            ratio, what = math.inf, f"{name}: non-finite values the eager update's has not"
        else:
            diff, norm = float((c - e).norm()), float(e.norm())
            ratio = diff / max(norm, 1e-30) if diff > 0 else 0.0
            what = f"{name}: ||fast - eager|| = {diff:.3g} against its norm {norm:.3g}"
        if ratio > worst:
            worst, where = ratio, what
    return worst, where


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
        rtol: the largest relative difference kept on the forward quantities (:func:`worst_difference`);
            :data:`VERIFY_RTOL` unless the learner's float32 arithmetic is measured to spread further
            (``Learner.first_call_rtol``). The moments' bound is the larger of it and :data:`MOMENT_RTOL`.
    """

    def __init__(self, chain: Sequence[Callable[[], Any]], eager: Callable[..., Any], what: str,
                 mutable: Callable[[], list[torch.Tensor]], compared: Callable[[], list[tuple[str, torch.Tensor]]],
                 fallbacks: list[Fallback], rtol: float = VERIFY_RTOL):
        self.rtol = float(rtol)
        self.moment_rtol = max(self.rtol, MOMENT_RTOL)
        self._next = list(chain)
        self._eager, self._what = EagerRunner(eager), what
        self._mutable, self._compared, self._fallbacks = mutable, compared, fallbacks
        #: per call signature, the worst relative difference of its first fast call from the eager update: on the
        #: forward quantities (:func:`worst_difference`), and on the moments (:func:`moment_difference`)
        self.first_call_differences: dict[tuple[Any, ...], float] = {}
        self.first_call_moment_differences: dict[tuple[Any, ...], float] = {}
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
        def part(moments: bool) -> tuple[list, list, list]:  # (names, fast, eager) of one class
            keep = [i for i, name in enumerate(names) if is_moment(name) is moments]
            return [names[i] for i in keep], [fast_values[i] for i in keep], [tensors[i] for i in keep]

        worst, where = worst_difference(*part(False))
        worst_moment, where_moment = moment_difference(*part(True))
        self.first_call_differences[key] = worst
        self.first_call_moment_differences[key] = worst_moment
        if not worst <= self.rtol or not worst_moment <= self.moment_rtol:
            what = (f"{where}, {worst:.2g} of it (allowed {self.rtol:g})" if not worst <= self.rtol else
                    f"{where_moment}, {worst_moment:.2g} of it (allowed {self.moment_rtol:g})")
            self._fail(f"its first call gave other numbers than the eager update (torch {torch.__version__}): {what}")
            return eager_out  # the learner keeps the eager result
        restore(self._mutable(), fast_state)
        return fast_out
