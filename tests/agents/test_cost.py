"""fastsac.agents.cost.update_flops (SAC) and crossq_update_flops count exactly the matrix-product FLOPs of the
eager updates."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from fastsac.agents import ActionSpec, LearnerConfig, make_learner
from fastsac.agents.cost import crossq_update_flops, learner_update_flops, update_flops


def _batch(n, obs_dim, act, discrete):
    g = torch.Generator().manual_seed(0)
    action = torch.randint(act, (n,), generator=g) if discrete else torch.rand(n, act, generator=g) * 2 - 1
    return (torch.randn(n, obs_dim, generator=g), action, torch.randn(n, generator=g),
            torch.randn(n, obs_dim, generator=g), torch.zeros(n))


def counted_flops(update, batch) -> int:
    update(batch)  # first call outside the count
    with FlopCounterMode(display=False) as counter:
        update(batch)
    return counter.get_total_flops()


@pytest.mark.parametrize("discrete", [False, True])
@pytest.mark.parametrize(("obs_dim", "act", "hidden", "batch_size"),
                         [(17, 6, (256, 256), 256), (5, 1, (64, 64), 32), (11, 3, (32, 48, 16), 7)])
def test_update_flops_matches_the_eager_update(discrete, obs_dim, act, hidden, batch_size):
    n = max(act, 2) if discrete else act
    learner = make_learner(obs_dim, ActionSpec(discrete, n),
                           LearnerConfig(update="eager", hidden_sizes=hidden, policy_delay=1))
    batch = _batch(batch_size, obs_dim, n, discrete)
    assert counted_flops(learner.update, batch) == update_flops(obs_dim, n, hidden, batch_size, discrete=discrete)


@pytest.mark.parametrize("policy_delay", [1, 3])
@pytest.mark.parametrize(("obs_dim", "act", "actor_hidden", "critic_hidden", "batch_size"),
                         [(17, 6, (256, 256), (512, 512), 64), (5, 1, (16, 16), (32, 24, 8), 7)])
def test_crossq_update_flops_matches_the_eager_update(policy_delay, obs_dim, act, actor_hidden, critic_hidden,
                                                      batch_size):
    """CrossQ: the joint critic pass over 2 x batch rows, no target critics, the actor every policy_delay-th update
    (counted over one whole cycle)."""
    cfg = dataclasses.replace(LearnerConfig(update="eager").with_agent("crossq"), hidden_sizes=actor_hidden,
                              critic_hidden_sizes=critic_hidden, policy_delay=policy_delay)
    learner = make_learner(obs_dim, ActionSpec(False, act), cfg)
    batch = _batch(batch_size, obs_dim, act, False)
    for _ in range(policy_delay):  # outside the count: the cycle starts with an actor update again
        learner.update(batch)
    with FlopCounterMode(display=False) as counter:
        for _ in range(policy_delay):
            learner.update(batch)
    want = crossq_update_flops(obs_dim, act, actor_hidden, critic_hidden, batch_size, policy_delay=policy_delay)
    assert counter.get_total_flops() == pytest.approx(policy_delay * want, rel=1e-12)
    assert learner_update_flops(cfg, obs_dim, act, batch_size) == want


def test_learner_update_flops_is_update_flops_for_sac():
    cfg = LearnerConfig(hidden_sizes=(64, 32), critic_hidden_sizes=(128, 128))
    assert learner_update_flops(cfg, 17, 6, 256) == update_flops(17, 6, (64, 32), 256)
