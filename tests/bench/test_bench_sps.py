"""bench/bench_sps.py's interleaved repeats: every provider runs once per round, the JSON keeps every round and the
table's ratio is the median of the per-round ratios (a tiny HalfCheetah run: eager fastsac against the plain loop)."""

from __future__ import annotations

import importlib.util
import json
import statistics
import sys
from pathlib import Path

import pytest

pytest.importorskip("mujoco")

_spec = importlib.util.spec_from_file_location(
    "bench_sps", Path(__file__).resolve().parents[2] / "bench" / "bench_sps.py")
bench_sps = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("bench_sps", bench_sps)  # its dataclasses look their module up there
_spec.loader.exec_module(bench_sps)


def _record_calls(monkeypatch, names) -> list[str]:
    """The names of ``bench_sps``'s functions ``names``, in the order they are called (each still runs)."""
    calls = []
    for name in names:
        real = getattr(bench_sps, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            calls.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(bench_sps, name, spy)
    return calls


def test_repeats_interleave_the_providers_and_report_per_round_ratios(tmp_path, capsys, monkeypatch):
    order = _record_calls(monkeypatch, ("run_fastsac", "run_baseline"))
    out = tmp_path / "sps.json"
    assert bench_sps.main(["--configs", "1", "--providers", "fastsac-eager", "baseline", "--learning-starts", "16",
                           "--burn-in", "8", "--measure", "16", "--repeats", "2", "--threads", "1",
                           "--json", str(out)]) == 0  # fmt: skip
    assert order == ["run_fastsac", "run_baseline"] * 2
    saved = json.loads(out.read_text())
    rounds = saved["steps_per_second_rounds"]["1"]
    assert saved["repeats"] == 2 and len(rounds["fastsac-eager"]) == len(rounds["baseline"]) == 2
    assert all(v > 0 for v in rounds["fastsac-eager"] + rounds["baseline"])
    assert saved["steps_per_second"]["1"]["baseline"] == statistics.median(rounds["baseline"])
    printed = capsys.readouterr().out
    per_round = [a / b for a, b in zip(rounds["fastsac-eager"], rounds["baseline"])]
    assert f"{statistics.median(per_round):.2f}x" in printed
    assert "fastsac-eager/baseline per round: " + ", ".join(f"{r:.2f}x" for r in per_round) in printed


def test_components_time_the_loop_and_report_the_products_ratio(tmp_path, capsys, monkeypatch):
    """--components runs the baseline, then one more (compiled by default) fastsac run with each call of its loop
    timed, and replays one timed update's BLAS products alone: every part is reported, the parts add up to the
    step's total, and products alone / update is printed and saved as a ratio. Behaviour only: which of two
    measured durations is the smaller is the benchmark's output (the ratio), not something a test asserts."""
    ran = _record_calls(monkeypatch, ("run_fastsac", "run_baseline", "fastsac_components"))
    out = tmp_path / "sps.json"
    assert bench_sps.main(["--configs", "1", "--providers", "baseline", "--learning-starts", "16", "--burn-in", "8",
                           "--measure", "16", "--threads", "1", "--components", "--json", str(out)]) == 0  # fmt: skip
    assert ran == ["run_baseline", "fastsac_components"]
    printed = capsys.readouterr().out
    saved = json.loads(out.read_text())
    parts = dict(saved["fastsac_ms_per_step"]["1"])
    assert {"env step (wrapper + simulator)", "buffer add", "buffer sample", "update", "other (loop)", "total",
            "update's BLAS products alone"} <= set(parts)  # fmt: skip
    assert all(isinstance(v, float) and v == v for v in parts.values())  # numbers, none NaN
    line = next(x for x in printed.splitlines() if "fastsac, ms per env step:" in x)
    assert all(f"{k} {v:.3f}" in line for k, v in parts.items())
    products, total = parts.pop("update's BLAS products alone"), parts.pop("total")
    assert sum(parts.values()) == pytest.approx(total, rel=1e-9)  # "other (loop)" is the rest of the step
    ratio = saved["fastsac_products_over_update"]["1"]
    assert ratio == pytest.approx(products / parts["update"])
    assert f"products alone / update: {ratio:.2f}" in printed
    assert "an update doing only its BLAS products" in printed and "the plain loop's" in printed
