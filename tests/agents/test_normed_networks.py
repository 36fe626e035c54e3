"""Normalized critics (LayerNorm, SimBa) and running observation normalization, for SAC and CrossQ: the networks
against float64 hand computations, the learners' use of them, one compiled graph, statistics saved and restored."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from fastsac.agents import ActionSpec, LearnerConfig, make_learner
from fastsac.agents.networks import ContinuousTwinQ
from fastsac.agents.normed_networks import critic_member
from tests.agents.helpers import graphs_made_stepping, saved_and_loaded, trace_with_aot_eager

OBS, ACT = 5, 2


def _batch(batch_size=8, seed=0, discrete=False):
    g = torch.Generator().manual_seed(seed)
    if discrete:
        action = torch.randint(0, 3, (batch_size,), generator=g)
    else:
        action = torch.rand(batch_size, ACT, generator=g) * 2 - 1
    return (torch.randn(batch_size, OBS, generator=g) * 3 + 2, action, torch.randn(batch_size, generator=g),
            torch.randn(batch_size, OBS, generator=g) * 3 + 2, torch.zeros(batch_size, dtype=torch.bool))  # fmt: skip


def _params(module, j):
    """Member ``j``'s parameters in float64, by the member's own names."""
    return {k: v[j].double() for k, v in module.state_dict().items()}


def _layernorm_q(p, x):
    h = x
    for lin, ln in (("layers_0", "layers_1"), ("layers_3", "layers_4")):
        h = h @ p[f"{lin}_weight"].T + p[f"{lin}_bias"]
        mu, var = h.mean(-1, keepdim=True), h.var(-1, correction=0, keepdim=True)
        h = torch.relu((h - mu) / torch.sqrt(var + 1e-5) * p[f"{ln}_weight"] + p[f"{ln}_bias"])
    return (h @ p["layers_6_weight"].T + p["layers_6_bias"]).squeeze(-1)


def _simba_q(p, x, blocks=2):
    def ln(h, name):
        mu, var = h.mean(-1, keepdim=True), h.var(-1, correction=0, keepdim=True)
        return (h - mu) / torch.sqrt(var + 1e-5) * p[f"{name}_weight"] + p[f"{name}_bias"]

    h = x @ p["layers_0_weight"].T + p["layers_0_bias"]
    for i in range(1, blocks + 1):
        inner = torch.relu(ln(h, f"layers_{i}_norm") @ p[f"layers_{i}_w1_weight"].T + p[f"layers_{i}_w1_bias"])
        h = h + inner @ p[f"layers_{i}_w2_weight"].T + p[f"layers_{i}_w2_bias"]
    h = ln(h, f"layers_{blocks + 1}")
    return (h @ p[f"layers_{blocks + 2}_weight"].T + p[f"layers_{blocks + 2}_bias"]).squeeze(-1)


@pytest.mark.parametrize("network, hand", [("layernorm", _layernorm_q), ("simba", _simba_q)])
def test_critics_against_float64_hand_computation(network, hand):
    torch.manual_seed(0)
    q = ContinuousTwinQ(OBS, ACT, (16, 16), member=critic_member(OBS + ACT, 1, (16, 16), network))
    obs, action = _batch(9)[:2]
    got = q(obs, action)
    x = torch.cat([obs, action], -1).double()
    want = torch.stack([hand(_params(q, j), x) for j in range(2)])
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(got[0], got[1])  # two independently initialised critics


def test_simba_initialisation_and_widths():
    torch.manual_seed(1)
    net = critic_member(OBS + ACT, 1, (64, 64), "simba")()
    block = net.layers[1]
    assert block.w1.weight.shape == (256, 64) and torch.all(block.w1.bias == 0)  # 4x inverted bottleneck
    assert abs(block.w1.weight.std().item() - (2 / 64) ** 0.5) < 0.02  # He normal
    w = net.layers[0].weight  # orthogonal embedding: orthonormal columns (7 inputs -> 64)
    torch.testing.assert_close(w.T @ w, torch.eye(OBS + ACT), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="equal"):
        critic_member(OBS + ACT, 1, (64, 32), "simba")
    with pytest.raises(ValueError, match="equal critic widths"):
        LearnerConfig(critic_network="simba", hidden_sizes=(64, 32))
    with pytest.raises(ValueError, match="critic_network"):
        LearnerConfig(critic_network="resnet")


@pytest.mark.parametrize("agent", ["sac", "crossq"])
@pytest.mark.parametrize("critic_network", ["layernorm", "simba"])
def test_learners_build_and_learn_with_normalized_critics(agent, critic_network):
    """Each combination trains: the critic loss falls on a fixed batch (gamma = 0: the target is the reward)."""
    cfg = dataclasses.replace(LearnerConfig().with_agent(agent), hidden_sizes=(32, 32), critic_hidden_sizes=(64, 64),
                              critic_network=critic_network, update="eager", gamma=0.0, critic_lr=3e-3, seed=2)
    learner = make_learner(OBS, ACT, cfg)
    norms = [m for m in learner.critic._template.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert bool(norms) == (agent == "sac" or critic_network == "layernorm")  # CrossQ's simba uses batch renorm
    batch = _batch(64, seed=3)
    losses = []
    for _ in range(40):
        learner.update(batch)
        losses.append(learner.metrics()["critic_loss"])
    assert sum(losses[-5:]) < 0.5 * sum(losses[:5])


def test_discrete_sac_takes_the_critic_options():
    cfg = LearnerConfig(hidden_sizes=(16, 16), critic_network="layernorm", obs_norm=True, update="eager")
    learner = make_learner(OBS, ActionSpec(True, 3), cfg)
    learner.update(_batch(8, discrete=True))
    assert learner.obs_norm is not None and float(learner.obs_norm.count) == 8
    assert learner.critic(torch.randn(4, OBS)).shape == (2, 4, 3)


def test_observation_statistics_follow_every_batch_and_feed_act():
    cfg = LearnerConfig(hidden_sizes=(16, 16), update="eager", obs_norm=True, seed=4)
    learner = make_learner(OBS, ACT, cfg)
    assert LearnerConfig(critic_network="simba").uses_obs_norm and not LearnerConfig().uses_obs_norm
    batches = [_batch(8, seed=s) for s in range(5)]
    for b in batches:
        learner.update(b)
    seen = torch.cat([b[0] for b in batches]).double()
    torch.testing.assert_close(learner.obs_norm.mean, seen.mean(0), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(learner.obs_norm.var, seen.var(0, correction=0), rtol=1e-12, atol=1e-12)
    obs = torch.randn(3, OBS) * 3 + 2
    normalized = ((obs.double() - seen.mean(0)) / torch.sqrt(seen.var(0, correction=0) + 1e-8)).float()
    mean, _ = learner.actor(normalized)
    torch.testing.assert_close(learner.act(obs, deterministic=True), torch.tanh(mean).detach())


def test_observation_normalized_update_sees_normalized_batches():
    """The update trains on normalized observations: the same learner fed pre-normalized batches with obs_norm
    off (and the same statistics) makes the same step."""
    cfg = LearnerConfig(hidden_sizes=(16, 16), update="eager", seed=5)
    with_norm = make_learner(OBS, ACT, dataclasses.replace(cfg, obs_norm=True))
    plain = make_learner(OBS, ACT, dataclasses.replace(cfg, obs_norm=False))
    obs, action, reward, next_obs, terminated = _batch(16, seed=6)
    with_norm.update((obs, action, reward, next_obs, terminated))
    norm = with_norm.obs_norm
    plain.update((norm(obs), action, reward, norm(next_obs), terminated))
    for a, b in zip(with_norm.actor_params + with_norm.critic_params, plain.actor_params + plain.critic_params):
        assert torch.equal(a, b)


def test_observation_statistics_are_saved_restored_and_checked():
    cfg = LearnerConfig(hidden_sizes=(16, 16), update="eager", obs_norm=True, seed=7)
    a = make_learner(OBS, ACT, cfg)
    for s in range(3):
        a.update(_batch(8, seed=s))
    state = saved_and_loaded(a.state_dict())
    assert set(state["obs_norm"]) == {"mean", "var", "count"}
    b = make_learner(OBS, ACT, dataclasses.replace(cfg, seed=8))
    b.load_state_dict(state)
    for s in range(3, 6):
        a.update(_batch(8, seed=s))
        b.update(_batch(8, seed=s))
    assert all(torch.equal(x, y) for x, y in zip(a.obs_norm.buffers(), b.obs_norm.buffers()))
    obs = torch.randn(4, OBS)
    assert torch.equal(a.act(obs), b.act(obs))
    with pytest.raises(ValueError, match="observation normalization"):
        make_learner(OBS, ACT, dataclasses.replace(cfg, obs_norm=False)).load_state_dict(a.state_dict())


def test_sac_with_normalized_critic_and_obs_norm_compiles_to_one_graph():
    """aot_eager (Dynamo + AOTAutograd): one graph, identical to eager. It also guards the 0-dim float64 buffer
    bug worked around in RunningObsNorm (torch.compile dropped in-place writes to such a buffer)."""
    cfg = LearnerConfig(hidden_sizes=(16, 16), critic_network="simba", update="eager", seed=9)
    eager, traced = make_learner(OBS, ACT, cfg), trace_with_aot_eager(make_learner(OBS, ACT, cfg))
    batches = [_batch(8, seed=s) for s in range(3)]
    assert graphs_made_stepping(eager, traced, batches) == 1
    assert float(traced.obs_norm.count) == 24
    tensors = lambda learner: [*learner.critic_params, *learner.obs_norm.buffers()]  # noqa: E731
    for x, y in zip(tensors(eager), tensors(traced)):
        torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-7)


def test_default_sac_networks_are_unchanged():
    """The plain SAC critic keeps EnsembleQ's own MLP (no buffers, the same parameter names) and no obs norm."""
    learner = make_learner(OBS, ACT, LearnerConfig(hidden_sizes=(16, 16), update="eager"))
    assert learner.obs_norm is None and list(learner.critic.buffers()) == []
    assert list(learner.critic.state_dict()) == ["0_weight", "0_bias", "2_weight", "2_bias", "4_weight", "4_bias"]
    assert "obs_norm" not in learner.state_dict()
