"""bench/bench_device_envs.py: the loop's parts and the loop itself timed for a device env at several env counts."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "bench_device_envs", Path(__file__).resolve().parents[2] / "bench" / "bench_device_envs.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_measure_times_every_part_and_the_loop(tmp_path):
    args = argparse.Namespace(backend="torch", env="Pendulum-v1", device="cpu", utd=1 / 8, batch_size=32,
                              hidden=[16, 16], update="eager", threads=1, warmup=3, iters=4, preset=None)  # fmt: skip
    row = bench.measure(args, 16, tmp_path / "run")
    assert row["num_envs"] == 16 and row["updates_per_iteration"] == 2 and row["update_calls_ms"] > 0
    assert set(row["parts_ms"]) == {"env", "act", "buffer", "update"} and all(v > 0 for v in row["parts_ms"].values())
    assert abs(sum(row["parts_share"].values()) - 1) < 1e-9
    assert row["env_steps_per_s"] == 16 / (row["loop_ms"] / 1e3)


def test_a_presets_learner_is_measured(tmp_path, monkeypatch):
    monkeypatch.delenv("FASTSAC_STRICT", raising=False)  # the preset's bf16 falls back on a CPU
    args = argparse.Namespace(backend="torch", env="Pendulum-v1", device="cpu", utd=1 / 4, batch_size=16,
                              hidden=[16, 16], update="eager", threads=1, warmup=3, iters=2,
                              preset="Pendulum-v1-sac-fastsac")  # fmt: skip
    row = bench.measure(args, 8, tmp_path / "run")
    assert row["updates_per_iteration"] == 2 and row["update_calls_ms"] > 0 and row["parts_ms"]["update"] > 0
