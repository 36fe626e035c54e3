"""The native CPU CrossQ update (csrc/crossq_update_cpu.cpp via fastsac.agents.crossq_native): the eager update's
numbers (batch-renorm warm-up crossed, policy delay, fixed alpha, other widths), its gradients against float64
autograd, bit reproducibility, exact resume, where it applies, and its loud fallback. The README's set-up builds
the C++ extension, so these tests run wherever the suite does (tests/test_setup.py fails when it is missing)."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from fastsac import ops
from fastsac.agents import ActionSpec, CrossQLearner, make_learner, runners
from fastsac.agents import crossq_native
from fastsac.agents.optim import ForeachAdam
from fastsac.fallbacks import FallbackWarning

from .test_crossq import ACT, OBS, _assert_same, _batch, _state_tensors, small_cfg


def _pair(**changes):
    """An eager CrossQ learner and a native one, from the same seed (the same networks and noise)."""
    cfg = small_cfg(**changes)
    native = CrossQLearner(OBS, ACT, dataclasses.replace(cfg, update="native"))
    assert native.runner.kind == "native"
    return CrossQLearner(OBS, ACT, dataclasses.replace(cfg, update="eager")), native


CONFIGS = {
    "default": {},  # warm-up of 3 training calls, crossed by the critics and (policy delay 3) the actor
    "policy_delay_1": {"policy_delay": 1},
    "no_warmup": {"brn_warmup_steps": 0},  # renormalization (r, d clipped) from the first call
    "warmup_not_crossed": {"brn_warmup_steps": 1000},  # batch normalization throughout
    "widths": {"hidden_sizes": (24, 16, 8), "critic_hidden_sizes": (40, 20, 12)},  # three layers, other widths
    "fixed_alpha": {"fixed_alpha": True, "initial_alpha": 0.3},
    "hyper": {"gamma": 0.9, "log_std_min": -3.0, "log_std_max": 1.0, "brn_momentum": 0.9},
}
#: Eight updates in a row, native and eager each on its own state. Not "no_warmup" and "widths": there a gradient
#: of some actor bias is zero in exact arithmetic (a unit active on the whole batch, ahead of batch renorm, whose
#: shift the batch statistics remove) and float32 noise of either sign in both implementations (no_warmup's first
#: update: -7.9e-9 eager, +7.0e-10 native); Adam turns that noise into steps of up to lr, and the runs part there
#: (by up to 3e-3 of a tensor's largest element). Each update from one state is compared below for every setting.
TRAJECTORY = [k for k in CONFIGS if k not in ("no_warmup", "widths")]
#: Measured worst difference after eight updates relative to each tensor's largest magnitude (the five settings,
#: 2-core x86-64 machine, torch 2.13): 2.0e-6. The bound of torch.testing.assert_close below (rtol 1e-4 plus
#: atol 1e-5, elementwise) is the compiled update's (tests/agents/test_crossq.py).
TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}


@pytest.mark.parametrize("name", TRAJECTORY)
def test_native_update_matches_the_eager_update(name):
    eager, native = _pair(**CONFIGS[name])
    for step in range(8):
        batch = _batch(24, seed=step)
        act_obs = torch.randn(3, OBS, generator=torch.Generator().manual_seed(50 + step)) if step % 2 else None
        expected, actions = eager.update(batch, act_obs=act_obs), native.update(batch, act_obs=act_obs)
        if act_obs is not None:
            torch.testing.assert_close(actions, expected, rtol=1e-4, atol=1e-5)
    assert native.fallbacks == [] and native.runner.kind == "native"
    # Each first call (one per signature: with and without the actor step, with and without act_obs) was checked
    # against eager from the same state; measured at most 3.1e-6 here.
    assert all(d < runners.VERIFY_RTOL / 10 for d in native.runner.checked.first_call_differences.values())
    _assert_same(eager, native, **TOLERANCE)
    em, nm = eager.metrics(), native.metrics()
    assert em.keys() == nm.keys()
    for key in em:
        assert nm[key] == pytest.approx(em[key], rel=1e-4, abs=1e-6), key


@pytest.mark.parametrize("name", CONFIGS)
def test_each_native_update_matches_the_eager_update_from_the_same_state(name):
    """Every update of eight (warm-up crossed, actor and critic-only variants), native and eager from one state:
    the optimizer moments, batch-renorm statistics, metric sums and actions (what changes smoothly with the
    arithmetic; parameters after a first Adam step do not, see TRAJECTORY). Measured worst, relative to each
    tensor's largest magnitude: below 4e-6 (bound 2e-5). Actions are compared after critic-only updates (after an
    actor step they come from the updated parameters)."""
    eager, native = _pair(**CONFIGS[name])
    for step in range(8):
        native.load_state_dict(copy.deepcopy(eager.state_dict()))
        assert native.runner.kind == "native"
        batch = _batch(24, seed=step)
        # actions only after critic-only updates: after an actor step they come from parameters (see TRAJECTORY)
        actor_step = native.num_updates % native.cfg.policy_delay == 0
        act_obs = None if actor_step else torch.randn(3, OBS, generator=torch.Generator().manual_seed(50 + step))
        expected, actions = eager.update(batch, act_obs=act_obs), native.update(batch, act_obs=act_obs)
        pairs = [] if act_obs is None else [("actions", expected, actions)]
        pairs += [(n, t, u) for (n, t), (_, u) in zip(eager._compared_tensors(), native._compared_tensors())]
        for what, want, got in pairs:
            if want.is_floating_point():
                scale = want.abs().max().item() or 1.0
                worst = (got - want).abs().max().item() / scale
                assert worst < 2e-5, f"step {step}, {what}: {worst:.2e}"
            else:
                assert torch.equal(want, got), f"step {step}, {what}"


def _float64_gradients(learner: CrossQLearner, batch, noise):
    """CrossQ's critic gradient, then (after the critic's Adam step, in float64 too) the actor's and log_alpha's, by
    autograd on float64 copies of the learner's networks (batch renorm buffers included) and the reference op."""
    actor, critic = (copy.deepcopy(m).double() for m in (learner.actor, learner.critic))
    obs, action, reward, next_obs, terminated = (t.double() for t in batch)
    noise = noise.double()
    lo, hi = learner.log_std_bounds
    log_alpha = learner.entropy.log_alpha.detach().double().requires_grad_(True)
    alpha = log_alpha.detach().exp()
    with torch.no_grad():
        mean, log_std = actor(next_obs, training=False)
        next_action, next_log_prob = ops.squashed_gaussian(mean, log_std, noise[0], log_std_bounds=(lo, hi),
                                                           backend="torch")
    q, next_q = critic(torch.cat([obs, next_obs]), torch.cat([action, next_action]), training=True).chunk(2, dim=1)
    with torch.no_grad():
        y = reward + learner.cfg.gamma * (1 - terminated) * (next_q.amin(0) - alpha * next_log_prob)
    critic_params = list(critic.parameters())
    critic_grads = torch.autograd.grad((q - y).square().mean(dim=1).sum(), critic_params)
    opt = ForeachAdam(critic_params, lr=learner.critic_optim.lr, betas=learner.critic_optim.betas)
    opt.step(critic_grads)
    mean, log_std = actor(obs, training=True)
    new_action, log_prob, alpha_loss = ops.squashed_gaussian_with_alpha_loss(
        mean, log_std, noise[1], log_alpha, learner.entropy.target, log_std_bounds=(lo, hi), backend="torch")
    actor_loss = (alpha * log_prob - critic(obs, new_action, training=False).amin(0)).mean()
    actor_grads = torch.autograd.grad(actor_loss, list(actor.parameters()))
    (alpha_grad,) = torch.autograd.grad(alpha_loss, [log_alpha])
    return critic_grads, actor_grads, alpha_grad


