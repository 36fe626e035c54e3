"""The native CPU update (csrc/sac_update_cpu.cpp via fastsac.agents.sac_native): the eager update's numbers,
its gradients against float64 autograd, where it applies, and its loud fallback to torch.compile. The README's
set-up builds the C++ extension, so these tests run wherever the suite does (tests/test_setup.py fails when the
extension is missing)."""

from __future__ import annotations

import copy
import dataclasses
import warnings

import pytest
import torch

from fastsac import ops
from fastsac.agents import ActionSpec, LearnerConfig, SACLearner, make_learner, runners, sac_native
from fastsac.agents.optim import ForeachAdam
from fastsac.fallbacks import FallbackWarning

from .test_learner import ACT, OBS, _all_state, _assert_same_state, _batch

BASE = LearnerConfig(hidden_sizes=(32, 32), seed=7)


def _pair(**changes):
    """An eager SAC learner and a native one, from the same seed (the same networks and noise)."""
    cfg = dataclasses.replace(BASE, **changes)
    native = SACLearner(OBS, ACT, dataclasses.replace(cfg, update="native"))
    assert native.runner.kind == "native"
    return SACLearner(OBS, ACT, dataclasses.replace(cfg, update="eager")), native


@pytest.mark.parametrize("changes", [
    {},
    {"hidden_sizes": (24, 16, 8), "critic_hidden_sizes": (40, 20)},  # three actor layers, other critic widths
    {"policy_delay": 2},  # both variants: with and without the actor's step
    {"fixed_alpha": True, "initial_alpha": 0.3},
    {"gamma": 0.9, "tau": 0.05, "log_std_min": -3.0, "log_std_max": 1.0},
], ids=["default", "widths", "policy_delay", "fixed_alpha", "hyper"])
def test_native_update_matches_the_eager_update(changes):
    eager, native = _pair(**changes)
    for step in range(6):
        batch = _batch(32, seed=step, terminated=torch.arange(32) % 5 == 0)
        act_obs = torch.randn(3, OBS, generator=torch.Generator().manual_seed(50 + step)) if step % 2 else None
        expected, actions = eager.update(batch, act_obs=act_obs), native.update(batch, act_obs=act_obs)
        if act_obs is not None:
            torch.testing.assert_close(actions, expected, rtol=1e-5, atol=1e-6)
    # The same math in float32 with other summation orders. Measured after six updates (these five settings, CI's
    # 2-core x86-64 machine, torch 2.13): state at most 1.2e-7 apart (1 ulp at magnitude 1), metrics 1.5e-7
    # relative; the bounds are 8-10x that.
    assert_native_kept_and_close_to_eager(eager, native)


def assert_native_kept_and_close_to_eager(eager, native, metric_abs: dict[str, float] | None = None):
    """``native`` ran its native update throughout (its first call within a tenth of the check's bound) and ends
    within 1e-6 of ``eager``'s state and 1.5e-6 (relative) of its metrics; ``metric_abs``: absolute bounds of named
    metrics instead of 1e-9."""
    assert native.fallbacks == [] and native.runner.kind == "native"
    assert all(d < runners.VERIFY_RTOL / 10 for d in native.runner.checked.first_call_differences.values())
    _assert_same_state(eager, native, rtol=0, atol=1e-6)
    em, nm = eager.metrics(), native.metrics()
    assert em.keys() == nm.keys()
    for key in em:
        assert nm[key] == pytest.approx(em[key], rel=1.5e-6, abs=(metric_abs or {}).get(key, 1e-9)), key


def _float64_gradients(learner: SACLearner, batch, noise):
    """The critic's gradient, then (after the critic's Adam step, in float64 too) the actor's and log_alpha's, by
    autograd on float64 copies of the learner's networks and the reference op."""
    actor, critic, target = (copy.deepcopy(m).double() for m in (learner.actor, learner.critic, learner.target_critic))
    obs, action, reward, next_obs, terminated = (t.double() for t in batch)
    noise = noise.double()
    lo, hi = learner.log_std_bounds
    log_alpha = learner.entropy.log_alpha.detach().double().requires_grad_(True)
    alpha = log_alpha.detach().exp()
    with torch.no_grad():
        mean, log_std = actor(next_obs)
        next_action, next_log_prob = ops.squashed_gaussian(mean, log_std, noise[0], log_std_bounds=(lo, hi),
                                                           backend="torch")
        next_q = target(next_obs, next_action).amin(0)
        y = reward + learner.cfg.gamma * (1 - terminated) * (next_q - alpha * next_log_prob)
    critic_params = list(critic.parameters())
    critic_loss = (critic(obs, action) - y).square().mean(dim=1).sum()
    critic_grads = torch.autograd.grad(critic_loss, critic_params)
    opt = ForeachAdam(critic_params, lr=learner.critic_optim.lr, betas=learner.critic_optim.betas)
    opt.step(critic_grads)
    mean, log_std = actor(obs)
    new_action, log_prob, alpha_loss = ops.squashed_gaussian_with_alpha_loss(
        mean, log_std, noise[1], log_alpha, learner.entropy.target, log_std_bounds=(lo, hi), backend="torch")
    actor_loss = (alpha * log_prob - critic(obs, new_action).amin(0)).mean()
    actor_grads = torch.autograd.grad(actor_loss, list(actor.parameters()))
    (alpha_grad,) = torch.autograd.grad(alpha_loss, [log_alpha])
    return critic_grads, actor_grads, alpha_grad


