"""Batch renormalization and running observation normalization against float64 references of their equations.

The batch-renorm reference is Ioffe (2017), Algorithm 1, written out independently of the layer, with CrossQ's
warm-up (r_max = 1, d_max = 0 for the first ``warmup_steps`` training calls) and CrossQ's running-variance update.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fastsac.agents.networks import EnsembleQ
from fastsac.agents.normalization import BatchRenorm, ReturnScale, RunningObsNorm
from fastsac.agents.normed_networks import Trunk, critic_member
from tests.agents.helpers import saved_and_loaded

C, B = 6, 32
OPTS = dict(momentum=0.9, eps=1e-3, warmup_steps=5, r_max=3.0, d_max=5.0)


def brn_reference(x, weight, bias, mean, var, steps, *, training, momentum, eps, warmup_steps, r_max, d_max,
                  stop_grad=True):
    """(y, new running mean, new running var, new steps), all float64, from the paper's equations (``stop_grad``
    False: r and d without the paper's stop-gradient, to show that the tests can tell the difference)."""
    if not training:
        return weight * (x - mean) / torch.sqrt(var + eps) + bias, mean, var, steps
    n = x.shape[0]
    mu_b = x.sum(0) / n
    var_b = ((x - mu_b) ** 2).sum(0) / n
    sigma_b = torch.sqrt(var_b + eps)
    sigma = torch.sqrt(var + eps)
    if steps < warmup_steps:
        r_max, d_max = 1.0, 0.0
    r = torch.clamp(sigma_b / sigma, 1.0 / r_max, r_max)
    d = torch.clamp((mu_b - mean) / sigma, -d_max, d_max)
    if stop_grad:
        r, d = r.detach(), d.detach()
    y = weight * ((x - mu_b) / sigma_b * r + d) + bias
    return y, mean + (1 - momentum) * (mu_b.detach() - mean), var + (1 - momentum) * (var_b.detach() - var), steps + 1


