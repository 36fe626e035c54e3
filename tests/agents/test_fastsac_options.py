"""The FastSAC regime's options of SAC (holosoma's FastSAC): the LayerNorm + SiLU actor and critics
(``actor_network``, ``activation``), bf16 autocast of the networks (``amp``), and several updates from one call
(``Learner.update_many``, one CUDA graph on a GPU; here the graph calls are simulated on the CPU).

Cost: eager updates of small networks and one dynamo + AOTAutograd trace; no inductor compile.
"""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
import torch
from torch import nn

from fastsac.agents import ActionSpec, LearnerConfig, make_learner
from fastsac.agents.normed_networks import LayerNormActor
from fastsac.agents.runners import BlockRunner
from fastsac.agents.precision import run_autocast

from .helpers import simulate_cuda_graph_calls, trace_with_aot_eager
from .test_learner import ACT, NUM_ACTIONS, OBS, _batch, _flat_tensors

FASTSAC = LearnerConfig(hidden_sizes=(32, 16, 8), critic_hidden_sizes=(48, 24, 12), actor_network="layernorm",
                        critic_network="layernorm", activation="silu", critic="categorical", critic_bins=21,
                        critic_v_min=-20.0, critic_v_max=20.0, obs_norm=True, policy_delay=4, tau=0.125, gamma=0.97,
                        initial_alpha=0.001, target_entropy=0.0, log_std_min=-5.0, log_std_max=0.0, update="eager",
                        seed=3)  # fmt: skip


def _learner(cfg=FASTSAC, **changes):
    return make_learner(OBS, ACT, dataclasses.replace(cfg, **changes))


def _assert_same_state(a, b, exact=True):
    sa, sb = _flat_tensors(a.state_dict()), _flat_tensors(b.state_dict())
    assert sa.keys() == sb.keys()
    for key in sa:
        if exact:
            assert torch.equal(sa[key], sb[key]), key
        else:
            torch.testing.assert_close(sa[key], sb[key], msg=key)


# ------------------------------------------------------------------------------------------------ the networks
def test_the_fastsac_networks_are_layernorm_silu_with_zero_heads():
    learner = _learner()
    actor = learner.actor
    assert isinstance(actor, LayerNormActor)
    kinds = [type(m) for m in actor.trunk]
    assert kinds == [nn.Linear, nn.LayerNorm, nn.SiLU] * 3
    assert [m.out_features for m in actor.trunk if isinstance(m, nn.Linear)] == [32, 16, 8]
    for head in (actor.mean, actor.log_std):
        assert not head.weight.any() and not head.bias.any()
    # the first policy is the same everywhere: mean 0, log-std in the middle of [-5, 0] (the fused op's bound)
    mean, raw = learner._policy(torch.randn(6, OBS))
    assert not mean.any() and not raw.any()
    critic_kinds = [type(m) for m in learner.critic._template.modules()]  # one member's layers
    assert critic_kinds.count(nn.SiLU) == 3 and critic_kinds.count(nn.LayerNorm) == 3
    assert nn.SiLU in critic_kinds and nn.LayerNorm in critic_kinds and nn.ReLU not in critic_kinds


