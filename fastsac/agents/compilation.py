"""How a learner's update becomes one compiled graph, and what happens where it cannot.

:func:`autograd_ops_config` is the dynamo setting the one-graph update needs around each compiled call;
:func:`compile_update` is ``torch.compile(fullgraph=True)`` with the learner's guard filter.
:class:`CompiledUpdate` compiles the update that way and falls back to the eager
update, loudly (``fastsac.fallbacks``), where that fails: on a torch without ``trace_autograd_ops`` (one warning,
no attempt), when the first call with a new signature (the one that compiles) raises, or when that call's numbers
are not the eager update's. Before such a call the state the update writes is snapshotted, so a failure half-way
leaves the learner as it was and the eager update then runs on it. After it, the eager update is run once from
the same snapshot and the two are compared on the tensors that change smoothly with the gradients (optimizer
moments, running statistics, metric sums, the actions the update returns; not the parameters, whose first Adam
step is about ``lr * sign(grad)`` and flips with rounding): a compiler that miscomputes the update (torch 2.11
does for CrossQ: the critics' batch-renorm statistics read stale in the actor's loss, 2.5e-3 relative in its
gradients) then falls back instead of training on wrong numbers, keeping the eager result of that call. A call
that passes keeps its own result (the snapshot taken after it is restored): a run's numbers then do not depend on
which of its updates was a process's first, as they must for an exact resume. :func:`snapshot` and
:func:`restore` are also what a CUDA-graph capture uses (``fastsac.agents.cuda_graph``).

Given a ``native`` implementation of the update (``fastsac.agents.native_update``: SAC's update as one C++ call
on a CPU), :class:`CompiledUpdate` runs that instead of compiling, under the same first-call check; where it raises
or disagrees, the fallback (kind ``native``) is torch.compile, and after that eager as above.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

import torch

from fastsac.fallbacks import Fallback, fall_back

__all__ = ["VERIFY_RTOL", "CompiledUpdate", "autograd_ops_config", "compile_update", "worst_difference",
           "keep_guards_on_inputs_only_for_owned_tensors", "restore", "snapshot", "trace_autograd_ops_supported"]


def trace_autograd_ops_supported() -> bool:
    """Whether dynamo can trace ``torch.autograd.grad`` inside a ``fullgraph=True`` function (torch >= 2.11)."""
    return hasattr(torch._dynamo.config, "trace_autograd_ops")


class _TraceAutogradOps:
    """Sets dynamo's ``trace_autograd_ops`` for a ``with`` block and restores it after. Written out because
    ``torch._dynamo.config.patch`` costs ~115 us to enter and leave on a CPU (measured), on every update."""

    __slots__ = ("_previous",)

    def __enter__(self):
        config = torch._dynamo.config
        self._previous = config.trace_autograd_ops
        config.trace_autograd_ops = True
        return self

    def __exit__(self, *exc):
        torch._dynamo.config.trace_autograd_ops = self._previous
        return False


def autograd_ops_config():
    """``trace_autograd_ops=True`` for the duration of a compiled call (torch >= 2.11; earlier ones lack it).

    Without it, ``torch.autograd.grad`` inside a ``torch.compile(fullgraph=True)`` function is unsupported."""
    if trace_autograd_ops_supported():
        return _TraceAutogradOps()
    return contextlib.nullcontext()


def keep_guards_on_inputs_only_for_owned_tensors(entries) -> list[bool]:
    """A ``guard_filter_fn`` for a learner's compiled update: drop the guards that re-check the learner's optimizer
    and bookkeeping tensors (sources under ``self.`` other than network parameters: Adam moments, step counts,
    metric sums, log_alpha, the target entropy) and the no-aliasing guards among the learner's tensors; keep every
    other guard: on the update's inputs, on the network parameters (their shapes tell two learners' graphs apart:
    the compiled code is cached per code object, shared by every instance), and on Python values such as learning
    rates (changing one still recompiles). The dropped tensors are allocated once, next to the parameters they
    follow (same shapes, dtype, device) or with fixed shapes, only ever updated in place (optimizer steps,
    ``load_state_dict``), and never alias each other."""
    keep = []
    for e in entries:
        owned = e.name.startswith("self.")
        parameter = "_parameters[" in e.name or "params[" in e.name
        keep.append(not (owned and (e.guard_type == "DUPLICATE_INPUT"
                                    or (e.guard_type == "TENSOR_MATCH" and not parameter))))
    return keep


def compile_update(fn):
    """``torch.compile(fn, fullgraph=True)`` with the learner's guard filter."""
    return torch.compile(fn, fullgraph=True, options={"guard_filter_fn": keep_guards_on_inputs_only_for_owned_tensors})