@pytest.mark.parametrize("warmup", [0, 1000], ids=["renorm", "batch_norm"])
def test_native_gradients_match_float64_autograd(warmup):
    """One update from fresh moments leaves exp_avg = (1 - beta1) * grad: the native update's gradients (through
    the batch statistics of the joint batch), compared with float64 autograd of the same losses."""
    _, native = _pair(brn_warmup_steps=warmup)
    if warmup == 0:  # running statistics away from (0, 1), so r and d are not 1 and 0
        with torch.no_grad():
            for name, buf in native.critic.named_buffers():
                if name.endswith("running_mean"):
                    buf.add_(0.3)
                elif name.endswith("running_var"):
                    buf.mul_(2.0)
    batch = _batch(64, seed=3)
    generator = copy.deepcopy(native.generator)
    noise = torch.empty(native._noise_shape(64)).normal_(generator=generator)  # the draw the update makes
    critic_grads, actor_grads, alpha_grad = _float64_gradients(native, batch, noise)
    native.update(batch)
    for opt, grads in ((native.critic_optim, critic_grads), (native.actor_optim, actor_grads),
                       (native.alpha_optim, [alpha_grad])):
        beta1 = opt.betas[0]
        for got, want in zip(opt.exp_avg, grads):
            torch.testing.assert_close(got.double() / (1 - beta1), want.reshape(got.shape), rtol=2e-4, atol=1e-5)


