"""The shell scripts: scripts/gpu_checks.sh rehearsed on the CPU (--dry-run: every step runs its CPU equivalent or
checks what it would run), its time budget, and the argument checks of the build and floor scripts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STEPS = ["machine", "wheels", "build", "gpu_tests", "capture", "bench_ops", "bench_update", "e2e", "parallel",
         "locomotion", "dist"]


def _bash(*args, timeout=300, **env):
    return subprocess.run(["bash", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHON": sys.executable, **env})


def _summary(out: Path) -> dict[str, str]:
    rows = [line.split(None, 1) for line in (out / "summary.txt").read_text().splitlines()]
    return {name: rest for name, rest in rows}


def test_gpu_checks_dry_run_passes_every_step(tmp_path):
    out = tmp_path / "gpu_out"
    res = _bash("scripts/gpu_checks.sh", "--dry-run", OUT=str(out))
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    summary = _summary(out)
    assert list(summary) == STEPS  # in the order of importance
    assert all(verdict.startswith("ok") for verdict in summary.values()), summary
    for step in STEPS:
        assert (out / f"{step}.log").is_file()
    assert "tests collected" in (out / "gpu_tests.log").read_text()  # the GPU selections are not empty
    assert "tests collected" in (out / "capture.log").read_text()
    assert "takes every flag above" in (out / "bench_update.log").read_text()
    assert "FASTSAC_FORCE_CUDA=1" in (out / "build.log").read_text()


def test_gpu_checks_stops_at_its_budget(tmp_path):
    out = tmp_path / "gpu_out"
    res = _bash("scripts/gpu_checks.sh", "--dry-run", OUT=str(out), BUDGET="3")
    assert res.returncode == 1
    assert all(verdict.startswith("SKIPPED (budget)") for verdict in _summary(out).values())


@pytest.mark.parametrize("script", ["gpu_checks.sh", "check_cuda_build.sh", "check_torch_floor.sh", "check_mjlab.sh",
                                    "check_mjx.sh"])
def test_scripts_reject_unknown_arguments(script):
    res = _bash(f"scripts/{script}", "--no-such-flag", timeout=60)
    assert res.returncode == 2 and "unknown argument --no-such-flag" in res.stderr
