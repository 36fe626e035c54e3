"""Shared steps of the learner tests."""

from __future__ import annotations

import contextlib
import io

import torch

from fastsac.agents import runners


def saved_and_loaded(state):
    """``state`` through ``torch.save`` and ``torch.load(weights_only=True)`` (what a checkpoint does to it)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def trace_with_aot_eager(learner):
    """Make ``learner`` run its update traced by dynamo and AOTAutograd (``aot_eager``: one graph per variant, no
    C++ code generation), through its runner's first-call check like a real compile; returns the learner."""
    update = learner._normalized_update if learner.obs_norm is not None else learner._update
    learner.runner.checked.use(runners.CompiledRunner(update, backend="aot_eager"))
    return learner


def graphs_made_stepping(eager, other, batches) -> int:
    """Update ``eager`` and then ``other`` on each batch in turn; return how many new dynamo graphs that made."""
    stats = torch._dynamo.utils.counters["stats"]
    before = stats["unique_graphs"]
    for batch in batches:
        eager.update(batch)
        other.update(batch)
    return stats["unique_graphs"] - before


class _FakeStream:
    def wait_stream(self, other):
        pass


def simulate_cuda_graph_calls(monkeypatch, graph_class) -> None:
    """CUDA's stream, graph and synchronize calls stubbed for CPU tensors; ``graph_class`` stands for CUDAGraph."""
    monkeypatch.setattr(torch.cuda, "Stream", lambda *a, **k: _FakeStream())
    monkeypatch.setattr(torch.cuda, "current_stream", lambda *a, **k: _FakeStream())
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: None)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", graph_class)


def replayed_from_graphs(learner):
    """``learner`` with its update run through a real ``GraphRunner`` on its own (CPU) device, for tests that
    simulate CUDA's graph calls (:func:`simulate_cuda_graph_calls`); returns the learner."""
    learner.runner = learner._build_runner(graph_device=learner.device)
    return learner
