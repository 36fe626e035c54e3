"""How a learner's update becomes one compiled graph: the dynamo settings it needs around each compiled call."""

from __future__ import annotations

import contextlib

import torch

__all__ = ["autograd_ops_config", "compile_update", "keep_guards_on_inputs_only_for_owned_tensors"]


def autograd_ops_config():
    """``trace_autograd_ops=True`` for the duration of a compiled call (torch >= 2.11; earlier ones lack it).

    Without it, ``torch.autograd.grad`` inside a ``torch.compile(fullgraph=True)`` function is unsupported."""
    if hasattr(torch._dynamo.config, "trace_autograd_ops"):
        return torch._dynamo.config.patch(trace_autograd_ops=True)
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
