"""FlashSAC learner: one update against a float64 recomputation written from the reference's description (actor and
temperature first, target distribution of the smaller-Q member, C51 projection by a loop over atoms, Adam steps
by torch.optim.Adam, weight projection, Polyak), the cosine learning rates against torch.optim's LambdaLR, noise
repetition, reward scaling inside the update, one compiled graph, exact state round trips. Its learning run and
resume through the trainer: tests/training/test_flashsac_training.py. The networks: test_flash_networks.py.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch

from fastsac.agents import ActionSpec, FlashSACLearner, LearnerConfig, make_learner
from fastsac.agents.flashsac import gaussian_target_entropy
from fastsac.agents.optim import CosineLR, ForeachAdam
from fastsac.agents.runners import VERIFY_RTOL

from .helpers import graphs_made_stepping, saved_and_loaded, trace_with_aot_eager
from .test_crossq import _assert_same, _next_noise, _state_tensors

OBS, ACT = 5, 2


def small_cfg(**overrides) -> LearnerConfig:
    """FlashSAC's defaults with small networks and few atoms."""
    values = dict(hidden_sizes=(16,), critic_hidden_sizes=(32, 32), critic_bins=11, update="eager", seed=1)
    return dataclasses.replace(LearnerConfig().with_agent("flashsac"), **{**values, **overrides})


def _batch(batch_size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch_size, OBS, generator=g) * 2 + 1, torch.rand(batch_size, ACT, generator=g) * 2 - 1,
            torch.randn(batch_size, generator=g) * 3, torch.randn(batch_size, OBS, generator=g) * 2 + 1,
            torch.arange(batch_size) % 3 == 1)  # fmt: skip


def _observe(learner, steps=30, num_envs=1, seed=0):
    """Feed the reward scale an episode stream (so it is not at its starting value)."""
    g = torch.Generator().manual_seed(seed)
    for t in range(steps):
        reward = torch.randn(num_envs, generator=g) * 4 + 1
        done = torch.full((num_envs,), t % 11 == 10)
        learner.observe_step(reward, done, torch.zeros(num_envs, dtype=torch.bool))


def test_defaults_are_flashsacs():
    cfg = LearnerConfig().with_agent("flashsac")
    assert (cfg.actor_lr, cfg.critic_lr, cfg.alpha_lr, cfg.policy_delay, cfg.tau, cfg.initial_alpha) == (
        3e-4, 3e-4, 3e-4, 2, 0.01, 0.01)
    assert (cfg.hidden_sizes, cfg.critic_hidden_sizes, cfg.critic_bins, cfg.critic_v_min, cfg.critic_v_max) == (
        (128, 128), (256, 256), 101, -5.0, 5.0)
    assert (cfg.log_std_min, cfg.log_std_max, cfg.noise_repeat, cfg.reward_norm) == (-10.0, 2.0, 16, True)
    learner = make_learner(17, 6, dataclasses.replace(cfg, update="eager"))
    assert isinstance(learner, FlashSACLearner)
    assert learner.entropy.target == pytest.approx(0.5 * 6 * math.log(2 * math.pi * math.e * 0.15**2))
    assert learner.alpha.item() == pytest.approx(0.01)
    assert cfg.with_agent("sac") == LearnerConfig()  # switching back restores SAC's values


@pytest.mark.parametrize("bad, match", [
    (dict(agent="sac", critic_bins=51), "critic is 'scalar'"),
    (dict(agent="crossq", critic_v_min=-10.0, critic_v_max=10.0), "critic_v_min, critic_v_max set the categorical"),
    (dict(agent="crossq", lr_decay="cosine"), "implemented by agent flashsac only"),
    (dict(agent="sac", noise_repeat=4, lr_decay="cosine"), "noise_repeat, lr_decay are implemented"),
    (dict(agent="flashsac", critic="scalar"), "categorical critic"),
    (dict(agent="flashsac", critic_network="simba"), "builds its own"),
    (dict(agent="flashsac", hidden_sizes=(64, 32)), "equal hidden_sizes"),
    (dict(critic_bins=1), "critic_bins must be >= 2"),
    (dict(critic_v_min=1.0, critic_v_max=1.0), "critic_v_min < critic_v_max"),
    (dict(lr_end_ratio=0.0), "lr_end_ratio"),
])
def test_bad_configs_are_clear_errors(bad, match):
    base = LearnerConfig().with_agent(bad.get("agent", "flashsac"))
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(base, **bad)


