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


# Guard kinds that re-check a tensor's metadata (dtype, device, shape, strides) or that two tensors do not alias.
_TENSOR_GUARDS = {"TENSOR_MATCH", "DUPLICATE_INPUT"}


def keep_guards_on_inputs_only_for_owned_tensors(entries) -> list[bool]:
    """A ``guard_filter_fn`` for a learner's compiled update: drop the tensor guards on the learner's own tensors
    (sources under ``self.``: parameters, optimizer moments, the metric sums, log_alpha, the target entropy), keep
    every other guard (on the update's inputs, and on Python values such as learning rates, so changing one
    still recompiles). A learner allocates its tensors once and only ever updates them in place (optimizer steps,
    the target lerp, ``load_state_dict``), so their metadata cannot change and none aliases another; re-checking
    some 130 of them cost ~0.3 ms per call on a CPU (dynamo's guard evaluation in the profile)."""
    return [not (e.guard_type in _TENSOR_GUARDS and e.name.startswith("self.")) for e in entries]


def compile_update(fn):
    """``torch.compile(fn, fullgraph=True)`` with the learner's guard filter."""
    return torch.compile(fn, fullgraph=True, options={"guard_filter_fn": keep_guards_on_inputs_only_for_owned_tensors})
