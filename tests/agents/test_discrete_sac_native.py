"""The native CPU update of discrete SAC (csrc/discrete_sac_update_cpu.cpp via fastsac.agents.discrete_sac_native):
the eager update's numbers, its gradients against float64 autograd, exact resume, where it applies, its loud
fallback, and its refusal of bad action indices. The README's set-up builds the C++ extension, so these tests run
wherever the suite does (tests/test_setup.py fails when the extension is missing)."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from torch.nn import functional as F

from fastsac.agents import ActionSpec, DiscreteSACLearner, LearnerConfig, make_learner, runners
from fastsac.agents.discrete_sac_native import NativeDiscreteSACUpdate
from fastsac.agents.optim import ForeachAdam
from fastsac.fallbacks import FallbackWarning

from .test_learner import NUM_ACTIONS, OBS, _all_state, _assert_same_state, _batch
from .test_sac_native import (assert_first_moments_are_the_gradients, assert_native_kept_and_close_to_eager,
                              assert_native_resumes_bit_for_bit)

BASE = LearnerConfig(hidden_sizes=(32, 32), seed=7)


def _pair(num_actions=NUM_ACTIONS, **changes):
    """An eager discrete SAC learner and a native one, from the same seed (the same networks)."""
    cfg = dataclasses.replace(BASE, **changes)
    native = DiscreteSACLearner(OBS, num_actions, dataclasses.replace(cfg, update="native"))
    assert native.runner.kind == "native"
    return DiscreteSACLearner(OBS, num_actions, dataclasses.replace(cfg, update="eager")), native


def _discrete_batch(batch_size, seed, num_actions=NUM_ACTIONS):
    obs, _, reward, next_obs, terminated = _batch(batch_size, seed=seed, terminated=torch.arange(batch_size) % 5 == 0)
    action = torch.randint(0, num_actions, (batch_size,), generator=torch.Generator().manual_seed(100 + seed))
    return obs, action, reward, next_obs, terminated


@pytest.mark.parametrize("num_actions, changes", [
    (NUM_ACTIONS, {}),
    (NUM_ACTIONS, {"hidden_sizes": (24, 16, 8), "critic_hidden_sizes": (40, 20)}),  # three actor layers
    (NUM_ACTIONS, {"policy_delay": 2}),  # both variants: with and without the actor's step
    (NUM_ACTIONS, {"fixed_alpha": True, "initial_alpha": 0.3}),
    (2, {"gamma": 0.9, "tau": 0.05, "initial_alpha": 0.1}),  # CartPole's two actions
    (1, {}),  # one action: the critics' last layer has one output (its backward is the outer product)
], ids=["default", "widths", "policy_delay", "fixed_alpha", "hyper", "one_action"])
def test_native_update_matches_the_eager_update(num_actions, changes):
    eager, native = _pair(num_actions, **changes)
    for step in range(6):
        batch = _discrete_batch(32, step, num_actions)
        eager.update(batch)
        native.update(batch)
    # The same math in float32 with other summation orders. Measured after six updates (these settings, the 2-core
    # x86-64 machine, torch 2.13): state at most 3.0e-8 apart; metrics at most 3.2e-7 apart (critic_loss ~2-4), or
    # 1.2e-6 relative for alpha_loss = log_alpha (H - target) at 0.018 (2.2e-8 apart: the difference H - target
    # cancels digits), so alpha_loss gets an absolute bound at the scale of that rounding.
    assert_native_kept_and_close_to_eager(eager, native, metric_abs={"alpha_loss": 1e-7})


def _float64_gradients(learner: DiscreteSACLearner, batch):
    """The critic's gradient, then (after the critic's Adam step, in float64 too) the actor's and log_alpha's, by
    autograd on float64 copies of the learner's networks, with the policy's expectations written out."""
    actor, critic, target = (copy.deepcopy(m).double() for m in (learner.actor, learner.critic, learner.target_critic))
    obs, action, reward, next_obs, terminated = batch
    obs, reward, next_obs, terminated = (t.double() for t in (obs, reward, next_obs, terminated))
    log_alpha = learner.entropy.log_alpha.detach().double().requires_grad_(True)
    alpha = log_alpha.detach().exp()
    with torch.no_grad():
        log_probs = F.log_softmax(actor(next_obs), dim=-1)
        next_v = (log_probs.exp() * (target(next_obs).amin(0) - alpha * log_probs)).sum(-1)
        y = reward + learner.cfg.gamma * (1 - terminated) * next_v
    critic_params = list(critic.parameters())
    q = critic(obs).gather(2, action.reshape(1, -1, 1).expand(critic.num_critics, -1, 1)).squeeze(2)
    critic_grads = torch.autograd.grad((q - y).square().mean(dim=1).sum(), critic_params)
    ForeachAdam(critic_params, lr=learner.critic_optim.lr, betas=learner.critic_optim.betas).step(critic_grads)
    log_probs = F.log_softmax(actor(obs), dim=-1)
    probs = log_probs.exp()
    with torch.no_grad():
        q = critic(obs).amin(0)
    actor_loss = (probs * (alpha * log_probs - q)).sum(-1).mean()
    actor_grads = torch.autograd.grad(actor_loss, list(actor.parameters()))
    entropy = -(probs * log_probs).sum(-1).mean().detach()
    (alpha_grad,) = torch.autograd.grad(log_alpha * (entropy - learner.entropy.target), [log_alpha])
    return critic_grads, actor_grads, alpha_grad


def test_native_gradients_match_float64_autograd():
    """One update from fresh moments leaves exp_avg = (1 - beta1) * grad: the native update's gradients, compared
    with float64 autograd of discrete SAC's losses written out here (not through the learner's code)."""
    _, native = _pair()
    batch = _discrete_batch(64, 3)
    critic_grads, actor_grads, alpha_grad = _float64_gradients(native, batch)
    native.update(batch)
    assert_first_moments_are_the_gradients(native, critic_grads, actor_grads, alpha_grad)


def test_a_learner_restored_mid_run_continues_bit_for_bit():
    """Exact resume: a fresh learner loaded from the state after two updates makes the next two exactly as the
    learner that went on (its first call, checked against eager, keeps the native result)."""
    assert_native_resumes_bit_for_bit(lambda: _pair()[1], [_discrete_batch(32, step) for step in range(4)])


def test_auto_takes_the_native_update_and_the_compile_rule_prices_it_as_sacs():
    assert make_learner(OBS, ActionSpec(True, 3), BASE).runner.kind == "native"
    from fastsac.training.presets import resolve_config
    from fastsac.training.resolve import decide_update

    preset, _ = resolve_config("CartPole-v1", {"device": "cpu", "total_steps": 2_000})  # a short run: 1,000 updates
    choice = decide_update(preset, torch.device("cpu"), 4, 2, True)
    assert choice.backend == "native" and "native C++ update's first call" in choice.reason


@pytest.mark.parametrize("changes, reason", [
    ({"backend": "torch"}, "the fused ops run on the 'torch' backend"),
    ({"obs_norm": True}, "observation normalization"),
    ({"critic_network": "layernorm"}, "not plain MLPs"),
])
def test_auto_compiles_where_it_does_not_apply_and_native_says_why(changes, reason):
    cfg = dataclasses.replace(BASE, update="auto", **changes)
    learner = make_learner(OBS, ActionSpec(True, NUM_ACTIONS), cfg)
    assert learner.runner.kind == "compile" and reason in learner.update_choice.reason
    with pytest.raises(ValueError, match=f"update 'native' cannot run here: .*{reason}"):
        make_learner(OBS, ActionSpec(True, NUM_ACTIONS), dataclasses.replace(cfg, update="native"))


def test_a_failing_native_update_falls_back_to_torch_compile_with_the_state_restored(monkeypatch):
    monkeypatch.delenv("FASTSAC_STRICT", raising=False)
    monkeypatch.setattr(runners.implementations, "compile_update", lambda fn, backend: fn)  # the eager update
    eager, native = _pair()
    running = native.runner.checked.runner
    fast = running.fn

    def damaging(*args):
        with torch.no_grad():
            native.actor_params[0].add_(1.0)
        fast(*args)
        raise RuntimeError("boom")

    running.fn = damaging
    with pytest.warns(FallbackWarning, match="csrc/discrete_sac_update_cpu.cpp.*failed.*boom"):
        native.update(_discrete_batch(16, 0))
    eager.update(_discrete_batch(16, 0))
    assert [f.kind for f in native.fallbacks] == ["native"] and native.runner.kind == "compile"
    _assert_same_state(eager, native)


@pytest.mark.parametrize("bad, message", [
    (NUM_ACTIONS, "got 4 at 3"),
    (-1, "got -1 at 3"),
    (1.5, "got 1.5 at 3"),
], ids=["too_large", "negative", "fraction"])
def test_a_bad_action_index_is_refused_before_anything_is_written(bad, message):
    """Called directly (as the runner calls it), the C++ side checks every index first: a clear error naming the
    argument, and every tensor as it was."""
    _, learner = _pair()
    call = NativeDiscreteSACUpdate(learner)
    obs, action, reward, next_obs, terminated = _discrete_batch(16, 0)
    action = action.float()
    action[3] = bad
    before = _all_state(learner)
    with pytest.raises(RuntimeError, match=r"discrete_sac_update_cpu: batch\[1\] \(action\) must hold action indices, "
                       r"integers in \[0, 4\), " + message):
        call(obs, action, reward, next_obs, terminated, torch.zeros(0), True)
    after = _all_state(learner)
    assert all(torch.equal(before[key], after[key]) for key in before)
