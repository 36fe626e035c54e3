"""bench/bench_discrete_sac.py without the heavy run: its arguments, a short plain loop, the interleaved rounds and
per-round ratios from fake children, and the pinned child's environment (bench/pinned.py)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

_BENCH = Path(__file__).resolve().parents[2] / "bench"
_spec = importlib.util.spec_from_file_location("bench_discrete_sac", _BENCH / "bench_discrete_sac.py")
bench = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("bench_discrete_sac", bench)
_spec.loader.exec_module(bench)
import pinned  # noqa: E402  (bench/ is on sys.path once the bench module is loaded)


def test_defaults_and_argument_errors():
    a = bench.parse_args([])
    assert a.threads == [1, 2] and a.rounds == 3 and a.providers == ["plain", "fastsac", "fastsac-eager"]
    assert (a.learning_starts, a.burn_in, a.measure) == (1000, 500, 3000)
    for bad in (["--providers", "fastsac"], ["--providers", "sb3"]):
        with pytest.raises(SystemExit):
            bench.parse_args(bad)


def test_the_plain_loop_runs_and_times_only_the_measured_steps():
    args = bench.parse_args(["--learning-starts", "150", "--burn-in", "5", "--measure", "20", "--threads", "1"])
    sps = bench.run_plain(args)
    assert math.isfinite(sps) and sps > 0


def test_rounds_interleave_and_ratios_are_per_round(monkeypatch, tmp_path, capsys):
    calls = []
    speeds = {"plain": [100.0, 200.0], "fastsac": [300.0, 500.0], "fastsac-eager": [150.0, 260.0]}

    def fake_child(provider, threads, args):
        calls.append((provider, threads))
        got = {"sps": speeds[provider][sum(1 for p, t in calls if p == provider and t == threads) - 1]}
        return got if provider == "plain" else {**got, "update": "native, fallbacks: none"}

    monkeypatch.setattr(bench, "run_child", fake_child)
    out = tmp_path / "r.json"
    assert bench.main(["--threads", "1", "--rounds", "2", "--json", str(out)]) == 0
    assert [c[0] for c in calls] == ["plain", "fastsac", "fastsac-eager", "fastsac-eager", "fastsac", "plain"]
    saved = json.loads(out.read_text())["e2e"]["1"]
    assert saved["ratios"]["fastsac"] == pytest.approx([3.0, 2.5])
    assert saved["ratios"]["fastsac-eager"] == pytest.approx([1.5, 1.3])
    assert saved["updates"]["fastsac"] == "native, fallbacks: none"
    assert "fastsac / plain per round 3.00x, 2.50x (median 2.75x)" in capsys.readouterr().out


def test_a_child_is_pinned_with_its_thread_count(monkeypatch):
    env = pinned.child_env(1)
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "1" and "multi_thread_eigen=false" in env["XLA_FLAGS"]
    assert "XLA_FLAGS" not in pinned.child_env(2) or "multi_thread_eigen=false" not in pinned.child_env(2)["XLA_FLAGS"]
    done = pinned.run_pinned([sys.executable, "-c", "import os; print(len(os.sched_getaffinity(0)), "
                              "os.environ['OMP_NUM_THREADS'], os.environ['EXTRA'])"], 1, {"EXTRA": "x"})
    assert done.returncode == 0 and done.stdout.split() == ["1", "1", "x"]