def test_the_layernorm_actor_matches_a_float64_reference_and_its_gradients_check():
    torch.manual_seed(0)
    actor = LayerNormActor(OBS, ACT, (12, 7), activation="silu").double()
    for head in (actor.mean, actor.log_std):  # away from the zero init, so the heads carry a gradient
        nn.init.normal_(head.weight)
        nn.init.normal_(head.bias)
    obs = torch.randn(5, OBS, dtype=torch.float64, requires_grad=True)
    h = obs
    for k in (0, 3):
        lin, ln = actor.trunk[k], actor.trunk[k + 1]
        z = h @ lin.weight.T + lin.bias
        z = (z - z.mean(-1, keepdim=True)) / torch.sqrt(z.var(-1, unbiased=False, keepdim=True) + ln.eps)
        z = z * ln.weight + ln.bias
        h = z * torch.sigmoid(z)  # SiLU
    mean, raw = actor(obs)
    torch.testing.assert_close(mean, h @ actor.mean.weight.T + actor.mean.bias, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(raw, h @ actor.log_std.weight.T + actor.log_std.bias, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(lambda x: actor(x), (obs,))


def test_an_mlp_actor_with_silu_has_no_layernorm_and_default_heads():
    learner = _learner(LearnerConfig(activation="silu", hidden_sizes=(16, 16), update="eager"))
    assert isinstance(learner.actor, LayerNormActor)
    assert [type(m) for m in learner.actor.trunk] == [nn.Linear, nn.SiLU] * 2
    assert learner.actor.mean.weight.any()
    assert nn.SiLU in {type(m) for m in learner.critic._template.modules()}


def test_fastsac_learners_update_and_act():
    learner = _learner()
    for step in range(4):
        learner.update(_batch(16, seed=step))
    metrics = learner.metrics()
    assert metrics["num_updates"] == 4 and all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    assert learner.act(torch.randn(3, OBS)).shape == (3, ACT)


def test_the_options_are_sac_only_and_refused_where_they_do_not_apply():
    with pytest.raises(ValueError, match="actor_network, activation are implemented by agent sac only, not 'crossq'"):
        LearnerConfig(actor_network="layernorm", activation="silu").with_agent("crossq").__post_init__()
    with pytest.raises(ValueError, match="amp is implemented by agent sac only, not 'flashsac'"):
        dataclasses.replace(LearnerConfig().with_agent("flashsac"), amp="bf16")
    with pytest.raises(ValueError, match="activation must be one of relu, silu, got 'gelu'"):
        LearnerConfig(activation="gelu")
    with pytest.raises(ValueError, match="discrete SAC has ReLU MLPs in float32"):
        make_learner(OBS, ActionSpec(True, NUM_ACTIONS), LearnerConfig(actor_network="layernorm"))
    reason = type(_learner(update="eager")).native_unsupported(
        LearnerConfig(activation="silu"), torch.device("cpu"))
    assert reason is not None and "ReLU MLP networks" in reason and "activation='silu'" in reason


# ------------------------------------------------------------------------------------------------------- amp
def test_bf16_amp_on_a_cpu_falls_back_loudly_to_float32(monkeypatch):
    monkeypatch.delenv("FASTSAC_STRICT", raising=False)
    with pytest.warns(UserWarning, match=r"bf16 autocast of the networks .*the learner is on cpu"):
        amp = _learner(amp="bf16")
    assert amp.amp_dtype is None and [f.kind for f in amp.fallbacks] == ["amp"]
    plain = _learner()
    for step in range(3):
        amp.update(_batch(16, seed=step))
        plain.update(_batch(16, seed=step))
    _assert_same_state(amp, plain)  # float32, bit for bit


def test_autocast_networks_give_float32_outputs_and_gradients_close_to_float32():
    """The autocast path itself, run on the CPU (torch's CPU autocast has bfloat16): the networks' outputs come
    back float32, the state stays float32, and one update's gradients (Adam's first moments) and losses are those
    of float32 to bf16's precision (not the parameters: a first Adam step is ~lr * sign(grad))."""
    linear = nn.Linear(4, 3)
    out = run_autocast(torch.bfloat16, torch.device("cpu"), lambda x: (linear(x), linear(x) * 2), torch.randn(2, 4))
    assert all(t.dtype == torch.float32 for t in out)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert linear(torch.randn(2, 4)).dtype == torch.bfloat16  # what run_autocast casts back
    bf16, plain = _learner(policy_delay=1), _learner(policy_delay=1)
    bf16.amp_dtype = torch.bfloat16
    bf16.update(_batch(64))
    plain.update(_batch(64))
    assert all(t.dtype != torch.bfloat16 for t in _flat_tensors(bf16.state_dict()).values())
    moments = [(f"{name}[{i}]", a, b) for name in ("critic_optim", "actor_optim")
               for i, (a, b) in enumerate(zip(getattr(bf16, name).exp_avg, getattr(plain, name).exp_avg))]
    assert any(not torch.equal(a, b) for _, a, b in moments)  # bf16 matrix products really ran
    for name, a, b in moments:
        assert (a - b).abs().max() <= 0.05 * b.abs().max() + 1e-9, name
    got, want = bf16.metrics(), plain.metrics()
    for key in ("critic_loss", "actor_loss"):
        assert abs(got[key] - want[key]) <= 0.02 * abs(want[key]), key


# ------------------------------------------------------------------------------------------- several updates
def _block_batch(k, size, seed=0):
    parts = [_batch(size, seed=seed + i) for i in range(k)]
    return tuple(torch.cat(ts) for ts in zip(*parts)), parts


@pytest.mark.parametrize("cfg", [FASTSAC, LearnerConfig(hidden_sizes=(16, 16), policy_delay=2, update="native")],
                         ids=["fastsac_eager", "sac_native"])
def test_update_many_is_k_updates_bit_for_bit(cfg):
    """k = 3 with policy delay 4 (FastSAC) or 2: the actor's updates fall at other places in every block."""
    many, single = _learner(cfg), _learner(cfg)
    for block in range(3):
        batch, parts = _block_batch(3, 16, seed=10 * block)
        many.update_many(batch, 3)
        for part in parts:
            single.update(part)
    assert many.num_updates == single.num_updates == 9
    _assert_same_state(many, single)
    assert many.metrics() == single.metrics()


def test_update_many_compiled_is_the_single_compiled_update():
    """The block runs the learner's own compiled update: no graph beyond the single update's two variants."""
    torch._dynamo.reset()  # graphs that other tests compiled for the same update would be reused (and not counted)
    eager, traced = _learner(), trace_with_aot_eager(_learner(update="compile"))
    stats = torch._dynamo.utils.counters["stats"]
    before = stats["unique_graphs"]
    for block in range(2):
        batch, _ = _block_batch(4, 16, seed=block)
        eager.update_many(batch, 4)
        traced.update_many(batch, 4)
    assert stats["unique_graphs"] - before == 2  # with and without the actor's step (policy delay 4)
    assert traced.fallbacks == [] and traced.runner.kind == "compile"
    _assert_same_state(eager, traced, exact=False)


def test_update_many_refuses_what_it_cannot_split():
    learner, untouched = _learner(), _learner()
    batch, _ = _block_batch(3, 4)
    for k in (0, 5, 2.5, True):
        with pytest.raises(ValueError, match="k must be an int >= 1 dividing the 12 samples"):
            learner.update_many(batch, k)
    with pytest.raises(ValueError, match="obs must be"):
        learner.update_many((batch[0][:, :2], *batch[1:]), 3)
    _assert_same_state(learner, untouched)


class _SimulatedGraph:
    """A CUDA graph on CPU tensors: the capture records the call made inside it; a replay makes it again."""

    recording: _SimulatedGraph | None = None
    captured = 0

    def __init__(self):
        self.call = None

    def replay(self):
        fn, args = self.call
        fn(*args)


@contextlib.contextmanager
def _simulated_capture(graph, **_):
    _SimulatedGraph.recording = graph
    _SimulatedGraph.captured += 1
    try:
        yield
    finally:
        _SimulatedGraph.recording = None


def test_a_block_is_captured_once_per_flag_pattern_and_replays_as_k_updates(monkeypatch):
    """On CUDA a block is one captured graph per pattern of actor flags (k = 2, policy delay 4: two patterns,
    (True, False) and (False, False)); the replays leave the learner where k single updates do."""
    simulate_cuda_graph_calls(monkeypatch, _SimulatedGraph)
    monkeypatch.setattr(torch.cuda, "graph", _simulated_capture)
    graphed, single = _learner(), _learner()
    # the block runner of a learner on a CUDA device, built on this CPU learner's own runner
    graphed._block_runner = BlockRunner(graphed.runner, graphed.device, graphed._mutable_tensors, graphed.fallbacks)
    inner = graphed._block_runner.graph._run_inner

    def recording(buffers, flag):
        out = inner(buffers, flag)
        if _SimulatedGraph.recording is not None:
            _SimulatedGraph.recording.call = (inner, (buffers, flag))
        return out

    graphed._block_runner.graph._run_inner = recording
    captured_before = _SimulatedGraph.captured
    for block in range(4):
        batch, parts = _block_batch(2, 8, seed=block)
        graphed.update_many(batch, 2)
        for part in parts:
            single.update(part)
    assert _SimulatedGraph.captured - captured_before == 2 and graphed._block_runner.graphed
    assert graphed._block_runner.graph.num_graphs == 2 and graphed.fallbacks == []
    _assert_same_state(graphed, single)


# -------------------------------------------------------------------------------------------- asymmetric critics
def test_asymmetric_sac_acts_on_the_policys_features_and_criticizes_on_all():
    """policy_obs_dim 3 of 5: the actor is 3 wide and ignores the last 2 features; the critics read them."""
    learner = make_learner(OBS, ACT, LearnerConfig(hidden_sizes=(16, 16), update="auto"), policy_obs_dim=3)
    assert learner.actor.trunk[0].in_features == 3 and learner.runner.kind == "compile"
    assert "asymmetric critics" in learner.update_choice.reason  # no native update for it
    obs = torch.randn(4, OBS)
    changed = obs.clone()
    changed[:, 3:] += 1.0
    assert torch.equal(learner.act(obs, deterministic=True), learner.act(changed, deterministic=True))
    action = torch.zeros(4, ACT)
    assert not torch.equal(learner.critic(obs, action), learner.critic(changed, action))
    eager = make_learner(OBS, ACT, LearnerConfig(hidden_sizes=(16, 16), update="eager"), policy_obs_dim=3)
    for step in range(2):
        eager.update(_batch(8, seed=step))
    assert eager.metrics()["num_updates"] == 2
    with pytest.raises(ValueError, match="update 'native' cannot run here: the critics see privileged"):
        make_learner(OBS, ACT, LearnerConfig(update="native"), policy_obs_dim=3)
    with pytest.raises(ValueError, match="asymmetric critics .* are built for continuous SAC, not CrossQLearner"):
        make_learner(OBS, ACT, LearnerConfig().with_agent("crossq"), policy_obs_dim=3)
    with pytest.raises(ValueError, match=r"policy_obs_dim must be in \(0, obs_dim=5\), got 5"):
        make_learner(OBS, ACT, LearnerConfig(), policy_obs_dim=OBS)
