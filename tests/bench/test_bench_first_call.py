"""bench_first_call.py: the per-tensor differences of a fast first call from the eager update, as the check sees
them (a native SAC update at small sizes: no compile)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import bench_first_call  # noqa: E402

from fastsac.agents import LearnerConfig  # noqa: E402


def test_first_call_spread_sees_every_compared_tensor():
    cfg = dataclasses.replace(LearnerConfig(hidden_sizes=(16, 16)), update="native")
    r = bench_first_call.first_call_spread(cfg, 5, 2, 32, seed=0)
    assert r["fast"] == r["kept"] == "native"  # the README's set-up builds the native update: never skipped
    kinds = r["kinds"]
    # rounding only at these sizes: both kinds well inside the check's 1e-4, and measured (not all zero)
    assert 0 < kinds["moments"]["max"] < 1e-4 and kinds["forward"]["max"] < 1e-4
    assert {w["kind"] for w in r["worst"]} <= {"moments", "forward"} and len(r["worst"]) == 5
    assert bench_first_call.kind_of("critic_optim.exp_avg_sq[3]") == "moments"
    assert bench_first_call.kind_of("metric sums (losses, q mean, entropy)") == "forward"