def snapshot(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Copies of ``tensors`` (what :func:`restore` puts back)."""
    with torch.no_grad():
        return [t.detach().clone() for t in tensors]


def restore(tensors: list[torch.Tensor], saved: list[torch.Tensor]) -> None:
    """Copy ``saved`` back into ``tensors`` in place (their addresses, which compiled code and captured graphs
    use, stay)."""
    with torch.no_grad():
        torch._foreach_copy_(tensors, saved)


def _signature(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """What makes dynamo compile anew: tensors' shapes, dtypes and devices, and the other arguments' values."""
    return tuple((a.shape, a.dtype, a.device) if isinstance(a, torch.Tensor) else a for a in args)


#: How far a compiled update's first call may be from the eager one on a compared tensor, relative to that
#: tensor's largest magnitude. Rounding (inductor's fused, reordered float32 arithmetic) gives 3e-7 to 2.5e-6 after
#: one update on a CPU (the real compiles in tests/agents/test_learner.py and test_crossq.py assert < 1e-5); the
#: miscompiled CrossQ update of torch 2.11 gives 2.5e-3.
VERIFY_RTOL = 1e-4


def worst_difference(names: list[str], compiled: list[torch.Tensor], eager: list[torch.Tensor]) -> tuple[float, str]:
    """The largest ``max |compiled - eager|`` over the tensors, each relative to the eager tensor's largest magnitude,
    and where it is: ``(ratio, description)``. Integer tensors count as 0 when equal and ``inf`` otherwise, as do
    non-finite values in other places than the eager tensor's."""
    worst, where = 0.0, "all compared tensors equal"
    for name, c, e in zip(names, compiled, eager):
        if not e.is_floating_point():
            ratio, what = (0.0, "") if torch.equal(c, e) else (math.inf, f"{name} differs")
        else:
            finite = torch.isfinite(e)
            if not torch.equal(torch.isfinite(c), finite):
                ratio, what = math.inf, f"{name}: non-finite values in other places than the eager update's"
            elif not bool(finite.any()):
                ratio, what = 0.0, ""
            else:
                c64, e64 = c[finite].double(), e[finite].double()
                scale, diff = float(e64.abs().max()), float((c64 - e64).abs().max())
                ratio = diff / max(scale, 1e-12) if diff > 0 else 0.0
                what = f"{name}: max |compiled - eager| = {diff:.3g} against its largest magnitude {scale:.3g}"
        if ratio > worst:
            worst, where = ratio, what
    return worst, where


class CompiledUpdate:
    """``fn`` compiled as one graph, or ``fn`` itself once compiling it has failed or miscomputed (a recorded
    fallback). With ``native`` (a hand-written implementation of ``fn``: ``fastsac.agents.native_update``), that
    runs instead of the compiled graph, checked the same way; its failure falls back to compiling ``fn``.

    Args:
        fn: the update; it must only write tensors listed by ``mutable``.
        what: what ``fn`` is, for the messages ("SACLearner update").
        mutable: returns every tensor ``fn`` writes (snapshotted before a call that may compile).
        fallbacks: the learner's list of fallbacks; a failure is appended to it.
        compared: returns ``(name, tensor)`` pairs, written by ``fn``, on which the first call of each signature is
            compared with the eager update (module docstring); None: no comparison.
        native: None, or a callable with ``fn``'s signature and effect to run instead of compiling.
    """

    def __init__(self, fn: Callable[..., Any], what: str, mutable: Callable[[], list[torch.Tensor]],
                 fallbacks: list[Fallback],
                 compared: Callable[[], list[tuple[str, torch.Tensor]]] | None = None,
                 native: Callable[..., Any] | None = None):
        self._eager, self._what, self._mutable, self._fallbacks = fn, what, mutable, fallbacks
        self._compared = compared
        #: per call signature, the worst relative difference of its first compiled call from the eager update
        self.first_call_differences: dict[tuple[Any, ...], float] = {}
        self._compiled: Callable[..., Any] | None = None
        self._compiled_for: set[tuple[Any, ...]] = set()
        #: what calls run: "native", "compiled" (torch.compile) or "eager" (after fallbacks)
        self.kind = "eager"
        if native is not None:
            self._compiled, self.kind = native, "native"
        else:
            self._compile()

    def _compile(self) -> None:
        """Calls run ``torch.compile(fn)`` from now on, or (a torch without ``trace_autograd_ops``) ``fn``."""
        self._compiled, self._compiled_for, self.kind = None, set(), "eager"
        if trace_autograd_ops_supported():
            self._compiled, self.kind = compile_update(self._eager), "compiled"
        else:
            self._fallbacks.append(fall_back(
                "torch_version", f"compiling the {self._what} as one graph", f"the eager {self._what}",
                f"torch {torch.__version__} has no torch._dynamo.config.trace_autograd_ops (torch >= 2.11 has it)"))

    def _fail(self, exc: BaseException | str) -> None:
        """The running fast path failed: the native update falls back to compiling, the compiled one to eager."""
        if self.kind == "native":
            self._fallbacks.append(fall_back("native", f"the native C++ {self._what}",
                                             f"torch.compile of the {self._what}", exc))
            self._compile()
        else:
            self._fallbacks.append(fall_back("compile", f"torch.compile of the {self._what}",
                                             f"the eager {self._what}", exc))
            self._compiled, self.kind = None, "eager"

    def drop_native(self) -> None:
        """Calls run torch.compile instead of the native update from now on (the learner's setup changed to one
        the native update does not cover: not a failure, so no fallback is recorded)."""
        if self.kind == "native":
            self._compile()

    @property
    def compiled(self) -> bool:
        """Whether calls run a fast path (the native update or the compiled graph; False after the fallbacks)."""
        return self._compiled is not None

    def __call__(self, *args: Any) -> Any:
        if self._compiled is None:
            return self._eager(*args)
        key = _signature(args)
        if key in self._compiled_for:
            with autograd_ops_config():
                return self._compiled(*args)
        saved = snapshot(self._mutable())
        try:
            with autograd_ops_config():
                out = self._compiled(*args)
        except Exception as exc:  # dynamo, inductor or a kernel compiler failed on this machine
            restore(self._mutable(), saved)
            self._fail(exc)
            return self(*args)
        self._compiled_for.add(key)
        if self._compared is not None:
            names, tensors = map(list, zip(*self._compared()))
            fast_state = snapshot(self._mutable())
            compiled_values = snapshot(tensors)
            compiled_out = out.detach().clone() if isinstance(out, torch.Tensor) else None
            restore(self._mutable(), saved)
            eager_out = self._eager(*args)
            if compiled_out is not None:  # what the update returns (the actions it computes) is compared too
                names.append("returned actions")
                compiled_values.append(compiled_out)
                tensors.append(eager_out)
            worst, where = worst_difference(names, compiled_values, tensors)
            self.first_call_differences[key] = worst
            if not worst <= VERIFY_RTOL:
                self._fail(f"its first call gave other numbers than the eager update (torch {torch.__version__}): "
                           f"{where}, {worst:.2g} of it (allowed {VERIFY_RTOL:g})")
                return eager_out  # the learner keeps the eager result
            # Within rounding: the fast path's result is kept, so that no update's numbers depend on whether it was
            # a process's first (a resumed run's first update is one: exact resume).
            restore(self._mutable(), fast_state)
            out = compiled_out
        return out