def _inputs(seed, dtype=torch.float64):
    """A batch and running statistics chosen so that r is clipped above and below and d on both sides, with other
    features unclipped (asserted by the tests that use them)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, C, generator=g, dtype=torch.float64) * torch.tensor([1.0, 1.0, 6.0, 0.1, 1.0, 1.0])
    x = x + torch.tensor([0.0, 0.3, 0.0, 0.0, 9.0, -9.0])
    mean = torch.randn(C, generator=g, dtype=torch.float64) * 0.1
    var = torch.tensor([1.0, 1.5, 1.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    weight = 1 + 0.3 * torch.randn(C, generator=g, dtype=torch.float64)
    bias = 0.3 * torch.randn(C, generator=g, dtype=torch.float64)
    return tuple(t.to(dtype) for t in (x, weight, bias, mean, var))


def _layer(weight, bias, mean, var, steps, dtype=torch.float64, **opts):
    layer = BatchRenorm(C, **{**OPTS, **opts}).to(dtype)
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
        layer.running_mean.copy_(mean)
        layer.running_var.copy_(var)
        layer.steps.fill_(steps)
    return layer


def _clip_pattern(x, mean, var, eps=1e-3):
    sigma_b = torch.sqrt(x.var(0, correction=0) + eps)
    sigma = torch.sqrt(var + eps)
    ratio, d = sigma_b / sigma, (x.mean(0) - mean) / sigma
    return (ratio > 3).any() and (ratio < 1 / 3).any() and (d > 5).any() and (d < -5).any() and \
        ((ratio.abs() < 3) & (ratio > 1 / 3) & (d.abs() < 5)).any()


@pytest.mark.parametrize("steps", [0, 4, 5, 50], ids=["warmup-start", "warmup-last", "renorm-first", "renorm"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_training_mode_matches_the_paper(steps, dtype):
    x, weight, bias, mean, var = _inputs(1)
    assert _clip_pattern(x, mean, var)  # every clipping case is exercised
    layer = _layer(weight, bias, mean, var, steps, dtype)
    y = layer(x.to(dtype), training=True)
    ref_y, ref_mean, ref_var, ref_steps = brn_reference(x, weight, bias, mean, var, steps, training=True, **OPTS)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=2e-5, atol=2e-5)
    torch.testing.assert_close(y.double(), ref_y, **tol)
    torch.testing.assert_close(layer.running_mean.double(), ref_mean, **tol)
    torch.testing.assert_close(layer.running_var.double(), ref_var, **tol)
    assert int(layer.steps) == ref_steps


def test_warmup_is_batch_norm_then_renorm_takes_over():
    x, weight, bias, mean, var = _inputs(2)
    plain_bn = F.batch_norm(x, None, None, weight, bias, training=True, eps=OPTS["eps"])  # an independent formula
    layer = _layer(weight, bias, mean, var, steps=OPTS["warmup_steps"] - 1)
    assert layer.clip_bounds() == (1.0, 0.0)
    torch.testing.assert_close(layer(x, training=True), plain_bn, rtol=1e-12, atol=1e-12)
    assert layer.clip_bounds() == (OPTS["r_max"], OPTS["d_max"])  # the warm-up has ended
    y = layer(x, training=True)
    assert (y - plain_bn).abs().max() > 1.0  # r and d now matter (the running statistics are far off)


def test_evaluation_mode_uses_running_statistics_and_changes_nothing():
    x, weight, bias, mean, var = _inputs(3)
    layer = _layer(weight, bias, mean, var, steps=7)
    before = copy.deepcopy(layer.state_dict())
    y = layer(x)  # training=False is the default
    torch.testing.assert_close(y, brn_reference(x, weight, bias, mean, var, 7, training=False, **OPTS)[0],
                               rtol=1e-12, atol=1e-12)
    for key, value in layer.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_running_statistics_follow_the_recursion_over_many_batches():
    _, weight, bias, mean, var = _inputs(4)
    layer = _layer(weight, bias, mean, var, steps=0)
    state = (mean, var, 0)
    g = torch.Generator().manual_seed(5)
    for k in range(12):  # across the warm-up boundary (5)
        x = torch.randn(B, C, generator=g, dtype=torch.float64) * (1 + k) + k
        y = layer(x, training=True)
        ref_y, *state = brn_reference(x, weight, bias, *state, training=True, **OPTS)
        torch.testing.assert_close(y, ref_y, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(layer.running_mean, state[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(layer.running_var, state[1], rtol=1e-12, atol=1e-12)
    assert int(layer.steps) == state[2] == 12


def _pure(layer, training):
    """The layer as a function of (x, weight, bias) that leaves its buffers alone (gradcheck calls it many times)."""
    buffers = {k: v.clone() for k, v in layer.named_buffers()}

    def f(x, weight, bias):
        state = {"weight": weight, "bias": bias, **{k: v.clone() for k, v in buffers.items()}}
        return torch.func.functional_call(layer, state, (x,), {"training": training})

    return f


@pytest.mark.parametrize("case", ["eval", "warmup", "renorm-saturated"])
def test_gradcheck(case):
    x, weight, bias, mean, var = _inputs(6)
    if case == "renorm-saturated":  # every r and d at a clipping bound: constants, so the true derivative applies
        var = torch.full((C,), 400.0, dtype=torch.float64)
        mean = torch.full((C,), 300.0, dtype=torch.float64)
    steps = 0 if case == "warmup" else 9
    layer = _layer(weight, bias, mean, var, steps)
    f = _pure(layer, training=case != "eval")
    inputs = tuple(t.clone().requires_grad_(True) for t in (x[:8], weight, bias))
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6)


def test_gradients_treat_r_and_d_as_constants():
    """Unclipped r and d depend on the batch; the paper stops their gradient. Compare with the reference's autograd."""
    x, weight, bias, mean, var = _inputs(7)
    layer = _layer(weight, bias, mean, var, steps=9)
    xs = [x.clone().requires_grad_(True) for _ in range(2)]
    params = [t.clone().requires_grad_(True) for t in (weight, bias)]
    g_out = torch.randn(B, C, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    got = torch.autograd.grad((layer(xs[0], training=True) * g_out).sum(), [xs[0], layer.weight, layer.bias])
    ref_y = brn_reference(xs[1], *params, mean, var, 9, training=True, **OPTS)[0]
    want = torch.autograd.grad((ref_y * g_out).sum(), [xs[1], *params])
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    # ... which is not the derivative through r and d (so this comparison can fail).
    live_y = brn_reference(xs[1], *params, mean, var, 9, training=True, stop_grad=False, **OPTS)[0]
    live = torch.autograd.grad((live_y * g_out).sum(), xs[1])[0]
    assert not torch.allclose(live, want[0], atol=1e-4)

def test_ensemble_members_keep_their_own_statistics():
    """BatchRenorm inside EnsembleQ (vmap over stacked buffers): each member equals its own stand-alone network,
    and the in-place running-statistic updates reach each member's slice of the stacked buffers."""
    torch.manual_seed(0)
    member = critic_member(5, 1, (16, 16), "layernorm", dict(momentum=0.9, warmup_steps=2))
    ens = EnsembleQ(5, 1, (16, 16), num_critics=2, member=member)
    singles = []
    for j in range(2):
        net = member()
        net.load_state_dict({name: ens.state_dict()[name.replace(".", "_")][j] for name in net.state_dict()})
        singles.append(net)
    g = torch.Generator().manual_seed(1)
    for step in range(4):
        x = torch.randn(12, 5, generator=g) * 3 + 1
        out = ens(x, training=True)
        for j, net in enumerate(singles):
            torch.testing.assert_close(out[j], net(x, training=True), rtol=1e-5, atol=1e-5)
    for j, net in enumerate(singles):
        for name, value in net.named_buffers():
            torch.testing.assert_close(ens.state_dict()[name.replace(".", "_")][j], value, rtol=1e-5, atol=1e-6)
    assert int(ens.state_dict()["layers_0_steps"][0]) == 4
    torch.testing.assert_close(ens(x)[1], singles[1](x), rtol=1e-5, atol=1e-5)  # evaluation mode


def test_trunk_passes_the_mode_only_to_layers_that_take_it():
    layers = [torch.nn.Linear(3, 4), BatchRenorm(4, warmup_steps=0), torch.nn.ReLU()]
    trunk = Trunk(layers)
    x = torch.randn(10, 3)
    trunk(x)
    assert int(layers[1].steps) == 0
    trunk(x, training=True)
    assert int(layers[1].steps) == 1


# ------------------------------------------------------------------------------------------ RunningObsNorm
def test_running_obs_norm_matches_the_statistics_of_everything_seen():
    g = torch.Generator().manual_seed(9)
    norm = RunningObsNorm(4)
    x0 = torch.randn(7, 4, generator=g)
    torch.testing.assert_close(norm(x0), x0)  # identity before any update
    chunks = [torch.randn(n, 4, generator=g) * torch.tensor([1.0, 10.0, 0.1, 3.0]) + 5 for n in (1, 33, 256, 2)]
    for chunk in chunks:
        norm.update_(chunk)
    seen = torch.cat(chunks).double()
    torch.testing.assert_close(norm.mean, seen.mean(0), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(norm.var, seen.var(0, correction=0), rtol=1e-12, atol=1e-12)
    assert float(norm.count) == seen.shape[0]
    y = norm(x0)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y.double(), (x0.double() - seen.mean(0)) / torch.sqrt(seen.var(0, correction=0) + 1e-8))


def test_running_obs_norm_state_round_trip():
    norm = RunningObsNorm(3)
    norm.update_(torch.randn(50, 3) * 4)
    other = RunningObsNorm(3)
    other.load_state_dict(norm.state_dict())
    x = torch.randn(5, 3)
    assert torch.equal(norm(x), other(x))
    assert set(norm.state_dict()) == {"mean", "var", "count"}


# ------------------------------------------------------------------------------------------- return scale (FlashSAC)


class _NumpyReturnScale:
    """FlashSAC's reward scaling written out in float64 numpy, independently of the module: per-env discounted
    returns, their running max magnitude, and the running mean and variance of all returns seen (gymnasium's
    RunningMeanStd start: mean 0, var 1, count 1e-4; merged batch by batch with Chan et al.'s formula)."""

    def __init__(self, num_envs, gamma, g_max=5.0):
        self.gamma, self.g_max = gamma, g_max
        self.g, self.g_abs_max = np.zeros(num_envs), 0.0
        self.mean, self.var, self.count = 0.0, 1.0, 1e-4

    def update(self, r, term, trunc):
        done = np.logical_or(term, trunc)
        self.g = self.gamma * (1.0 - done) * self.g + r
        self.g_abs_max = max(self.g_abs_max, float(np.abs(self.g).max()))
        n, m, v = len(self.g), self.g.mean(), self.g.var()
        total = self.count + n
        delta = m - self.mean
        m2 = self.var * self.count + v * n + delta**2 * self.count * n / total
        self.mean, self.var, self.count = self.mean + delta * n / total, m2 / total, total

    def __call__(self, r):
        return r / max(np.sqrt(self.var + 1e-8), self.g_abs_max / self.g_max)


def _episode_stream(num_envs, steps, seed):
    """(reward, terminated, truncated) per step: rewards whose scale changes over time, random terminations and
    truncations (some steps both), a few steps in which every env ends at once."""
    rng = np.random.default_rng(seed)
    for t in range(steps):
        reward = rng.normal(0.5, 1.0 + 3.0 * (t > steps // 2), num_envs)
        term, trunc = rng.random(num_envs) < 0.05, rng.random(num_envs) < 0.03
        if t % 37 == 36:
            trunc[:] = True
        yield reward, term, trunc


@pytest.mark.parametrize("num_envs", [1, 5, 64])
def test_return_scale_matches_a_float64_numpy_reimplementation(num_envs):
    scale, ref = ReturnScale(num_envs, gamma=0.97), _NumpyReturnScale(num_envs, 0.97)
    probe = torch.randn(9, dtype=torch.float64)
    for reward, term, trunc in _episode_stream(num_envs, 300, seed=num_envs):
        scale.update_(torch.from_numpy(reward).float(), torch.from_numpy(term), torch.from_numpy(trunc).float())
        ref.update(reward.astype(np.float32).astype(np.float64), term, trunc)
        np.testing.assert_allclose(scale.returns.numpy(), ref.g, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(scale.return_max.item(), ref.g_abs_max, rtol=1e-12)
        np.testing.assert_allclose([scale.mean.item(), scale.var.item()], [ref.mean, ref.var], rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(scale(probe).numpy(), ref(probe.numpy()), rtol=1e-10)
    assert scale.count.item() == pytest.approx(300 * num_envs + 1e-4, rel=1e-15)


def test_return_scale_floor_of_the_return_max_takes_over():
    """Constant rewards: the returns' variance shrinks toward 0, so G_max / g_max decides the scale."""
    scale = ReturnScale(4, gamma=0.9, g_max=5.0)
    for _ in range(2000):
        scale.update_(torch.full((4,), 2.0), torch.zeros(4, dtype=torch.bool), torch.zeros(4, dtype=torch.bool))
    assert scale.return_max.item() == pytest.approx(20.0, rel=1e-6)
    assert scale.scale().item() == pytest.approx(4.0, rel=1e-6)
    assert scale(torch.tensor([2.0])).item() == pytest.approx(0.5, rel=1e-6)


def test_return_scale_never_divides_by_zero():
    scale = ReturnScale(3, gamma=0.99)
    torch.testing.assert_close(scale(torch.tensor([1.5, -2.0])), torch.tensor([1.5, -2.0]))  # before any update: 1
    zeros = torch.zeros(3)
    scale.update_(zeros, zeros, zeros)  # all-zero first step: returns, max and batch variance all 0
    out = scale(torch.tensor([1.0, 0.0]))
    assert torch.isfinite(out).all() and scale.scale().item() >= 1e-4
    assert out.dtype == torch.float32


def test_return_scale_checks_its_env_count():
    scale = ReturnScale(4, gamma=0.99)
    with pytest.raises(ValueError, match=r"reward must have shape \(4,\) \(one per env\), got \(3,\)"):
        scale.update_(torch.zeros(3), torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="truncated must have shape"):
        scale.update_(torch.zeros(4), torch.zeros(4), torch.zeros(4, 1))
    with pytest.raises(RuntimeError, match="size mismatch"):
        ReturnScale(5, gamma=0.99).load_state_dict(scale.state_dict())
    with pytest.raises(ValueError, match="num_envs >= 1"):
        ReturnScale(0, gamma=0.99)


def test_return_scale_state_dict_round_trip_continues_identically():
    stream = list(_episode_stream(6, 80, seed=3))
    a = ReturnScale(6, gamma=0.99)
    for reward, term, trunc in stream[:40]:
        a.update_(torch.from_numpy(reward), torch.from_numpy(term), torch.from_numpy(trunc))
    b = ReturnScale(6, gamma=0.99)
    b.load_state_dict(saved_and_loaded(a.state_dict()))
    assert set(b.state_dict()) == {"returns", "return_max", "mean", "var", "count"}
    for reward, term, trunc in stream[40:]:
        for s in (a, b):
            s.update_(torch.from_numpy(reward), torch.from_numpy(term), torch.from_numpy(trunc))
        probe = torch.from_numpy(reward).float()
        assert torch.equal(a(probe), b(probe))
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k


def test_return_scale_updates_in_place_inside_a_compiled_graph():
    """update_ and forward traced together (fullgraph, aot_eager): the buffers are written in place (addresses
    kept) and equal eager's exactly."""
    eager, traced = ReturnScale(5, gamma=0.95), ReturnScale(5, gamma=0.95)
    ptrs = [t.data_ptr() for t in traced.buffers()]

    def step(scale, reward, term, trunc):
        scale.update_(reward, term, trunc)
        return scale(reward)

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    for reward, term, trunc in _episode_stream(5, 12, seed=4):
        args = (torch.from_numpy(reward).float(), torch.from_numpy(term), torch.from_numpy(trunc))
        assert torch.equal(compiled(traced, *args), step(eager, *args))
    assert [t.data_ptr() for t in traced.buffers()] == ptrs
    for k, v in eager.state_dict().items():
        assert torch.equal(traced.state_dict()[k], v), k
