"""fastsac.agents.cost.update_flops (SAC) and crossq_update_flops count exactly the matrix-product FLOPs of the
eager updates."""

from __future__ import annotations

import dataclasses
import types

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from fastsac.agents import ActionSpec, LearnerConfig, make_learner
from fastsac.agents.cost import crossq_update_flops, flash_update_flops, learner_update_flops, update_flops
from fastsac.agents.flash_networks import FlashActor, FlashCritic


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


@pytest.mark.parametrize(("discrete", "critic"), [(False, "scalar"), (True, "scalar"), (False, "categorical")])
@pytest.mark.parametrize(("obs_dim", "act", "hidden", "critic_hidden", "batch_size"),
                         [(17, 6, (64, 32), (128, 96), 16), (5, 2, (24,), (40, 8, 16), 7)])
def test_update_flops_counts_the_critics_own_widths_and_outputs(discrete, critic, obs_dim, act, hidden,
                                                               critic_hidden, batch_size):
    """SAC with critics of other widths than the actor's, and with a categorical critic (its bins as outputs):
    ``learner_update_flops`` counts what the eager update runs."""
    cfg = LearnerConfig(update="eager", hidden_sizes=hidden, critic_hidden_sizes=critic_hidden, policy_delay=1,
                        critic=critic, **({"critic_bins": 21} if critic == "categorical" else {}))
    learner = make_learner(obs_dim, ActionSpec(discrete, act), cfg)
    want = learner_update_flops(cfg, obs_dim, act, batch_size, discrete=discrete)
    assert counted_flops(learner.update, _batch(batch_size, obs_dim, act, discrete)) == want
    assert want == update_flops(obs_dim, act, hidden, batch_size, discrete=discrete, critic_hidden=critic_hidden,
                                critic_outputs=21 if critic == "categorical" else 1)


@pytest.mark.parametrize(("policy_delay", "critic"), [(1, "scalar"), (3, "scalar"), (3, "categorical")])
@pytest.mark.parametrize(("obs_dim", "act", "actor_hidden", "critic_hidden", "batch_size"),
                         [(17, 6, (256, 256), (512, 512), 64), (5, 1, (16, 16), (32, 24, 8), 7)])
def test_crossq_update_flops_matches_the_eager_update(policy_delay, critic, obs_dim, act, actor_hidden, critic_hidden,
                                                      batch_size):
    """CrossQ: the joint critic pass over 2 x batch rows, no target critics, the actor every policy_delay-th update
    (counted over one whole cycle); a categorical critic outputs its bins."""
    cfg = dataclasses.replace(LearnerConfig(update="eager").with_agent("crossq"), hidden_sizes=actor_hidden,
                              critic_hidden_sizes=critic_hidden, policy_delay=policy_delay, critic=critic,
                              **({"critic_bins": 11} if critic == "categorical" else {}))
    learner = make_learner(obs_dim, ActionSpec(False, act), cfg)
    batch = _batch(batch_size, obs_dim, act, False)
    for _ in range(policy_delay):  # outside the count: the cycle starts with an actor update again
        learner.update(batch)
    with FlopCounterMode(display=False) as counter:
        for _ in range(policy_delay):
            learner.update(batch)
    want = crossq_update_flops(obs_dim, act, actor_hidden, critic_hidden, batch_size, policy_delay=policy_delay,
                               critic_outputs=11 if critic == "categorical" else 1)
    assert counter.get_total_flops() == pytest.approx(policy_delay * want, rel=1e-12)
    assert learner_update_flops(cfg, obs_dim, act, batch_size) == want


def test_learner_update_flops_is_update_flops_for_sac():
    cfg = LearnerConfig(hidden_sizes=(64, 32), critic_hidden_sizes=(128, 128))
    assert learner_update_flops(cfg, 17, 6, 256) == update_flops(17, 6, (64, 32), 256, critic_hidden=(128, 128))
    assert learner_update_flops(LearnerConfig(hidden_sizes=(64, 32)), 17, 6, 256) == update_flops(17, 6, (64, 32), 256)


def _flash_passes(actor, critic, target, obs, action, next_obs, update_actor):
    """The passes of a FlashSAC update whose matrix products flash_update_flops counts (losses simplified: the
    products do not depend on them)."""
    b = obs.shape[0]
    with torch.no_grad():
        next_action = torch.tanh(actor(next_obs)[0])
        target(torch.cat([obs, next_obs]), torch.cat([action, next_action]), training=True)
    logits = critic(torch.cat([obs, next_obs]), torch.cat([action, next_action]), training=True)
    torch.autograd.grad(logits[:, :b].logsumexp(-1).mean(), list(critic.parameters()))
    if update_actor:
        mean, raw = actor(torch.cat([obs, next_obs]), training=True)
        a = torch.tanh(mean[:b] + 0.1 * raw[:b])
        q = critic.q_values(critic(obs, a, training=False)).amin(0)
        torch.autograd.grad(q.mean(), list(actor.parameters()))


@pytest.mark.parametrize(("obs_dim", "act", "aw", "ab", "cw", "cb", "bins", "members", "batch"),
                         [(17, 6, 32, 2, 64, 2, 101, 2, 16), (3, 1, 8, 1, 12, 3, 5, 3, 5), (4, 2, 8, 0, 8, 1, 7, 1, 2)])
def test_flash_update_flops_matches_the_eager_passes(obs_dim, act, aw, ab, cw, cb, bins, members, batch):
    actor = FlashActor(obs_dim, act, aw, ab)
    critic = FlashCritic(obs_dim + act, cw, cb, bins, members=members)
    g = torch.Generator().manual_seed(1)
    obs, next_obs = torch.randn(batch, obs_dim, generator=g), torch.randn(batch, obs_dim, generator=g)
    action = torch.rand(batch, act, generator=g) * 2 - 1
    counted = {}
    for update_actor in (False, True):
        with FlopCounterMode(display=False) as counter:
            _flash_passes(actor, critic, critic, obs, action, next_obs, update_actor)
        counted[update_actor] = counter.get_total_flops()
    args = (obs_dim, act, batch, aw, ab, cw, cb, bins, members)
    assert counted[True] == flash_update_flops(*args, actor_every=1)
    actor_step = counted[True] - counted[False]
    assert flash_update_flops(*args, actor_every=3) == pytest.approx(counted[False] + actor_step / 3, rel=1e-12)


def test_learner_update_flops_is_flash_update_flops_for_flashsac():
    """The FlashSAC learner's networks (FlashSACLearner._build_networks): widths and block counts from the hidden
    sizes, twin critics. A stand-in config: only the fields learner_update_flops reads."""
    cfg = types.SimpleNamespace(agent="flashsac", hidden_sizes=(128, 128), critic_widths=(256, 256, 256),
                                critic_bins=101, policy_delay=2)
    want = flash_update_flops(17, 6, 512, 128, 2, 256, 3, 101, 2, actor_every=2)
    assert learner_update_flops(cfg, 17, 6, 512) == want
