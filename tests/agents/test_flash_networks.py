"""FlashSAC's networks (fastsac.agents.flash_networks) against independent float64 formulas: batch norm against
torch.nn.functional.batch_norm (running statistics included), RMS norm against F.rms_norm, the block and the
networks against hand-written compositions, the stacked critic against separately run members, the projection
against FlashSAC's equations, and one compiled step (forward, gradients, a step, the projection) against eager."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from fastsac.agents.flash_networks import (FlashActor, FlashBatchNorm, FlashBlock, FlashCritic, FlashRMSNorm,
                                           FlashTrunk, UnitLinear)
from fastsac.agents.runners.implementations import autograd_ops_config

f64 = torch.float64


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _randomize_(module, seed, scale=0.5):
    """Every parameter and running statistic moved off its initial value (so no test passes on ones and zeros)."""
    g = _gen(seed)
    with torch.no_grad():
        for name, t in [*module.named_parameters(), *module.named_buffers()]:
            if name.endswith("support"):
                continue
            noise = torch.randn(t.shape, generator=g, dtype=f64).to(t.dtype)
            t.copy_(t.abs() + 0.5 + scale * noise.abs() if name.endswith("running_var") else t + scale * noise)
    return module


def _bn_ref(x, p, prefix, training, state):
    """F.batch_norm on clones of the running statistics kept in ``state`` (updated like the layer's)."""
    mean, var = state[prefix + "running_mean"], state[prefix + "running_var"]
    return F.batch_norm(x, mean, var, p[prefix + "weight"], p[prefix + "bias"], training=training, momentum=0.01,
                        eps=1e-5)


def _trunk_ref(x, p, state, training, blocks, prefix="trunk."):
    """A FlashSAC trunk written out with functional ops (one member, float64)."""
    h = F.linear(_bn_ref(x, p, prefix + "input_norm.", training, state), p[prefix + "embed.weight"])
    for i in range(blocks):
        b = f"{prefix}blocks.{i}."
        inner = torch.relu(_bn_ref(F.linear(h, p[b + "w1.weight"]), p, b + "norm1.", training, state))
        h = h + torch.relu(_bn_ref(F.linear(inner, p[b + "w2.weight"]), p, b + "norm2.", training, state))
    return F.rms_norm(h, (h.shape[-1],), p[prefix + "post_norm.weight"], eps=1e-6)


def _member_state(module, m=None):
    """Float64 clones of the state, member ``m``'s slice of every stacked entry (support excluded)."""
    return {k: (v if m is None else v[m]).detach().clone().to(f64) for k, v in module.state_dict().items()
            if k != "support"}


# ---------------------------------------------------------------------------------------------------- layers


@pytest.mark.parametrize("members", [None, 3])
@pytest.mark.parametrize("batch", [2, 7, 64])
def test_batch_norm_matches_functional_batch_norm(members, batch):
    d = 5
    bn = _randomize_(FlashBatchNorm(d, members).double(), 1)
    ref = _member_state(bn)
    g = _gen(2)
    for step in range(4):
        shape = (batch, d) if members is None else (members, batch, d)
        x = torch.randn(shape, generator=g, dtype=f64) * 3 + 1
        training = step != 2
        y = bn(x, training)
        for m in [None] if members is None else range(members):
            sel = (lambda t: t) if m is None else (lambda t, m=m: t[m])
            state = {k: sel(v) for k, v in ref.items()}  # views: F.batch_norm updates ref in place
            want = _bn_ref(sel(x), {k: sel(v) for k, v in ref.items()}, "", training, state)
            torch.testing.assert_close(sel(y), want, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(bn.running_mean, ref["running_mean"], rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(bn.running_var, ref["running_var"], rtol=1e-12, atol=1e-14)


def test_batch_norm_updates_in_place_only_in_training_mode():
    bn = _randomize_(FlashBatchNorm(4), 0)
    ptrs = (bn.running_mean.data_ptr(), bn.running_var.data_ptr())
    before = [t.clone() for t in (bn.running_mean, bn.running_var)]
    bn(torch.randn(8, 4))
    assert all(torch.equal(a, b) for a, b in zip(before, (bn.running_mean, bn.running_var)))
    bn(torch.randn(8, 4), training=True)
    assert not torch.equal(before[0], bn.running_mean) and not torch.equal(before[1], bn.running_var)
    assert (bn.running_mean.data_ptr(), bn.running_var.data_ptr()) == ptrs


def test_batch_norm_training_needs_two_rows():
    with pytest.raises(ValueError, match="at least 2 rows"):
        FlashBatchNorm(3)(torch.randn(1, 3), training=True)
    assert FlashBatchNorm(3)(torch.randn(1, 3)).shape == (1, 3)  # evaluation mode takes one row (acting)


@pytest.mark.parametrize("members", [None, 2])
def test_rms_norm_matches_functional_rms_norm(members):
    norm = _randomize_(FlashRMSNorm(6, members).double(), 3)
    x = torch.randn((9, 6) if members is None else (members, 9, 6), generator=_gen(4), dtype=f64)
    want = (F.rms_norm(x, (6,), norm.weight, eps=1e-6) if members is None else
            torch.stack([F.rms_norm(x[m], (6,), norm.weight[m], eps=1e-6) for m in range(members)]))
    torch.testing.assert_close(norm(x), want, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("training", [True, False])
def test_block_matches_hand_written_composition(training):
    width = 3
    block = _randomize_(FlashBlock(width).double(), 5)
    p = _member_state(block)
    x = torch.randn(11, width, generator=_gen(6), dtype=f64)
    h1 = F.linear(x, p["w1.weight"])
    bn1 = F.batch_norm(h1, p["norm1.running_mean"], p["norm1.running_var"], p["norm1.weight"], p["norm1.bias"],
                       training=training, momentum=0.01, eps=1e-5)
    h2 = F.linear(torch.relu(bn1), p["w2.weight"])
    bn2 = F.batch_norm(h2, p["norm2.running_mean"], p["norm2.running_var"], p["norm2.weight"], p["norm2.bias"],
                       training=training, momentum=0.01, eps=1e-5)
    torch.testing.assert_close(block(x, training), x + torch.relu(bn2), rtol=1e-12, atol=1e-12)
    for k in ("norm1.running_mean", "norm1.running_var", "norm2.running_mean", "norm2.running_var"):
        torch.testing.assert_close(block.state_dict()[k], p[k], rtol=1e-12, atol=1e-14)


def test_unit_linear_initialises_members_independently_with_unit_rows():
    torch.manual_seed(0)
    lin = UnitLinear(8, 20, members=3)
    rows = torch.linalg.vector_norm(lin.weight.double(), dim=-1)
    assert lin.weight.shape == (3, 20, 8)
    assert not torch.allclose(lin.weight[0], lin.weight[1])
    x = torch.randn(3, 5, 8)
    torch.testing.assert_close(lin(x), torch.stack([x[m] @ lin.weight[m].T for m in range(3)]))
    assert rows.min() > 0.0  # orthogonal init: columns orthonormal, rows nonzero before projection
    with pytest.raises(ValueError, match="members"):
        UnitLinear(2, 2, members=0)


# ---------------------------------------------------------------------------------------------------- networks


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize(("obs_dim", "act", "width", "blocks", "batch"), [(17, 6, 16, 2, 32), (3, 1, 8, 1, 2)])
def test_actor_matches_hand_written_network(training, obs_dim, act, width, blocks, batch):
    actor = _randomize_(FlashActor(obs_dim, act, width, blocks).double(), 7)
    p = _member_state(actor)
    obs = torch.randn(batch, obs_dim, generator=_gen(8), dtype=f64) * 2
    mean, raw_log_std = actor(obs, training)
    h = _trunk_ref(obs, p, p, training, blocks)
    torch.testing.assert_close(mean, F.linear(h, p["mean.weight"], p["mean_bias"]), rtol=1e-11, atol=1e-11)
    torch.testing.assert_close(raw_log_std, F.linear(h, p["log_std.weight"], p["log_std_bias"]), rtol=1e-11,
                               atol=1e-11)
    for k, v in actor.state_dict().items():
        torch.testing.assert_close(v, p[k], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("members", [1, 2, 3])
def test_stacked_critic_equals_separate_members(training, members):
    """Each member of the stacked critic: the same logits, running statistics and gradients as a network built on
    its own (plain trunk and head) from that member's weights."""
    obs_dim, act, width, blocks, bins, batch = 5, 2, 8, 2, 11, 13
    critic = _randomize_(FlashCritic(obs_dim + act, width, blocks, bins, -3.0, 4.0, members).double(), 9)
    g = _gen(10)
    obs, action = torch.randn(batch, obs_dim, generator=g, dtype=f64), torch.randn(batch, act, generator=g, dtype=f64)
    before = copy.deepcopy(critic)
    logits = critic(obs, action, training)
    assert logits.shape == (members, batch, bins)
    weights = torch.randn(logits.shape, generator=g, dtype=f64)
    grads = torch.autograd.grad((logits * weights).sum(), list(critic.parameters()))
    grads = dict(zip([n for n, _ in critic.named_parameters()], grads))
    for m in range(members):
        trunk = FlashTrunk(obs_dim + act, width, blocks).double()
        trunk.load_state_dict({k.removeprefix("trunk."): v[m] for k, v in before.state_dict().items()
                               if k.startswith("trunk.")})
        head_w = before.head.weight[m].detach().clone().requires_grad_(True)
        head_b = before.head_bias[m].detach().clone().requires_grad_(True)
        want = F.linear(trunk(torch.cat([obs, action], -1), training), head_w, head_b)
        torch.testing.assert_close(logits[m], want, rtol=1e-12, atol=1e-12)
        for k, v in trunk.state_dict().items():
            torch.testing.assert_close(critic.state_dict()["trunk." + k][m], v, rtol=1e-12, atol=1e-14)
        mine = list(trunk.named_parameters()) + [("head.weight", head_w), ("head_bias", head_b)]
        member_grads = torch.autograd.grad((want * weights[m]).sum(), [t for _, t in mine])
        for (name, _), grad in zip(mine, member_grads):
            key = name if name.startswith("head") else "trunk." + name
            torch.testing.assert_close(grads[key][m], grad, rtol=1e-10, atol=1e-12)


def test_q_values_against_float64_expectation():
    critic = FlashCritic(4, width=8, blocks=1, num_bins=7, v_min=-2.0, v_max=3.0, members=2)
    logits = torch.randn(2, 5, 7, generator=_gen(11)) * 3
    l64 = logits.double()
    support = torch.tensor([-2 + 5 * k / 6 for k in range(7)], dtype=f64)
    want = (torch.exp(l64 - l64.logsumexp(-1, keepdim=True)) * support).sum(-1)
    torch.testing.assert_close(critic.support, support.float())
    torch.testing.assert_close(critic.q_values(logits).double(), want, rtol=2e-6, atol=2e-6)
    critic = critic.double()  # float64 throughout (the support keeps its float32 rounding of the bin values)
    exact = (torch.exp(l64 - l64.logsumexp(-1, keepdim=True)) * critic.support).sum(-1)
    torch.testing.assert_close(critic.q_values(l64), exact, rtol=1e-14, atol=1e-14)


def test_shapes_and_clear_errors_for_wrong_inputs():
    actor, critic = FlashActor(5, 2, width=8), FlashCritic(7, width=8, num_bins=5, members=3)
    mean, raw = actor(torch.randn(1, 5))  # batch 1 in evaluation mode (acting)
    assert mean.shape == raw.shape == (1, 2)
    assert critic(torch.randn(4, 5), torch.randn(4, 2), training=True).shape == (3, 4, 5)
    with pytest.raises(ValueError, match="obs has 6 features, the network was built for 5"):
        actor(torch.randn(3, 6))
    with pytest.raises(ValueError, match="obs must be"):
        actor(torch.randn(5))
    with pytest.raises(ValueError, match=r"cat\(obs, action\) has 8 features, the network was built for 7"):
        critic(torch.randn(4, 5), torch.randn(4, 3))
    with pytest.raises(ValueError, match="one batch size"):
        critic(torch.randn(4, 5), torch.randn(3, 2))
    with pytest.raises(ValueError, match="num_bins"):
        FlashCritic(7, num_bins=1)


def test_parameter_counts_for_halfcheetah_sizes():
    """obs 17, action 6: the sizes the module docstring states (buffers not counted)."""
    def count(net):
        return sum(p.numel() for p in net.parameters())

    def trunk(i, w, b):  # input BN, embedding, per block W1, W2 and two BNs, RMS gain
        return 2 * i + i * w + b * (8 * w * w + 2 * 4 * w + 2 * w) + w

    assert count(FlashActor(17, 6)) == trunk(17, 128, 2) + 2 * (128 * 6 + 6) == 268_590
    assert count(FlashCritic(23)) == 2 * (trunk(23, 256, 2) + 256 * 101 + 101) == 2_171_686


# ---------------------------------------------------------------------------------------------------- projection


def _projection_ref(net):
    """FlashSAC's normalize_parameters written out in float64 from the module's parameters by name."""
    out = {}
    sd = {k: v.double() for k, v in net.state_dict().items()}
    for k, v in sd.items():
        if k.endswith(".weight") and v.dim() >= 2 and "norm" not in k:  # bias-free linear weights
            out[k] = F.normalize(v, dim=-1, eps=1e-8)
        elif "norm" in k and k.endswith("weight"):
            prefix, d = k[: -len("weight")], v.shape[-1]
            bias = sd.get(prefix + "bias", torch.zeros_like(v))
            factor = math.sqrt(d) / torch.sqrt((v * v + bias * bias).sum(-1, keepdim=True) + 1e-8)
            out[k] = v * factor
            if prefix + "bias" in sd:
                out[prefix + "bias"] = bias * factor
    return out


@pytest.mark.parametrize("make", [lambda: FlashActor(6, 3, width=8, blocks=2),
                                  lambda: FlashCritic(9, width=8, blocks=2, num_bins=5, members=3)])
def test_project_matches_flashsac_equations_and_is_idempotent(make):
    net = _randomize_(make().double(), 12, scale=2.0)
    want = _projection_ref(net)
    free = {k: v.clone() for k, v in net.state_dict().items() if k not in want}
    ptrs = {n: p.data_ptr() for n, p in net.named_parameters()}
    net.project_()
    sd = net.state_dict()
    assert {n: p.data_ptr() for n, p in net.named_parameters()} == ptrs
    assert len(want) == len(net._units) + 2 * len(net._batch_norms) + len(net._rms_norms)
    for k, v in want.items():
        torch.testing.assert_close(sd[k], v, rtol=1e-13, atol=1e-14)
    for k, v in free.items():  # heads' biases, the categorical bias, running statistics
        assert torch.equal(sd[k], v), k
    for m in net._units:
        torch.testing.assert_close(torch.linalg.vector_norm(m.weight, dim=-1),
                                   torch.ones(m.weight.shape[:-1], dtype=f64), rtol=1e-14, atol=1e-14)
    # The 1e-8 under the rsqrt leaves a squared sum S at d S / (S + 1e-8): relative 1e-8 / S below d (S >= 1 here).
    for m in net._batch_norms:
        d = m.weight.shape[-1]
        torch.testing.assert_close((m.weight**2 + m.bias**2).sum(-1), torch.full(m.weight.shape[:-1], float(d),
                                   dtype=f64), rtol=1e-8, atol=0.0)
    for m in net._rms_norms:
        d = m.weight.shape[-1]
        torch.testing.assert_close((m.weight**2).sum(-1), torch.full(m.weight.shape[:-1], float(d), dtype=f64),
                                   rtol=1e-8, atol=0.0)
    once = {k: v.clone() for k, v in net.state_dict().items()}
    net.project_()  # again: unit rows stay (to rounding), the gains move by the factor sqrt(d / (d + 1e-8)) only
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, once[k], rtol=1e-9, atol=1e-15)


def test_construction_projects_and_keeps_heads_free():
    actor, critic = FlashActor(4, 2, width=8), FlashCritic(6, width=8, num_bins=5)
    for net in (actor, critic):
        for m in net._units:
            torch.testing.assert_close(torch.linalg.vector_norm(m.weight, dim=-1), torch.ones(m.weight.shape[:-1]))
        for m in net._batch_norms:  # gain 1, bias 0 has squared sum d already: unchanged but for the 1e-8
            torch.testing.assert_close(m.weight, torch.ones_like(m.weight), rtol=1e-7, atol=0.0)
            assert torch.equal(m.bias, torch.zeros_like(m.bias))
    assert torch.equal(actor.mean_bias, torch.zeros(2)) and torch.equal(critic.head_bias, torch.zeros(2, 5))
    copied = copy.deepcopy(critic)  # a target network: its projection lists point at its own modules
    assert copied._units[0] is copied.trunk.embed and copied._units[0] is not critic.trunk.embed


# ---------------------------------------------------------------------------------------------------- compiled


def _step(actor, critic, obs, action, lr):
    """A FlashSAC-shaped step: the critic in training mode (its loss), the actor's loss through the critic in
    evaluation mode, gradients by autograd.grad, plain SGD, then both projections."""
    logits = critic(obs, action, training=True)
    critic_loss = -(torch.log_softmax(logits, -1) * torch.softmax(logits.detach() * 0.5, -1)).sum(-1).mean()
    mean, raw = actor(obs, training=True)
    q = critic.q_values(critic(obs, torch.tanh(mean + 0.1 * raw), training=False)).min(0).values
    actor_loss = -q.mean()
    cp, ap = list(critic.parameters()), list(actor.parameters())
    grads = torch.autograd.grad(critic_loss, cp) + torch.autograd.grad(actor_loss, ap)
    with torch.no_grad():
        torch._foreach_add_(cp + ap, grads, alpha=-lr)
    critic.project_()
    actor.project_()
    return critic_loss.detach(), actor_loss.detach()


@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_forward_backward_project_compiled_fullgraph_matches_eager(backend):
    """One graph (fullgraph=True) for two steps of forward, backward, update and projection, against eager from
    the same start. Measured float32 maximum differences over every state entry and loss: aot_eager 0 (the same
    kernels); inductor 2.4e-7 absolute after two steps (fused, reordered reductions; ~70 s to compile on 2 CPU
    cores, hence slow). Tolerance 2e-5 leaves ~100x room."""
    torch.manual_seed(0)
    actor, critic = FlashActor(5, 2, width=8, blocks=2), FlashCritic(7, width=8, blocks=2, num_bins=9)
    actor2, critic2 = copy.deepcopy(actor), copy.deepcopy(critic)
    g = _gen(13)
    batches = [(torch.randn(16, 5, generator=g), torch.rand(16, 2, generator=g) * 2 - 1) for _ in range(2)]
    compiled = torch.compile(_step, fullgraph=True, backend=backend)
    torch._dynamo.reset()
    for obs, action in batches:
        want = _step(actor, critic, obs, action, 0.05)
        with autograd_ops_config():
            got = compiled(actor2, critic2, obs, action, 0.05)
        torch.testing.assert_close(got, want, rtol=0.0, atol=2e-5)
    for a, b in ((actor, actor2), (critic, critic2)):
        for (k, v), (_, w) in zip(a.state_dict().items(), b.state_dict().items()):
            torch.testing.assert_close(w, v, rtol=0.0, atol=2e-5, msg=k)
