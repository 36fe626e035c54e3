"""bench/bench_compile.py, the numbers behind the compile rule: each of its three providers runs the update it is
named for, and a fresh process's first native call is timed (torch.compile's first calls, tens of seconds each,
are left to the benchmark itself)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fastsac.agents import runners

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
import bench_compile  # noqa: E402


@pytest.mark.parametrize("kind", bench_compile.KINDS)
def test_each_provider_runs_the_update_it_is_named_for(monkeypatch, kind):
    if kind == "compile":  # a stand-in for torch.compile: what matters is which update the learner chose
        monkeypatch.setattr(runners.implementations, "compile_update", lambda fn, backend: fn)
    learner = bench_compile._learner(kind, 3, 1, 16)  # the README's set-up builds the native update: never None
    learner.update(bench_compile.make_batches(1, bench_compile.BATCH, 3, 1)[0])
    assert learner.runner.kind == kind and learner.fallbacks == []


def test_the_native_first_call_is_timed_in_a_fresh_process(tmp_path):
    seconds = bench_compile.first_call_seconds("native", 3, 1, 16, 1, str(tmp_path))
    assert seconds > 0  # the subprocess asserts that its learner ran the native update (measured: 0.01-0.04 s)
