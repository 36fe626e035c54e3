"""How a learner's update becomes one compiled graph: the dynamo settings it needs around each compiled call."""

from __future__ import annotations

import contextlib

import torch

__all__ = ["autograd_ops_config"]


def autograd_ops_config():
    """``trace_autograd_ops=True`` for the duration of a compiled call (torch >= 2.11; earlier ones lack it).

    Without it, ``torch.autograd.grad`` inside a ``torch.compile(fullgraph=True)`` function is unsupported."""
    if hasattr(torch._dynamo.config, "trace_autograd_ops"):
        return torch._dynamo.config.patch(trace_autograd_ops=True)
    return contextlib.nullcontext()