def test_native_gradients_match_float64_autograd():
    """One update from fresh moments leaves exp_avg = (1 - beta1) * grad: the native update's gradients, compared
    with float64 autograd of the same losses (the noise drawn as the learner draws it)."""
    _, native = _pair()
    batch = _batch(64, seed=3, terminated=torch.arange(64) % 7 == 0)
    noise = native._noise_shape(64)
    generator = copy.deepcopy(native.generator)
    noise = torch.empty(noise).normal_(generator=generator)  # the draw the update makes
    critic_grads, actor_grads, alpha_grad = _float64_gradients(native, batch, noise)
    native.update(batch)
    assert_first_moments_are_the_gradients(native, critic_grads, actor_grads, alpha_grad)


def assert_first_moments_are_the_gradients(learner, critic_grads, actor_grads, alpha_grad):
    """After one update from fresh moments, exp_avg = (1 - beta1) * grad: each optimizer's first moments against
    the float64 gradients given, within 2e-4 (relative) and 1e-6."""
    for opt, grads in ((learner.critic_optim, critic_grads), (learner.actor_optim, actor_grads),
                       (learner.alpha_optim, [alpha_grad])):
        beta1 = opt.betas[0]
        for got, want in zip(opt.exp_avg, grads):
            torch.testing.assert_close(got.double() / (1 - beta1), want.reshape(got.shape), rtol=2e-4, atol=1e-6)


def test_native_update_is_bit_reproducible():
    a, b = _pair()[1], _pair()[1]
    for step in range(4):
        batch = _batch(32, seed=step)
        a.update(batch)
        b.update(batch)
    _assert_same_state(a, b)


def test_a_learner_restored_mid_run_continues_bit_for_bit():
    """Exact resume: a fresh learner loaded from the state after two updates makes the next two exactly as the
    learner that went on. Its first update is a first call (checked against eager), so this holds only because
    that call keeps the native result, as every later one does."""
    assert_native_resumes_bit_for_bit(lambda: _pair()[1], [_batch(32, seed=step) for step in range(4)])


def assert_native_resumes_bit_for_bit(make_native, batches):
    """A learner from ``make_native()`` loaded from the state of another after the first half of ``batches`` makes
    the second half exactly as a third that made them all, on its native update throughout."""
    uninterrupted, first_half = make_native(), make_native()
    half = len(batches) // 2
    for batch in batches:
        uninterrupted.update(batch)
    for batch in batches[:half]:
        first_half.update(batch)
    resumed = make_native()
    resumed.load_state_dict(copy.deepcopy(first_half.state_dict()))
    for batch in batches[half:]:
        resumed.update(batch)
    assert resumed.runner.kind == "native" and resumed.fallbacks == []
    _assert_same_state(uninterrupted, resumed)


@pytest.mark.parametrize("changes, reason", [
    ({"backend": "torch"}, "the fused ops run on the 'torch' backend"),
    ({"obs_norm": True}, "observation normalization"),
    ({"critic_network": "layernorm"}, "not plain MLPs"),
])
def test_auto_compiles_with_torch_where_it_does_not_apply_and_native_says_why(changes, reason):
    cfg = dataclasses.replace(BASE, update="auto", **changes)
    learner = make_learner(OBS, ActionSpec(False, ACT), cfg)
    assert learner.runner.kind == "compile" and learner.update_choice.backend == "compile"
    assert reason in learner.update_choice.reason
    assert learner.fallbacks == []  # not a failure: the native update is not a path for these learners
    with pytest.raises(ValueError, match=f"update 'native' cannot run here: .*{reason}"):
        make_learner(OBS, ActionSpec(False, ACT), dataclasses.replace(cfg, update="native"))