def test_refuses_discrete_actions():
    with pytest.raises(ValueError, match="continuous actions.*--agent sac"):
        make_learner(OBS, ActionSpec(True, 4), small_cfg())


def test_cosine_lr_matches_lambda_lr_over_the_optimizers_steps():
    """ForeachAdam with CosineLR takes the steps torch.optim.Adam takes under LambdaLR with FlashSAC's lambda
    (optax's cosine decay: peak to peak * ratio over N steps, then flat), in float64."""
    peak, ratio, steps = 1e-2, 0.5, 7

    def lam(k):  # written from optax.cosine_decay_schedule, as a factor of the peak
        k = min(k, steps)
        return ratio + (1 - ratio) * 0.5 * (1 + math.cos(math.pi * k / steps))

    g = torch.Generator().manual_seed(0)
    ours = torch.randn(4, 3, dtype=torch.float64, generator=g)
    theirs = ours.clone().requires_grad_(True)
    opt = ForeachAdam([ours], lr=peak, schedule=CosineLR(peak, ratio, steps))
    ref = torch.optim.Adam([theirs], lr=peak)
    sched = torch.optim.lr_scheduler.LambdaLR(ref, lam)
    for _ in range(steps + 3):
        # the learning rate of the coming step, in float64, against LambdaLR's
        assert opt.schedule(opt.step_count).item() == pytest.approx(sched.get_last_lr()[0], rel=1e-14)
        grad = torch.randn(4, 3, dtype=torch.float64, generator=g)
        opt.step([grad])
        theirs.grad = grad.clone()
        ref.step()
        sched.step()
        # ForeachAdam keeps its step factors in float32 (fastsac/agents/optim.py), so steps of ~1e-2 agree to
        # float32's rounding of the factor (~6e-8 relative; the measured worst after 10 steps: 2.3e-9 of a value)
        torch.testing.assert_close(ours, theirs.detach(), rtol=1e-7, atol=1e-9)
    assert CosineLR(peak, ratio, steps)(torch.tensor(100.0)).item() == pytest.approx(peak * ratio)


# --------------------------------------------------------------------------------------- the float64 recomputation
def _project_c51(probs, reward, not_done, entropy_term, gamma, support):
    """C51's projection, one atom at a time (float64)."""
    v_min, v_max, k_atoms = support[0].item(), support[-1].item(), support.numel()
    dz = (v_max - v_min) / (k_atoms - 1)
    out = torch.zeros_like(probs)
    for b in range(probs.shape[0]):
        for k in range(k_atoms):
            t = reward[b] + gamma * not_done[b] * (support[k] - entropy_term[b])
            pos = (min(max(t.item(), v_min), v_max) - v_min) / dz
            lo, hi = math.floor(pos), math.ceil(pos)
            if lo == hi:
                out[b, lo] += probs[b, k]
            else:
                out[b, lo] += probs[b, k] * (hi - pos)
                out[b, hi] += probs[b, k] * (pos - lo)
    return out


def _squashed(mean, raw_log_std, noise, lo, hi):
    """tanh(mean + std noise) and its log-prob by torch.distributions (an independent check)."""
    log_std = lo + 0.5 * (hi - lo) * (torch.tanh(raw_log_std) + 1)
    dist = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean, log_std.exp()), [torch.distributions.TanhTransform()])
    u = mean + log_std.exp() * noise
    action = torch.tanh(u)
    base = torch.distributions.Normal(mean, log_std.exp()).log_prob(u).sum(-1)
    log_det = (2 * (math.log(2) - u - torch.nn.functional.softplus(-2 * u))).sum(-1)
    del dist  # the transform's log_prob inverts tanh (inexact near saturation); u is known, so use it directly
    return action, base - log_det


