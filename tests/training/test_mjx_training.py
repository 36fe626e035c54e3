"""Training on MJX (``--env-backend mjx``) on a CPU: a run on MJX-Humanoid-v0 stopped and resumed ends bit for bit as
the uninterrupted one (MJX's whole state is in the checkpoint), and the FastSAC preset of the task runs at small
scale. Opt-in like tests/data/test_mjx_backend.py: ``bash scripts/check_mjx.sh``."""

from __future__ import annotations

import os

import pytest

if os.environ.get("FASTSAC_REQUIRE_MJX") != "1":
    pytest.importorskip("mujoco.mjx", reason="mujoco-mjx is not installed: bash scripts/check_mjx.sh runs these tests")
    pytest.importorskip("jax", reason="JAX is not installed: bash scripts/check_mjx.sh runs these tests")

from fastsac.training.checkpoint import load_checkpoint
from tests.training.test_fastsac_regime import looped_at_small_scale
from tests.training.test_trainer import stopped_and_resumed

MJX = {"env_id": "MJX-Humanoid-v0", "env_backend": "mjx", "num_envs": 2, "eval_episodes": 2}


def test_an_mjx_run_resumes_exactly(tmp_path):
    full, _, resumed = stopped_and_resumed(tmp_path, **MJX)
    ckpt = load_checkpoint(resumed.run_dir / "checkpoints" / "latest.pt")
    assert set(ckpt["env"]["state"]) == {"sim", "tally"} and ckpt["env"]["state"]["sim"]["data"]
    assert resumed.summary["env_backend"] == "mjx" and full.summary["finished"]


def test_the_fastsac_preset_trains_at_small_scale(tmp_path, monkeypatch):
    """MJX-Humanoid-v0-sac-fastsac with its networks and learner as shipped, on 4 envs with a small buffer and batch
    and 8 updates per vector step: the loop (no evaluation) acts, stores and updates in blocks of 8."""
    monkeypatch.delenv("FASTSAC_STRICT", raising=False)
    session = looped_at_small_scale("MJX-Humanoid-v0-sac-fastsac", tmp_path / "run")
    learner = session.learner
    assert learner.cfg.critic_widths == (768, 384, 192) and [f.kind for f in learner.fallbacks] == ["amp"]
    assert all(v == v and abs(v) < 1e6 for v in learner.metrics().values())
