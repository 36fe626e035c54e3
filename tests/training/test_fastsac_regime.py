"""The FastSAC regime in training runs: its presets (the published G1 one and the CPU-scale Pendulum one), several
updates per vector step from one sample and one call (``Learner.update_many``) with an exact resume, the bf16
fallback said at the start and in summary.json, and a learning test of the Pendulum preset."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pathlib import Path

from fastsac.training import train
from fastsac.training.presets import resolve_config
from fastsac.training.session import Session
from tests.training.test_trainer import stopped_and_resumed, tiny

FASTSAC_LEARNER = {"hidden_sizes": [32, 16, 8], "critic_hidden_sizes": [48, 24, 12], "actor_network": "layernorm",
                   "critic_network": "layernorm", "activation": "silu", "obs_norm": True, "critic": "categorical",
                   "critic_bins": 21, "critic_v_min": -20.0, "critic_v_max": 20.0, "reward_norm": True,
                   "policy_delay": 4, "tau": 0.125, "gamma": 0.97, "initial_alpha": 0.001, "target_entropy": 0.0,
                   "log_std_min": -5.0, "log_std_max": 0.0, "amp": "bf16"}  # fmt: skip
# 2 torch envs, 3 updates per vector step (utd 3/2): a block of 3 with the actor every 4th update
SEVERAL = {"env_backend": "torch", "num_envs": 2, "utd": 1.5, "learner": FASTSAC_LEARNER}


def test_the_published_preset_is_fastsacs_setting():
    cfg, used = resolve_config("Mjlab-Velocity-Flat-Unitree-G1-sac-fastsac")
    learner = cfg.learner
    assert used == "Mjlab-Velocity-Flat-Unitree-G1-sac-fastsac" and cfg.env_backend == "mjlab" and cfg.privileged_critic
    assert cfg.num_envs == 4096 and cfg.batch_size == 8192 and cfg.buffer_size == 1024 * 4096
    assert cfg.num_envs * cfg.utd == 8 and cfg.learning_starts == 10 * 4096
    assert learner.agent == "sac" and learner.policy_delay == 4
    assert (learner.gamma, learner.tau, learner.initial_alpha, learner.target_entropy) == (0.97, 0.125, 0.001, 0.0)
    assert (learner.log_std_min, learner.log_std_max) == (-5.0, 0.0)
    assert learner.critic_widths == (768, 384, 192) and learner.hidden_sizes == (512, 256, 128)
    assert (learner.critic, learner.critic_bins, learner.critic_v_min, learner.critic_v_max) == \
        ("categorical", 101, -20.0, 20.0)
    assert learner.actor_network == learner.critic_network == "layernorm" and learner.activation == "silu"
    assert learner.uses_obs_norm and learner.amp == "bf16" and not learner.reward_norm


def test_several_updates_per_vector_step_resume_exactly(tmp_path, monkeypatch):
    """400 steps on 2 envs at utd 1.5: 3 updates per vector step as one block; stopped at 250 and resumed, the
    learner ends bit for bit as the uninterrupted run's (the bf16 fallback on this CPU: float32 both times)."""
    monkeypatch.delenv("FASTSAC_STRICT", raising=False)
    full, _, resumed = stopped_and_resumed(tmp_path, **SEVERAL)
    assert full.summary["updates"] == 3 * (400 - 200 + 2) // 2  # from the vector step reaching 200
    for run in (full, resumed):
        fallbacks = run.summary["fallbacks"]
        assert [f["kind"] for f in fallbacks] == ["amp"] and "on cpu" in fallbacks[0]["reason"]


