"""bench/bench_compile.py, the numbers behind the compile rule: each of its three providers runs the update it is
named for, and a fresh process's first native call is timed (torch.compile's first calls, tens of seconds each,
are left to the benchmark itself)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fastsac.agents import native_update

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
import bench_compile  # noqa: E402


@pytest.mark.parametrize("kind", bench_compile.KINDS)
def test_each_provider_runs_the_update_it_is_named_for(monkeypatch, kind):
    if kind == "compiled":  # a stand-in for torch.compile: what matters is which update the learner chose
        from fastsac.agents import compilation

        monkeypatch.setattr(compilation, "compile_update", lambda fn: fn)
    learner = bench_compile._learner(kind, 3, 1, 16)
    if learner is None:
        assert kind == "native" and native_update._extension() is None
        return
    learner.update(bench_compile.make_batches(1, bench_compile.BATCH, 3, 1)[0])
    assert learner.update_kind == kind and learner.fallbacks == []


@pytest.mark.skipif(native_update._extension() is None, reason="the C++ extension (with sac_update_cpu) is not built")
def test_the_native_first_call_is_timed_in_a_fresh_process(tmp_path):
    seconds = bench_compile.first_call_seconds("native", 3, 1, 16, 1, str(tmp_path))
    assert seconds > 0  # the subprocess asserts that its learner ran the native update (measured: 0.01-0.04 s)