def _reference_update(learner, batch, noise):
    """One full update (the actor's included) of ``learner`` recomputed in float64 from copies of its state."""
    cfg = learner.cfg
    actor, critic = copy.deepcopy(learner.actor).double(), copy.deepcopy(learner.critic).double()
    target = copy.deepcopy(learner.target_critic).double()
    log_alpha = learner.entropy.log_alpha.detach().double().clone().requires_grad_(True)
    obs, action, reward, next_obs, terminated = (t.double() for t in batch)
    lo, hi = cfg.log_std_min, cfg.log_std_max
    noise = noise.double()
    scaled = learner.reward_scale(batch[2]).double()
    adam = lambda params, lr: torch.optim.Adam(params, lr=lr, betas=(cfg.adam_beta1, 0.999))  # noqa: E731

    # actor and temperature
    b = obs.shape[0]
    mean, raw = actor(torch.cat([obs, next_obs]), training=True)
    a, log_prob = _squashed(mean[:b], raw[:b], noise[1], lo, hi)
    q = critic.q_values(critic(obs, a, training=False)).amin(dim=0)
    actor_loss = (log_alpha.detach().exp() * log_prob - q).mean()
    entropy = -log_prob.detach().mean()
    alpha_loss = log_alpha.exp() * (entropy - learner.entropy.target)
    actor_params = list(actor.parameters())
    grads = actor_grads = torch.autograd.grad(actor_loss, actor_params)
    (alpha_grad,) = torch.autograd.grad(alpha_loss, [log_alpha])
    opt = adam(actor_params, cfg.actor_lr)
    for p, g in zip(actor_params, grads):
        p.grad = g
    opt.step()
    opt_alpha = adam([log_alpha], cfg.alpha_lr)
    log_alpha.grad = alpha_grad
    opt_alpha.step()
    with torch.no_grad():
        actor.project_()
    # target distribution and critic
    with torch.no_grad():
        mean, raw = actor(next_obs, training=False)
        next_a, next_log_prob = _squashed(mean, raw, noise[0], lo, hi)
        t_logits = target(torch.cat([obs, next_obs]), torch.cat([action, next_a]), training=True)[:, b:]
        t_q = target.q_values(t_logits)
        chosen = torch.where((t_q[0] <= t_q[1])[:, None], t_logits[0], t_logits[1])
        m = _project_c51(torch.softmax(chosen, -1), scaled, 1.0 - terminated.double(),
                         log_alpha.exp() * next_log_prob, cfg.gamma, critic.support)
    logits = critic(torch.cat([obs, next_obs]), torch.cat([action, next_a]), training=True)[:, :b]
    critic_loss = -(m * torch.log_softmax(logits, -1)).sum(-1).mean()
    critic_params = list(critic.parameters())
    grads = critic_grads = torch.autograd.grad(critic_loss, critic_params)
    opt = adam(critic_params, cfg.critic_lr)
    for p, g in zip(critic_params, grads):
        p.grad = g
    opt.step()
    with torch.no_grad():
        critic.project_()
        for tp, p in zip(target.parameters(), critic.parameters()):
            tp.lerp_(p, cfg.tau)
    return dict(actor=actor, critic=critic, target=target, log_alpha=log_alpha.detach(), critic_loss=critic_loss.item(),
                actor_grads=actor_grads, critic_grads=critic_grads)


def test_one_update_matches_a_float64_recomputation():
    learner = make_learner(OBS, ACT, small_cfg(initial_alpha=0.2))
    _observe(learner)
    batch = _batch(16)
    noise = _next_noise(learner, 16)
    ref = _reference_update(learner, batch, noise)
    learner.update(batch)  # the first update: actor and temperature too
    # The gradients, through Adam's first moments (exp_avg = (1 - beta1) g after one step)
    beta1 = learner.cfg.adam_beta1
    for what, opt in (("actor", learner.actor_optim), ("critic", learner.critic_optim)):
        for i, (m, g) in enumerate(zip(opt.exp_avg, ref[f"{what}_grads"])):
            scale = g.abs().max().item()
            torch.testing.assert_close(m.double() / (1 - beta1), g, rtol=1e-4, atol=1e-5 * scale,
                                       msg=lambda msg, w=what, i=i: f"{w} gradient {i}: {msg}")
    # The states after the steps: Adam's first step is lr * g / (|g| + eps), so a gradient component near zero
    # could flip its step's sign between float32 and float64; none does at this seed.
    for name in ("actor", "critic", "target"):
        ours = getattr(learner, "target_critic" if name == "target" else name)
        for (key, p), q in zip(ours.state_dict().items(), ref[name].state_dict().values()):
            torch.testing.assert_close(p.double(), q, rtol=1e-4, atol=1e-6, msg=lambda m, k=key: f"{name}.{k}: {m}")
    torch.testing.assert_close(learner.entropy.log_alpha.detach().double(), ref["log_alpha"], rtol=1e-6, atol=1e-9)
    assert learner.metrics()["critic_loss"] == pytest.approx(ref["critic_loss"], rel=1e-5)


