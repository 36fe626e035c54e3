"""The categorical critic as an option of SAC and CrossQ (``critic='categorical'``) and reward normalization for
any agent (``reward_norm``): one update against a float64 recomputation (an independent C51 projection, gradients
through Adam's first moments), one graph when traced, exact resume, and the clear errors around them."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from fastsac.agents import ActionSpec, CrossQLearner, LearnerConfig, SACLearner, make_learner
from fastsac.agents.runners import choose_update
from tests.agents.helpers import graphs_made_stepping, saved_and_loaded, trace_with_aot_eager
from tests.agents.test_flashsac import _observe, _project_c51
from tests.agents.test_learner import _noise_of_next_update, _squashed64

OBS, ACT = 5, 2


def categorical_cfg(agent: str, **overrides) -> LearnerConfig:
    """Small networks, a categorical critic of 11 atoms on [-4, 4]; CrossQ with a warm-up the tests cross."""
    base = LearnerConfig().with_agent(agent)
    values = dict(hidden_sizes=(16, 16), critic_hidden_sizes=(24, 24), update="eager", seed=3, critic="categorical",
                  critic_bins=11, critic_v_min=-4.0, critic_v_max=4.0, initial_alpha=0.3)
    if agent == "crossq":
        values["brn_warmup_steps"] = 3
    return dataclasses.replace(base, **{**values, **overrides})


def _batch(batch_size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch_size, OBS, generator=g), torch.rand(batch_size, ACT, generator=g) * 2 - 1,
            torch.randn(batch_size, generator=g) * 2, torch.randn(batch_size, OBS, generator=g),
            torch.arange(batch_size) % 3 == 1)  # fmt: skip


def _expected(logits, support):
    return (torch.softmax(logits, -1) * support).sum(-1)


def _reference_update(learner, batch, noise):
    """One update of a SAC or CrossQ learner with a categorical critic (actor step included), recomputed in float64
    on copies of its modules: the C51 target by :func:`_project_c51` (an atom-by-atom loop), the member with the
    smaller expected Q per sample, cross-entropy averaged over samples and summed over members. Returns the
    critic's and the actor's gradients and the losses."""
    cfg, crossq = learner.cfg, isinstance(learner, CrossQLearner)
    actor, critic = copy.deepcopy(learner.actor).double(), copy.deepcopy(learner.critic).double()
    target = critic if crossq else copy.deepcopy(learner.target_critic).double()
    support = torch.linspace(cfg.critic_v_min, cfg.critic_v_max, cfg.critic_bins, dtype=torch.float64)
    obs, action, reward, next_obs, terminated = (t.double() for t in batch)
    if learner.reward_scale is not None:
        reward = learner.reward_scale(batch[2]).double()
    alpha, bounds, noise = learner.alpha.double(), (cfg.log_std_min, cfg.log_std_max), noise.double()
    b = obs.shape[0]
    eval_mode = {"training": False} if crossq else {}

    with torch.no_grad():
        next_action, next_log_prob = _squashed64(*actor(next_obs, **eval_mode), noise[0], bounds)
    if crossq:  # one joint pass in training mode; the target is the detached (s', a') half
        joint = critic(torch.cat([obs, next_obs]), torch.cat([action, next_action]), training=True)
        logits, next_logits = joint[:, :b], joint[:, b:].detach()
    else:
        logits = critic(obs, action)
        with torch.no_grad():
            next_logits = target(next_obs, next_action)
    next_q = _expected(next_logits, support)
    chosen = torch.where((next_q[0] <= next_q[1])[:, None], next_logits[0], next_logits[1])
    m = _project_c51(torch.softmax(chosen, -1), reward, 1.0 - terminated, alpha * next_log_prob, cfg.gamma, support)
    critic_loss = -(m * torch.log_softmax(logits, -1)).sum(-1).mean(1).sum()
    critic_params = list(critic.parameters())
    critic_grads = torch.autograd.grad(critic_loss, critic_params)
    opt = torch.optim.Adam(critic_params, lr=cfg.critic_lr, betas=(cfg.adam_beta1, 0.999))
    for p, g in zip(critic_params, critic_grads):
        p.grad = g
    opt.step()

    # the actor's step sees the stepped critics (evaluation mode in CrossQ)
    mean, raw = actor(obs, training=True) if crossq else actor(obs)
    pi_action, log_prob = _squashed64(mean, raw, noise[1], bounds)
    q_pi = _expected(critic(obs, pi_action, **eval_mode), support).amin(0)
    actor_loss = (alpha * log_prob - q_pi).mean()
    actor_grads = torch.autograd.grad(actor_loss, list(actor.parameters()))
    return dict(critic_grads=critic_grads, actor_grads=actor_grads, critic_loss=critic_loss.item(),
                actor_loss=actor_loss.item(), q_mean=_expected(logits, support).mean().item())


@pytest.mark.parametrize("reward_norm", [False, True])
@pytest.mark.parametrize("agent", ["sac", "crossq"])
def test_one_update_matches_a_float64_recomputation(agent, reward_norm):
    learner = make_learner(OBS, ACT, categorical_cfg(agent, reward_norm=reward_norm))
    assert learner.critic(torch.randn(3, OBS), torch.zeros(3, ACT)).shape == (2, 3, 11)
    if reward_norm:
        _observe(learner)
        assert learner.reward_scale(torch.ones(1)).item() != pytest.approx(1.0)
    batch = _batch(16)
    ref = _reference_update(learner, batch, _noise_of_next_update(learner, 16))
    learner.update(batch)  # the first update: the actor's step too
    beta1 = learner.cfg.adam_beta1
    for what, opt in (("actor", learner.actor_optim), ("critic", learner.critic_optim)):
        grads = ref[f"{what}_grads"]
        assert len(opt.exp_avg) == len(grads)
        for i, (m, g) in enumerate(zip(opt.exp_avg, grads)):  # exp_avg = (1 - beta1) g after one step
            torch.testing.assert_close(m.double() / (1 - beta1), g, rtol=1e-4, atol=1e-5 * g.abs().max().item(),
                                       msg=lambda msg, w=what, i=i: f"{w} gradient {i}: {msg}")
    metrics = learner.metrics()
    for key in ("critic_loss", "actor_loss", "q_mean"):
        assert metrics[key] == pytest.approx(ref[key], rel=1e-5, abs=1e-6), key


def test_reward_norm_divides_the_scalar_target_too():
    """Scalar SAC under reward_norm: the target is r / scale + ..., so the critic loss is that of the scaled batch."""
    cfg = LearnerConfig(hidden_sizes=(16, 16), update="eager", seed=2, reward_norm=True)
    scaled, plain = SACLearner(OBS, ACT, cfg), SACLearner(OBS, ACT, dataclasses.replace(cfg, reward_norm=False))
    _observe(scaled)
    obs, action, reward, next_obs, terminated = _batch(16)
    want = plain.critic_target(scaled.reward_scale(reward), terminated, next_obs, torch.zeros(16, ACT))
    got = scaled.critic_target(reward, terminated, next_obs, torch.zeros(16, ACT))
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert plain.reward_scale is None and not plain.observes_steps and scaled.observes_steps
    # discrete SAC too ("any agent"): its exact soft-value target sees the scaled reward
    d_cfg = LearnerConfig(hidden_sizes=(16, 16), update="eager", seed=2, reward_norm=True)
    d_scaled = make_learner(OBS, ActionSpec(True, 3), d_cfg)
    d_plain = make_learner(OBS, ActionSpec(True, 3), dataclasses.replace(d_cfg, reward_norm=False))
    _observe(d_scaled)
    want = d_plain.critic_target(d_scaled.reward_scale(reward), terminated, next_obs)
    torch.testing.assert_close(d_scaled.critic_target(reward, terminated, next_obs), want, rtol=0, atol=0)
    assert not torch.equal(want, d_plain.critic_target(reward, terminated, next_obs))


@pytest.mark.parametrize("agent", ["sac", "crossq"])
def test_traced_update_is_one_graph_per_variant_and_matches_eager(agent):
    cfg = categorical_cfg(agent, policy_delay=2, reward_norm=True)
    eager = make_learner(OBS, ACT, cfg)
    traced = trace_with_aot_eager(make_learner(OBS, ACT, cfg))
    for learner in (eager, traced):
        _observe(learner)
    assert graphs_made_stepping(eager, traced, [_batch(8, seed=s) for s in range(4)]) == 2  # with/without actor
    for a, b in zip(eager.state_dict()["critic"].values(), traced.state_dict()["critic"].values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert eager.metrics() == pytest.approx(traced.metrics(), rel=1e-5)


@pytest.mark.parametrize("agent", ["sac", "crossq"])
def test_state_dict_round_trip_continues_exactly(agent):
    """The reward scale (per-env running returns and return statistics) is in the state; resuming continues
    bit-identically; a learner with the other reward_norm setting refuses the state."""
    cfg = categorical_cfg(agent, reward_norm=True, policy_delay=2)
    a = make_learner(OBS, ACT, cfg)
    a.attach_envs(3)
    _observe(a, num_envs=3)
    for step in range(3):
        a.update(_batch(8, seed=step))
    state = saved_and_loaded(a.state_dict())
    assert set(state["reward_scale"]) == {"returns", "return_max", "mean", "var", "count"}
    assert state["reward_scale"]["returns"].shape == (3,)

    b = make_learner(OBS, ACT, dataclasses.replace(cfg, seed=99))
    b.attach_envs(3)
    b.load_state_dict(state)
    for step in range(3, 6):
        _observe(a, steps=4, num_envs=3, seed=step)
        _observe(b, steps=4, num_envs=3, seed=step)
        a.update(_batch(8, seed=step))
        b.update(_batch(8, seed=step))
    for (key, x), y in zip(a.state_dict()["critic"].items(), b.state_dict()["critic"].values()):
        assert torch.equal(x, y), key
    for x, y in zip(a.reward_scale.state_dict().values(), b.reward_scale.state_dict().values()):
        assert torch.equal(x, y)
    assert a.metrics() == b.metrics()

    off = make_learner(OBS, ACT, dataclasses.replace(cfg, reward_norm=False))
    with pytest.raises(ValueError, match="reward scaling"):
        off.load_state_dict(state)


def test_categorical_critics_run_on_layernorm_and_simba_members():
    for network in ("layernorm", "simba"):
        learner = make_learner(OBS, ACT, categorical_cfg("sac", critic_network=network))
        assert learner.critic(torch.randn(4, OBS), torch.zeros(4, ACT)).shape == (2, 4, 11)
        learner.update(_batch(8))
        assert torch.isfinite(torch.tensor(list(learner.metrics().values()))).all()


def test_the_native_update_refuses_and_auto_compiles():
    for agent, cls in (("sac", SACLearner), ("crossq", CrossQLearner)):
        cfg = categorical_cfg(agent, update="auto")
        assert "categorical" in cls.native_unsupported(cfg, torch.device("cpu"))
        assert "reward normalization" in cls.native_unsupported(
            categorical_cfg(agent, critic="scalar", critic_bins=101, critic_v_min=-5.0, critic_v_max=5.0,
                            reward_norm=True), torch.device("cpu"))
        choice = choose_update(cls, cfg, torch.device("cpu"))
        assert choice.backend == "compile" and "categorical" in choice.reason


def test_clear_errors():
    with pytest.raises(ValueError, match="continuous actions"):
        make_learner(OBS, ActionSpec(True, 4), LearnerConfig(critic="categorical", update="eager"))
    with pytest.raises(ValueError, match="critic is 'scalar'"):
        LearnerConfig(critic_v_max=10.0)
    learner = make_learner(OBS, ACT, categorical_cfg("sac"))
    _, _, reward, next_obs, terminated = _batch(4)
    with pytest.raises(ValueError, match="scalar critics' target"):
        learner.critic_target(reward, terminated, next_obs, torch.zeros(4, ACT))
    with pytest.raises(ValueError, match="update 'native' cannot run here: the critics are categorical"):
        make_learner(OBS, ACT, categorical_cfg("sac", update="native"))


@pytest.mark.gpu
@pytest.mark.parametrize("agent", ["sac", "crossq"])
def test_cuda_graph_update_matches_eager(agent):
    """On CUDA: the captured and compiled categorical update (reward scale read inside) equals eager updates."""
    cfg = categorical_cfg(agent, policy_delay=2, reward_norm=True, seed=12)
    eager = make_learner(OBS, ACT, dataclasses.replace(cfg, update="eager", cuda_graph=False), "cuda")
    graphed = make_learner(OBS, ACT, dataclasses.replace(cfg, update="compile", cuda_graph=True), "cuda")
    assert graphed.runner.graphed
    for learner in (eager, graphed):
        _observe(learner)
    for step in range(5):
        batch = tuple(t.cuda() for t in _batch(64, seed=step))
        eager.update(batch)
        graphed.update(batch)
    assert graphed.runner.graph.flags == {True, False} and graphed.fallbacks == []
    # Not measured yet (no GPU has run it; scripts/gpu_checks.sh does): the bound of test_learner's capture test.
    for (key, a), b in zip(eager.state_dict()["critic"].items(), graphed.state_dict()["critic"].values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=lambda m, key=key: f"critic.{key}: {m}")
    assert graphed.metrics() == pytest.approx(eager.metrics(), rel=1e-4, abs=1e-6)