def test_the_cli_says_the_bf16_fallback_at_the_start(tmp_path):
    out = tmp_path / "run"
    args = ["--preset", "Pendulum-v1-sac-fastsac", "--total-steps", "640", "--learning-starts", "320",
            "--eval-every", "0", "--eval-episodes", "2", "--out", str(out), "--no-progress", "--update", "eager"]
    cli = subprocess.run([sys.executable, "-m", "fastsac", "train", *args], capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr[-2000:]
    said = cli.stdout + cli.stderr
    assert "fallback: bf16 autocast of the networks" in said and "float32 networks" in said
    summary = json.loads((out / "summary.json").read_text())
    assert summary["finished"] and [f["kind"] for f in summary["fallbacks"]] == ["amp"]
    assert summary["updates"] == 4 * (640 - 320 + 64) // 64  # 4 updates per vector step of 64 envs


@pytest.mark.slow
def test_the_pendulum_preset_learns(tmp_path, monkeypatch):
    # Pendulum-v1-sac-fastsac as shipped (64 torch envs, 4 updates per vector step, 32k steps, ~2k updates).
    # Measured here with seeds 0, 1, 2: see the preset's header; a random policy scores ~-1200.
    monkeypatch.delenv("FASTSAC_STRICT", raising=False)
    cfg, _ = resolve_config("Pendulum-v1-sac-fastsac", {"out": str(tmp_path / "run"), "progress": False,
                                                         "tensorboard": False, "device": "cpu"})
    result = train(cfg)
    assert result.final_eval_return > -400, result.summary


def test_tiny_fastsac_runs_use_the_options(tmp_path, monkeypatch):
    monkeypatch.delenv("FASTSAC_STRICT", raising=False)
    result = train(tiny(tmp_path / "run", total_steps=240, learning_starts=80, eval_every=0, **SEVERAL))
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["learner"]["actor_network"] == "layernorm" and config["learner"]["activation"] == "silu"
    assert result.summary["updates"] == 3 * (240 - 80 + 2) // 2


PRIVILEGED = {"env_backend": "torch", "num_envs": 2, "privileged_critic": True}


def test_a_privileged_critic_run_resumes_exactly_and_evaluates(tmp_path):
    """Pendulum's critics see its angle and time left: a tiny eager run stopped at 250 and resumed ends
    bit for bit; its checkpoint evaluates through ``fastsac eval`` on envs of the same layout (and refuses a video,
    which a gymnasium env of another layout would record)."""
    full, _, _ = stopped_and_resumed(tmp_path, **PRIVILEGED)
    config = json.loads((full.run_dir / "config.json").read_text())
    assert config["privileged_critic"] is True
    ev = subprocess.run([sys.executable, "-m", "fastsac", "eval", str(full.run_dir), "--episodes", "2"],
                        capture_output=True, text=True)  # fmt: skip
    assert ev.returncode == 0, ev.stderr[-2000:]
    video = subprocess.run([sys.executable, "-m", "fastsac", "eval", str(full.run_dir), "--episodes", "1", "--video"],
                           capture_output=True, text=True)  # fmt: skip
    assert video.returncode == 2 and "Traceback" not in video.stderr
    assert "no video for this run: the run's observations hold privileged critic features" in video.stderr
    bad = subprocess.run([sys.executable, "-m", "fastsac", "train", "--env", "Pendulum-v1", "--privileged-critic",
                          "--out", str(tmp_path / "bad"), "--no-progress"], capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "privileged critic observations come from a device env" in bad.stderr


def looped_at_small_scale(preset: str, out: Path) -> Session:
    """``preset``'s networks and learner on 4 envs with a small buffer and batch and 8 updates per vector step: its
    training loop alone (no evaluation) for 48 env steps, the random ones up to 16 included; returns the session,
    its envs closed. For the FastSAC presets of simulators too slow here for more (tests of mjlab and MJX)."""
    small = {"num_envs": 4, "total_steps": 48, "learning_starts": 16, "batch_size": 64, "buffer_size": 4096,
             "utd": 2.0, "eval_every": 0, "eval_episodes": 1, "log_every": 48, "checkpoint_every": 0, "device": "cpu",
             "update": "eager", "progress": False, "tensorboard": False, "out": str(out)}  # fmt: skip
    cfg, _ = resolve_config(preset, small)
    session = Session(cfg, Path(cfg.out))
    try:
        session.obs = session.env.reset()
        session.log.open(0, None, [])
        session._loop(type("NoStop", (), {"requested": False})())
    finally:
        session.log.close()
        session.env.close()
    assert session.step == 48 and session.learner.num_updates == 8 * (48 - 16 + 4) // 4
    return session
