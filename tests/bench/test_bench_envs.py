"""bench/bench_envs.py --gaps-ms: one env step (and one MuJoCo ``mj_step``) timed after each busy gap."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("mujoco")

_spec = importlib.util.spec_from_file_location(
    "bench_envs", Path(__file__).resolve().parents[2] / "bench" / "bench_envs.py")
bench_envs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_envs)


def test_gaps_time_every_gap_for_the_env_and_its_simulator():
    medians = bench_envs.run_after_gaps("HalfCheetah-v5", "gymnasium", 1, [0.0, 1.0], steps=5)
    assert set(medians) == {(what, gap) for what in ("env step", "mj_step") for gap in (0.0, 1.0)}
    assert all(us > 0 for us in medians.values())


def test_gaps_of_an_env_without_a_mujoco_model_time_the_env_step_only():
    medians = bench_envs.run_after_gaps("Pendulum-v1", "gymnasium", 1, [0.5], steps=3)
    assert set(medians) == {("env step", 0.5)}


def test_busy_waits_at_least_the_gap():
    import time

    t = time.perf_counter()
    bench_envs._busy(0.002)
    assert time.perf_counter() - t >= 0.002
