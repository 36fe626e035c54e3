"""CrossQ and the normalized critics through the trainer: choosing the agent (flags, presets, train()), a real
learning run, and exact resume (batch-renorm and observation statistics included) like the SAC resume tests."""

from __future__ import annotations

import json

import pytest

from fastsac.agents import LearnerConfig
from fastsac.agents.config import CROSSQ_DEFAULTS
from fastsac.cli import build_parser, train_overrides
from fastsac.training import evaluate, resume, train
from fastsac.training.checkpoint import load_checkpoint, save_checkpoint
from fastsac.training.config import config_from_dict
from fastsac.training.presets import resolve_config
from tests.training.test_trainer import _eval_returns, learner_state, stopped_and_resumed, tiny

CROSSQ_TINY = {"agent": "crossq", "hidden_sizes": [32, 32], "critic_hidden_sizes": [64, 64], "brn_warmup_steps": 100}


def test_agent_flag_picks_the_crossq_preset_and_defaults():
    args = build_parser().parse_args(["train", "--env", "Hopper-v5", "--agent", "crossq"])
    cfg, preset = resolve_config(args.preset, train_overrides(args))
    assert preset == "Hopper-v5-crossq" and cfg.learner.agent == "crossq" and cfg.learning_starts == 5_000
    assert {k: getattr(cfg.learner, k) for k in CROSSQ_DEFAULTS} == CROSSQ_DEFAULTS
    # An env without a CrossQ preset keeps its SAC preset's run settings; the agent's fields become CrossQ's.
    cfg, preset = resolve_config("auto", {"env_id": "Humanoid-v5", "learner": {"agent": "crossq"}})
    assert preset == "Humanoid-v5" and cfg.learner.policy_delay == 3 and cfg.learner.adam_beta1 == 0.5
    # Values given with the agent apply on top of its defaults; switching back restores SAC's.
    cfg = config_from_dict({"learner": {"agent": "crossq", "critic_hidden_sizes": [512, 512]}})
    assert cfg.learner.critic_widths == (512, 512) and cfg.learner.actor_lr == 1e-3
    back = config_from_dict({"learner": {"agent": "sac"}}, cfg)
    assert back.learner.critic_hidden_sizes is None and back.learner.policy_delay == 1
    assert back.learner.actor_lr == LearnerConfig().actor_lr


def test_discrete_env_with_crossq_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="continuous actions.*--agent sac"):
        train(tiny(tmp_path / "run", env_id="CartPole-v1", learner={"agent": "crossq", "hidden_sizes": [8, 8]}))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("critic_network", ["mlp", "simba"])
def test_crossq_resume_continues_exactly(tmp_path, critic_network):
    # 201 updates from step 200, the batch-renorm warm-up ending after 100 of them (step 300); stopped at step 250:
    # inside the warm-up, between actor updates (policy_delay 3), mid-episode. simba adds observation statistics.
    learner = {**CROSSQ_TINY, "critic_network": critic_network}
    full, _, _ = stopped_and_resumed(tmp_path, learner=learner)
    state = learner_state(full.run_dir)
    assert state["target_critic"] is None and ("obs_norm" in state) == (critic_network == "simba")
    assert state["critic"]["layers_0_steps"].tolist() == [201, 201]  # one per update (steps 200..400): past 100
    assert json.loads((full.run_dir / "config.json").read_text())["learner"]["agent"] == "crossq"
    # `fastsac eval` rebuilds the CrossQ learner from the checkpoint and plays the run's last evaluation again.
    ev = evaluate(full.run_dir, episodes=2)
    assert ev.mean_return == pytest.approx(full.final_eval_return, rel=0, abs=1e-9)


def test_resume_of_a_run_saved_before_the_new_fields(tmp_path):
    """A checkpoint whose configuration lacks the fields added with CrossQ (agent, critic options) resumes: they
    take their defaults, which is what such a run trained with."""
    run = train(tiny(tmp_path / "old", total_steps=250)).run_dir
    path = run / "checkpoints" / "latest.pt"
    ckpt = load_checkpoint(path)
    for key in ("agent", "critic_hidden_sizes", "critic_network", "obs_norm", "adam_beta1", "brn_momentum",
                "brn_warmup_steps"):
        del ckpt["config"]["learner"][key]
    save_checkpoint(path, ckpt)
    assert resume(run, total_steps=300).total_steps == 300


@pytest.mark.slow
def test_crossq_learns_pendulum(tmp_path):
    # The Pendulum-v1-crossq preset (actor 64x64, critics 128x128), 3k steps of Pendulum-v1 (2k updates), eager.
    # Measured here (2-core CPU, 30-35 s of CPU each) with seeds 0, 1, 2: -110, -126, -150 at 3k steps (-1300,
    # -1011, -1294 at 1k, the end of the random phase). A random policy scores about -1200.
    cfg, preset = resolve_config("Pendulum-v1-crossq", dict(
        out=str(tmp_path / "pendulum"), total_steps=3_000, eval_every=3_000, progress=False, tensorboard=False,
        update="eager", device="cpu", seed=0))  # fmt: skip
    assert preset == "Pendulum-v1-crossq" and cfg.learner.critic_widths == (128, 128)
    result = train(cfg)
    assert result.final_eval_return > -400, _eval_returns(result.run_dir)
    assert load_checkpoint(result.run_dir / "checkpoints" / "latest.pt")["learner"]["kind"] == "CrossQLearner"
