"""SAC and CrossQ with the categorical critic and reward normalization through the trainer: the flags, the reward
scale fed by every env step, exact resume, and a learning run on Pendulum."""

from __future__ import annotations

import pytest
import torch

from fastsac.cli import build_parser, train_overrides
from fastsac.training import train
from fastsac.training.presets import resolve_config
from tests.training.test_trainer import _eval_returns, learner_state, stopped_and_resumed

def _head_outputs(critic_state: dict) -> int:
    """What the last layer of SAC's stacked MLP critics outputs (its weight: members x outputs x width)."""
    last = max((k for k in critic_state if k.endswith("_weight")), key=lambda k: int(k.split("_")[0]))
    return critic_state[last].shape[1]


CATEGORICAL = {"critic": "categorical", "critic_bins": 21, "reward_norm": True, "initial_alpha": 0.01}


def test_flags_give_a_categorical_sac_and_crossq():
    for agent in ("sac", "crossq"):
        args = build_parser().parse_args(["train", "--env", "Pendulum-v1", "--agent", agent, "--critic", "categorical",
                                          "--critic-v-min", "-20", "--critic-v-max", "2", "--reward-norm"])
        cfg, _ = resolve_config(args.preset, train_overrides(args))
        learner = cfg.learner
        assert (learner.agent, learner.critic, learner.critic_v_min, learner.critic_v_max, learner.reward_norm) == (
            agent, "categorical", -20.0, 2.0, True)


@pytest.mark.parametrize("agent", ["sac", "crossq"])
def test_resume_continues_exactly_with_the_reward_scale(tmp_path, agent):
    # 201 updates from step 200, stopped at 250 mid-episode; every env step (the random ones too) feeds the scale.
    learner = {"agent": agent, "hidden_sizes": [16], "critic_hidden_sizes": [32], **CATEGORICAL}
    full, _, _ = stopped_and_resumed(tmp_path, learner=learner)
    state = learner_state(full.run_dir)
    assert torch.as_tensor(state["reward_scale"]["count"]).round().item() == 400
    if agent == "sac":
        assert _head_outputs(state["critic"]) == 21


@pytest.mark.slow
def test_categorical_sac_with_reward_norm_learns_pendulum(tmp_path):
    # The Pendulum-v1 preset with the categorical critic (101 atoms on [-5, 5]) and reward normalization, and the
    # temperature started at FlashSAC's 0.01: the scaled rewards are ~1/300 of Pendulum's, so the preset's alpha0 of
    # 1 outweighs them (measured: eval -944 at 8k steps with it, scalar or categorical). Measured here at seed 0:
    # eval -111 at 5k and -109 at 8k steps (evaluated every 5k), as the scalar preset (-112, -109). Bar: the preset
    # header's -250.
    cfg, _ = resolve_config("Pendulum-v1", dict(
        out=str(tmp_path / "pendulum"), total_steps=8_000, eval_every=4_000, progress=False, tensorboard=False,
        update="eager", device="cpu", seed=0, threads=1,
        learner={"critic": "categorical", "reward_norm": True, "initial_alpha": 0.01}))  # fmt: skip
    result = train(cfg)
    assert result.final_eval_return >= -250, _eval_returns(result.run_dir)
    state = learner_state(result.run_dir)
    assert state["reward_scale"] is not None and _head_outputs(state["critic"]) == 101