def test_reward_scale_reaches_the_update():
    """The same batch with another observed return stream gives another critic loss; without reward_norm no scale."""
    a, b = make_learner(OBS, ACT, small_cfg()), make_learner(OBS, ACT, small_cfg())
    _observe(a, seed=0)
    _observe(b, seed=1)
    assert not torch.equal(a.reward_scale(torch.ones(3)), b.reward_scale(torch.ones(3)))
    a.update(_batch(16))
    b.update(_batch(16))
    assert a.metrics()["critic_loss"] != b.metrics()["critic_loss"]
    plain = make_learner(OBS, ACT, small_cfg(reward_norm=False))
    assert plain.reward_scale is None
    plain.observe_step(torch.ones(1), torch.zeros(1, dtype=torch.bool), torch.zeros(1, dtype=torch.bool))


# ------------------------------------------------------------------------------------------------ noise repetition
def test_noise_is_held_for_zeta_lengths_per_env():
    learner = make_learner(OBS, ACT, small_cfg(noise_repeat=16))
    learner.attach_envs(3)
    obs = torch.randn(3, OBS)
    steps = 400
    noises = []
    for _ in range(steps):
        learner.act(obs)
        noises.append(learner.held_noise.clone())
    noises = torch.stack(noises)  # (steps, envs, act)
    lengths = []
    for env in range(3):
        run = 1
        for t in range(1, steps):
            if torch.equal(noises[t, env], noises[t - 1, env]):
                run += 1
            else:
                lengths.append(run)
                run = 1
    assert 1 <= min(lengths) and max(lengths) <= 16
    # Zeta(2) truncated at 16: P(1) = 1 / H_16^(2) ~ 0.62 (runs of one step dominate)
    assert 0.5 < lengths.count(1) / len(lengths) < 0.75
    # the actions of held noise repeat for the same observation; envs hold independently
    assert not all(torch.equal(noises[t, 0], noises[t - 1, 0]) == torch.equal(noises[t, 1], noises[t - 1, 1])
                   for t in range(1, steps))


def test_deterministic_acting_leaves_the_held_noise():
    learner = make_learner(OBS, ACT, small_cfg())
    learner.act(torch.randn(1, OBS))
    held, left = learner.held_noise.clone(), learner.repeat_left.clone()
    learner.act(torch.randn(1, OBS), deterministic=True)
    assert torch.equal(held, learner.held_noise) and torch.equal(left, learner.repeat_left)


def test_noise_repeat_one_is_fresh_noise():
    learner = make_learner(OBS, ACT, small_cfg(noise_repeat=1))
    assert learner.held_noise is None and learner._act_noise_shape(4) == (4, ACT)


