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
                              hidden=[16, 16], update="eager", threads=1, warmup=3, iters=4)  # fmt: skip
    row = bench.measure(args, 16, tmp_path / "run")
    assert row["num_envs"] == 16 and row["updates_per_iteration"] == 2
    assert set(row["parts_ms"]) == {"env", "act", "buffer", "update"} and all(v > 0 for v in row["parts_ms"].values())
    assert abs(sum(row["parts_share"].values()) - 1) < 1e-9
    assert row["env_steps_per_s"] == 16 / (row["loop_ms"] / 1e3)
