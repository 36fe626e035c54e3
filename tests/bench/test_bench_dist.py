"""bench/bench_dist.py's scaling model starts from the bytes one update really all-reduces, and its ring formula
reduces to the familiar cases."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

_spec = importlib.util.spec_from_file_location(
    "bench_dist", Path(__file__).resolve().parents[2] / "bench" / "bench_dist.py")
bench_dist = importlib.util.module_from_spec(_spec)
sys.modules["bench_dist"] = bench_dist  # dataclasses look their module up
_spec.loader.exec_module(bench_dist)


class _Counting:
    """A grad_reducer that records the bytes of each call and returns the gradients unchanged."""

    def __init__(self):
        self.calls: list[int] = []

    def __call__(self, grads):
        self.calls.append(sum(g.numel() * g.element_size() for g in grads))
        return grads


def test_model_bytes_are_what_one_update_reduces():
    learner = bench_dist.make_learner()
    counting = _Counting()
    learner.grad_reducer = counting
    g = torch.Generator().manual_seed(0)
    batch = (torch.randn(8, bench_dist.OBS, generator=g), torch.rand(8, bench_dist.ACT, generator=g),
             torch.randn(8, generator=g), torch.randn(8, bench_dist.OBS, generator=g), torch.zeros(8))  # fmt: skip
    learner.update(batch)
    expected = bench_dist.reduced_bytes(learner)
    assert counting.calls == [expected["critic"], expected["actor_alpha"]]


def test_ring_allreduce_formula():
    link = bench_dist.Link("test", latency_s=1e-6, bandwidth=1e9)
    assert bench_dist.ring_allreduce_s(1, 1e6, link) == 0.0
    # Two ranks: 2 steps of half the buffer each.
    assert bench_dist.ring_allreduce_s(2, 1e6, link) == pytest.approx(2 * (1e-6 + 0.5e6 / 1e9))
    # Many ranks: the bandwidth term approaches 2 * bytes / bandwidth.
    assert bench_dist.ring_allreduce_s(10_000, 1e6, bench_dist.Link("t", 0.0, 1e9)) == pytest.approx(2e-3, rel=1e-3)


def test_predicted_speedups_are_bounded_by_the_rank_count():
    nbytes = bench_dist.reduced_bytes(bench_dist.make_learner())
    for gpus in (1, 2, 8, 64):
        p = bench_dist.predict(gpus, nbytes, bench_dist.Scenario(), bench_dist.NET_100G)
        assert 0 < p["env_speedup"] <= gpus and p["update_speedup"] <= 1.0
    assert bench_dist.predict(1, nbytes, bench_dist.Scenario(), None)["env_speedup"] == 1.0
