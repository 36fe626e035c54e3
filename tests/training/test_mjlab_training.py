"""Training on mjlab (``--env-backend mjlab``) on a CPU: the CLI run, its resume (fresh episodes, said so), and
learning Mjlab-Cartpole-Balance. Opt-in like tests/data/test_mjlab_backend.py: ``bash scripts/check_mjlab.sh``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

if os.environ.get("FASTSAC_REQUIRE_MJLAB") != "1":
    pytest.importorskip("mjlab", reason="mjlab is not installed: bash scripts/check_mjlab.sh runs these tests")

from fastsac.training import resume

TASK = "Mjlab-Cartpole-Balance"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fastsac", "train", *args], capture_output=True, text=True)


def test_cli_run_and_resume_with_fresh_episodes(tmp_path):
    out = tmp_path / "run"
    res = cli("--env", TASK, "--env-backend", "mjlab", "--num-envs", "16", "--total-steps", "640", "--learning-starts",
              "320", "--utd", "0.125", "--eval-every", "0", "--eval-episodes", "2", "--log-every", "320", "--out",
              str(out), "--no-progress", "--device", "cpu")  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["finished"] and summary["env_backend"] == "mjlab" and summary["total_steps"] == 640
    resumed = resume(out, total_steps=960)
    assert resumed.summary["resume_exact"] is False
    assert "mjlab has no API to save an env's state" in resumed.summary["resume_note"]
    bad = cli("--env", "Mjlab-Nope", "--env-backend", "mjlab", "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and "not an mjlab task" in bad.stderr and "Traceback" not in bad.stderr