# ------------------------------------------------------------------------------------------ compile and state
def test_policy_delay_variants_trace_as_single_graphs():
    """Both variants trace as single graphs (dynamo + AOTAutograd), acting inside the update included, and each
    equals the eager update from the same state."""
    cfg = small_cfg()
    eager, traced = make_learner(OBS, ACT, cfg), trace_with_aot_eager(make_learner(OBS, ACT, cfg))
    for learner in (eager, traced):
        _observe(learner)
        learner.act(torch.randn(1, OBS))
    stats = torch._dynamo.utils.counters["stats"]
    before = stats["unique_graphs"]
    for step in range(4):
        obs = torch.randn(1, OBS, generator=torch.Generator().manual_seed(step))
        a = eager.update(_batch(8, seed=step), act_obs=obs)
        b = traced.update(_batch(8, seed=step), act_obs=obs)
        _assert_same(eager, traced, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        traced.load_state_dict(eager.state_dict())
    assert stats["unique_graphs"] - before == 2
    assert traced.fallbacks == [] and traced.runner.checked.kind == "compile"
    assert all(d < VERIFY_RTOL / 10 for d in traced.runner.checked.first_call_differences.values())


@pytest.mark.slow
def test_compiled_update_matches_eager():
    """The real inductor compile of the whole update (both variants)."""
    cfg = small_cfg()
    eager = make_learner(OBS, ACT, cfg)
    compiled = make_learner(OBS, ACT, dataclasses.replace(cfg, update="compile"))
    for learner in (eager, compiled):
        _observe(learner)
    assert graphs_made_stepping(eager, compiled, [_batch(32, seed=s) for s in range(4)]) == 2
    assert not compiled.fallbacks and compiled.runner.kind == "compile"
    _assert_same(eager, compiled, rtol=1e-4, atol=1e-5)


def test_state_dict_round_trip_continues_exactly():
    cfg = small_cfg()
    a = make_learner(OBS, ACT, cfg)
    a.attach_envs(2)
    _observe(a, num_envs=2)
    obs = torch.randn(2, OBS)
    for step in range(3):  # stop between actor updates, with noise held
        a.update(_batch(8, seed=step), act_obs=obs)
    b = make_learner(OBS, ACT, dataclasses.replace(cfg, seed=99))
    b.attach_envs(2)
    b.load_state_dict(saved_and_loaded(a.state_dict()))
    _assert_same(a, b)
    for step in range(3, 8):
        batch = _batch(8, seed=step)
        a.observe_step(batch[2][:2], batch[4][:2], torch.zeros(2, dtype=torch.bool))
        b.observe_step(batch[2][:2], batch[4][:2], torch.zeros(2, dtype=torch.bool))
        assert torch.equal(a.update(batch, act_obs=obs), b.update(batch, act_obs=obs))
    _assert_same(a, b)
    assert a.metrics() == b.metrics()
    other = make_learner(OBS, ACT, small_cfg(reward_norm=False))
    with pytest.raises(ValueError, match="reward scaling"):
        other.load_state_dict(a.state_dict())


def test_snapshot_restore_covers_what_an_update_writes():
    """_mutable_tensors covers every tensor an update writes: the target critics' batch-norm statistics, the
    held noise and its counts included (what a CUDA-graph capture restores after its warm-up runs)."""
    from fastsac.agents.runners import restore, snapshot

    learner = make_learner(OBS, ACT, small_cfg())
    _observe(learner)
    learner.act(torch.randn(1, OBS))
    before = _state_tensors(learner)
    saved = snapshot(learner._mutable_tensors())
    for step in range(3):
        learner._update(*_batch(8, seed=step), learner._draw_noise(8), step % 2 == 0, torch.randn(1, OBS),
                        learner._draw_act_noise(1))
    generator = learner.generator.get_state()
    restore(learner._mutable_tensors(), saved)
    learner.generator.set_state(generator)
    after = _state_tensors(learner)
    assert [k for k in before if k != ".generator" and not torch.equal(before[k], after[k])] == []


def test_gaussian_target_entropy():
    assert gaussian_target_entropy(1, 1.0) == pytest.approx(0.5 * math.log(2 * math.pi * math.e))
    d = torch.distributions.Normal(torch.zeros(6), torch.full((6,), 0.15)).entropy().sum().item()
    assert gaussian_target_entropy(6, 0.15) == pytest.approx(d)


@pytest.mark.gpu
@pytest.mark.parametrize("update", ["eager", "compile"])
def test_cuda_graph_update_matches_eager(update):
    """On CUDA: the captured (and optionally compiled) update, acting with held noise inside it, equals eager
    updates: batch-norm statistics (online and target), weight projections, the reward scale and the schedules
    run inside both policy-delay graphs."""
    cfg = small_cfg(critic_hidden_sizes=(64, 64))
    eager = make_learner(OBS, ACT, dataclasses.replace(cfg, update="eager", cuda_graph=False), "cuda")
    graphed = make_learner(OBS, ACT, dataclasses.replace(cfg, update=update, cuda_graph=True), "cuda")
    assert graphed.runner.graphed
    obs = torch.randn(1, OBS, device="cuda")
    for learner in (eager, graphed):
        _observe(learner)
        learner.act(obs)
    for step in range(7):
        batch = tuple(t.cuda() for t in _batch(64, seed=step))
        a, b = eager.update(batch, act_obs=obs), graphed.update(batch, act_obs=obs)
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert graphed.runner.graph.num_graphs == 2  # with and without the actor step
    _assert_same(eager, graphed, rtol=1e-4, atol=1e-5)
    assert graphed.metrics() == pytest.approx(eager.metrics(), rel=1e-4, abs=1e-6)
