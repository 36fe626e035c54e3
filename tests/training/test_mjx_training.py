"""Training on MJX (``--env-backend mjx``) on a CPU: a run on MJX-Humanoid-v0 stopped and resumed ends bit for bit as
the uninterrupted one (MJX's whole state is in the checkpoint), and the FastSAC preset of the task runs at small
scale. Opt-in like tests/data/test_mjx_backend.py: ``bash scripts/check_mjx.sh``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

if os.environ.get("FASTSAC_REQUIRE_MJX") != "1":
    pytest.importorskip("mujoco.mjx", reason="mujoco-mjx is not installed: bash scripts/check_mjx.sh runs these tests")
    pytest.importorskip("jax", reason="JAX is not installed: bash scripts/check_mjx.sh runs these tests")

from fastsac.training.checkpoint import load_checkpoint
from fastsac.training.presets import resolve_config
from fastsac.training.session import Session
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
    small = {"num_envs": 4, "total_steps": 48, "learning_starts": 16, "batch_size": 64, "buffer_size": 4096,
             "utd": 2.0, "eval_every": 0, "log_every": 48, "checkpoint_every": 0, "device": "cpu", "update": "eager",
             "progress": False, "tensorboard": False, "out": str(tmp_path / "run")}  # fmt: skip
    cfg, _ = resolve_config("MJX-Humanoid-v0-sac-fastsac", small)
    session = Session(cfg, Path(cfg.out))
    try:
        session.obs = session.env.reset()
        session.log.open(0, None, [])
        session._loop(type("NoStop", (), {"requested": False})())
    finally:
        session.log.close()
        session.env.close()
    learner = session.learner
    assert session.step == 48 and learner.num_updates == 8 * (48 - 16 + 4) // 4
    assert learner.cfg.critic_widths == (768, 384, 192) and [f.kind for f in learner.fallbacks] == ["amp"]
    assert all(v == v and abs(v) < 1e6 for v in learner.metrics().values())