def test_native_update_is_bit_reproducible():
    a, b = _pair()[1], _pair()[1]
    for step in range(6):
        batch = _batch(16, seed=step)
        a.update(batch)
        b.update(batch)
    _assert_same(a, b)


def test_a_learner_restored_mid_run_continues_bit_for_bit():
    """Exact resume across the batch-renorm warm-up and between actor updates: a fresh learner loaded from the state
    after four updates makes the next four exactly as the learner that went on (its first call, checked against
    eager, keeps the native result)."""
    uninterrupted, first_half = _pair()[1], _pair()[1]
    batches = [_batch(16, seed=step) for step in range(8)]
    for batch in batches:
        uninterrupted.update(batch)
    for batch in batches[:4]:
        first_half.update(batch)
    resumed = _pair()[1]
    resumed.load_state_dict(copy.deepcopy(first_half.state_dict()))
    for batch in batches[4:]:
        resumed.update(batch)
    assert resumed.runner.kind == "native" and resumed.fallbacks == []
    _assert_same(uninterrupted, resumed)


@pytest.mark.parametrize("changes, reason", [
    ({"backend": "torch"}, "the fused ops run on the 'torch' backend"),
    ({"obs_norm": True}, "observation normalization"),
    ({"critic_network": "layernorm"}, "not batch-renormalized MLPs"),
    ({"critic_network": "simba", "critic_hidden_sizes": (32, 32), "obs_norm": False}, "not batch-renormalized MLPs"),
])
def test_auto_compiles_where_it_does_not_apply_and_native_says_why(changes, reason):
    cfg = small_cfg(update="auto", **changes)
    learner = make_learner(OBS, ActionSpec(False, ACT), cfg)
    assert learner.runner.kind == "compile" and reason in learner.update_choice.reason
    assert learner.fallbacks == []
    with pytest.raises(ValueError, match=f"update 'native' cannot run here: .*{reason}"):
        make_learner(OBS, ActionSpec(False, ACT), dataclasses.replace(cfg, update="native"))


def test_auto_takes_the_native_update_for_crossq_mlp_critics():
    learner = make_learner(OBS, ActionSpec(False, ACT), small_cfg(update="auto"))
    assert learner.runner.kind == "native" and learner.update_choice.backend == "native"


def _stub_compile(monkeypatch):
    monkeypatch.delenv("FASTSAC_STRICT", raising=False)
    monkeypatch.setattr(runners.implementations, "compile_update", lambda fn, backend: fn)


def _damaging(fast, learner):
    def update(*args):
        with torch.no_grad():
            learner.critic_params[2].add_(1.0)
            learner.critic.layers_0_running_mean.add_(1.0)
        fast(*args)
        raise RuntimeError("boom")
    return update


def _off(fast, learner):
    def update(*args):
        out = fast(*args)
        with torch.no_grad():
            learner.critic.layers_3_running_var.mul_(1.01)
        return out
    return update


@pytest.mark.parametrize("breaking, message", [
    (_damaging, "the native update \\(csrc/crossq_update_cpu.cpp\\) \\(CrossQLearner update\\) failed.*boom"),
    (_off, "other numbers than the eager update.*critic.layers_3_running_var"),
], ids=["raises", "other_numbers"])
def test_a_broken_native_update_falls_back_to_torch_compile_with_the_state_restored(monkeypatch, breaking, message):
    _stub_compile(monkeypatch)
    eager, native = _pair()
    running = native.runner.checked.runner
    running.fn = breaking(running.fn, native)
    with pytest.warns(FallbackWarning, match=message):
        native.update(_batch(16))
    eager.update(_batch(16))
    assert [f.kind for f in native.fallbacks] == ["native"] and native.runner.kind == "compile"
    _assert_same(eager, native)


def test_the_native_update_refuses_a_reducer():
    _, native = _pair()
    with pytest.raises(ValueError, match="native update has no place for a data-parallel grad_reducer"):
        native.grad_reducer = lambda grads: grads
    call = crossq_native.NativeCrossQUpdate(native)
    native._grad_reducer = lambda grads: grads
    with pytest.raises(RuntimeError, match="grad_reducer"):
        call(*_batch(16), torch.zeros(native._noise_shape(16)), True)


def test_state_keys_are_the_eager_learners():
    """The native update writes the learner's own tensors: nothing is added to or missing from the state."""
    eager, native = _pair()
    native.update(_batch(16))
    assert _state_tensors(eager).keys() == _state_tensors(native).keys()
