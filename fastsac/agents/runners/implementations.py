"""The implementations of a learner's update, all called like the update itself: ``runner(*args)``.

- :class:`EagerRunner`: the update as written, op by op.
- :class:`CompiledRunner`: ``torch.compile(update, fullgraph=True)``: critic, actor, temperature and target steps
  as ONE graph. Gradients come from ``torch.autograd.grad`` and are applied by ``ForeachAdam``, which dynamo traces
  only with ``torch._dynamo.config.trace_autograd_ops`` set (torch >= 2.11): :func:`autograd_ops_config` sets it
  around each call. Python arguments (``update_actor``) are specialised on: one graph per value.
- :class:`NativeRunner`: a learner's hand-written implementation of the same update (``Learner.native_update``:
  SAC's C++ update on a CPU), with the same signature and effect.

Each has ``kind`` (the word ``LearnerConfig.update`` uses for it) and ``what`` (how messages name it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["CompiledRunner", "EagerRunner", "NativeRunner", "autograd_ops_config", "compile_update",
           "keep_guards_on_inputs_only_for_owned_tensors", "trace_autograd_ops_supported"]


def trace_autograd_ops_supported() -> bool:
    """Whether dynamo can trace ``torch.autograd.grad`` inside a ``fullgraph=True`` function (torch >= 2.11)."""
    return hasattr(torch._dynamo.config, "trace_autograd_ops")


class _TraceAutogradOps:
    """Sets dynamo's ``trace_autograd_ops`` for a ``with`` block and restores it after. Written out because
    ``torch._dynamo.config.patch`` costs ~115 us to enter and leave on a CPU, on every update."""

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
    """``trace_autograd_ops=True`` for the duration of a compiled call (torch >= 2.11; earlier ones lack it)."""
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


def compile_update(fn: Callable[..., Any], backend: str = "inductor") -> Callable[..., Any]:
    """``torch.compile(fn, fullgraph=True, backend=backend)`` with the learner's guard filter."""
    return torch.compile(fn, fullgraph=True, backend=backend,
                         options={"guard_filter_fn": keep_guards_on_inputs_only_for_owned_tensors})


class EagerRunner:
    """The update as written."""

    kind = "eager"
    what = "the eager update"

    def __init__(self, fn: Callable[..., Any]):
        self.fn = fn

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)


class CompiledRunner:
    """The update compiled as one graph (it compiles at its first call with each new signature). ``backend``: the
    compiler (inductor; the tests also trace with ``aot_eager``, dynamo and AOTAutograd without code generation)."""

    kind = "compile"
    what = "torch.compile of the update"

    def __init__(self, fn: Callable[..., Any], backend: str = "inductor"):
        self.fn = compile_update(fn, backend)

    def __call__(self, *args: Any) -> Any:
        with autograd_ops_config():
            return self.fn(*args)


class NativeRunner:
    """A learner's hand-written implementation of its update (``Learner.native_update``)."""

    kind = "native"

    def __init__(self, fn: Callable[..., Any]):
        self.fn = fn
        self.what = f"the native update ({getattr(fn, 'source', 'C++')})"

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)