def test_auto_takes_the_native_update_where_it_applies():
    assert make_learner(OBS, ActionSpec(False, ACT), BASE).runner.kind == "native"


def _stub_compile(monkeypatch):
    """torch.compile replaced by the eager function (the fallback target, without the compile's cost)."""
    monkeypatch.delenv("FASTSAC_STRICT", raising=False)
    monkeypatch.setattr(runners.implementations, "compile_update", lambda fn, backend: fn)


def _damaging(fast, learner):
    """Writes the state half-way, then raises."""
    def update(*args):
        with torch.no_grad():
            learner.actor_params[0].add_(1.0)
        fast(*args)
        raise RuntimeError("boom")
    return update


def _off(fast, learner):
    """Runs, then leaves one optimizer moment 20% off (a wrong gradient: the moments are compared by norm, within
    runners.MOMENT_RTOL, 5%)."""
    def update(*args):
        out = fast(*args)
        with torch.no_grad():
            learner.critic_optim.exp_avg[2].mul_(1.2)
        return out
    return update


@pytest.mark.parametrize("breaking, message", [
    (_damaging, "the native update \\(csrc/sac_update_cpu.cpp\\) \\(SACLearner update\\) failed.*boom"),
    (_off, "other numbers than the eager update.*critic_optim.exp_avg\\[2\\]"),
], ids=["raises", "other_numbers"])
def test_a_broken_native_update_falls_back_to_torch_compile_with_the_state_restored(monkeypatch, breaking, message):
    """The state is restored (raising) or the eager result kept (other numbers), so the learner equals the eager one."""
    _stub_compile(monkeypatch)
    eager, native = _pair()
    running = native.runner.checked.runner
    running.fn = breaking(running.fn, native)
    with pytest.warns(FallbackWarning, match=message):
        native.update(_batch(16))
    eager.update(_batch(16))
    assert [f.kind for f in native.fallbacks] == ["native"] and native.runner.kind == "compile"
    _assert_same_state(eager, native)  # bit for bit: the stand-in for torch.compile runs the eager update


def test_a_native_learner_refuses_a_data_parallel_reducer_and_a_compiled_one_takes_it(monkeypatch):
    """The native update has no place for the reducer: a native learner refuses one with a clear error (a
    data-parallel run chooses torch.compile); a compiled learner traces it, and it sees every backward pass."""
    _stub_compile(monkeypatch)
    _, native = _pair()
    with pytest.raises(ValueError, match="native update has no place for a data-parallel grad_reducer"):
        native.grad_reducer = lambda grads: grads
    assert native.grad_reducer is None
    compiled = SACLearner(OBS, ACT, dataclasses.replace(BASE, update="compile"))
    seen = []
    compiled.grad_reducer = lambda grads: seen.append(len(grads)) or grads
    with warnings.catch_warnings():
        warnings.simplefilter("error", FallbackWarning)
        compiled.update(_batch(16))
    # the critics' (6 tensors) and the actor's and log_alpha's (9) backward passes, twice: the first call runs
    # again eagerly for its check
    assert compiled.fallbacks == [] and seen == [6, 9, 6, 9]


def test_the_native_update_refuses_a_reducer_set_behind_its_back():
    """Called directly with a reducer set on the learner's private field, the native call raises rather than skip
    the hook."""
    _, learner = _pair()
    call = sac_native.NativeSACUpdate(learner)
    learner._grad_reducer = lambda grads: grads
    with pytest.raises(RuntimeError, match="grad_reducer"):
        call(*_batch(16), torch.zeros(learner._noise_shape(16)), True)


@pytest.mark.parametrize("where", ["action", "reward", "obs"])
def test_batches_of_the_wrong_shape_are_refused_before_anything_runs(where):
    """A clear error, and no fallback: a wrong batch is the caller's mistake, not the fast path's failure."""
    _, native = _pair()
    obs, action, reward, next_obs, terminated = _batch(16)
    bad = {"action": (obs, torch.zeros(16, ACT + 1), reward, next_obs, terminated),
           "reward": (obs, action, reward[:15], next_obs, terminated),
           "obs": (obs[:, :-1], action, reward, next_obs, terminated)}[where]
    message = {"action": r"action must be \(16, 2\), got shape \(16, 3\)",
               "reward": r"16 observations but 15 values in reward",
               "obs": r"obs must be \(16, 5\), got shape \(16, 4\)"}
    before = _all_state(native)
    with pytest.raises(ValueError, match=message[where]):
        native.update(bad)
    after = _all_state(native)
    assert all(torch.equal(before[key], after[key]) for key in before) and native.fallbacks == []
    assert native.runner.kind == "native"
