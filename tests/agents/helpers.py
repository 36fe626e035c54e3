"""Shared steps of the learner tests."""

from __future__ import annotations

import contextlib

import torch


def graphs_made_stepping(eager, other, batches, *, trace_autograd_ops: bool = False) -> int:
    """Update ``eager`` and then ``other`` on each batch in turn; return how many new dynamo graphs that made.
    ``trace_autograd_ops``: step ``other`` inside the dynamo setting the learner enters only when it compiles
    (for a learner whose update function a test compiled by hand)."""
    stats = torch._dynamo.utils.counters["stats"]
    before = stats["unique_graphs"]
    for batch in batches:
        eager.update(batch)
        with torch._dynamo.config.patch(trace_autograd_ops=True) if trace_autograd_ops else contextlib.nullcontext():
            other.update(batch)
    return stats["unique_graphs"] - before
