"""Benchmark children pinned to N cores with N threads: the one home of how the side-by-side benches start a provider.

``child_env(threads)``: the environment of a child that must use ``threads`` threads: OpenMP and MKL (torch, NumPy),
and XLA (JAX: without Eigen's pool at 1 thread, its pool on the pinned cores otherwise); JAX on the CPU.

``run_pinned(cmd, threads, extra_env)``: ``cmd`` run from the repository root, pinned to the first ``threads`` cores
of this process's affinity (``os.sched_setaffinity``), with ``child_env(threads)`` and ``extra_env``; its output
captured. bench_crossq_sbx.py, bench_flashsac_ref.py and bench_discrete_sac.py start their providers with it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child_env(threads: int) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    if threads == 1:
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    env["JAX_PLATFORMS"] = "cpu"
    return env


def run_pinned(cmd: list[str], threads: int, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    cores = sorted(os.sched_getaffinity(0))[:threads]
    env = dict(child_env(threads), **(extra_env or {}))
    return subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT,
                          preexec_fn=lambda: os.sched_setaffinity(0, cores))
