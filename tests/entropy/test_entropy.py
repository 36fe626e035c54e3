"""Entropy modules: exact losses and gradients, the direction alpha moves, checkpoints, schedules and modes,
optimizers and devices, compiled use, and argument checks."""

import functools
import inspect
import io
import math

import pytest
import torch

import fastsac
from fastsac.entropy import (
    ConstantSchedule,
    CosineSchedule,
    EntropyController,
    EntropyModule,
    EntropyModuleDiscrete,
    EntropyParameters,
    ExponentialSchedule,
    LinearSchedule,
)


def f32(x: float) -> float:
    """``x`` rounded to float32, as a Python float."""
    return torch.tensor(x, dtype=torch.float32).item()


def roundtrip(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def gaussian_log_probs(gen, batch, action_dim, std):
    """Joint log-probabilities of samples from N(0, std^2 I): entropy is action_dim * (0.5 log(2 pi e) + log std)."""
    x = std * torch.randn(batch, action_dim, generator=gen)
    return torch.distributions.Normal(0.0, std).log_prob(x).sum(-1)


def categorical(gen, batch, action_dim, temperature):
    logits = torch.randn(batch, action_dim, generator=gen) / temperature
    return logits.softmax(-1), logits.log_softmax(-1)


# ---- surface -------------------------------------------------------------------------------------------------
def test_reexported_from_fastsac():
    assert fastsac.EntropyModule is EntropyModule
    assert fastsac.EntropyModuleDiscrete is EntropyModuleDiscrete
    assert fastsac.EntropyParameters is EntropyParameters


@pytest.mark.parametrize("cls", [EntropyModule, EntropyModuleDiscrete])
def test_velora_signature(cls):
    params = list(inspect.signature(cls).parameters.values())
    assert params[0].name == "action_dim" and params[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[1:])
    defaults = {p.name: p.default for p in params[1:5]}
    assert defaults == {"initial_alpha": 1.0, "optim": torch.optim.Adam, "lr": 3e-4, "device": None}
    with pytest.raises(TypeError):
        cls(2, 0.5)  # keyword-only after action_dim


@pytest.mark.parametrize("cls", [EntropyModule, EntropyModuleDiscrete])
def test_attributes_repr_config(cls):
    m = cls(2, initial_alpha=0.5, lr=1e-3, device="cpu")
    assert m.action_dim == 2 and m.initial_alpha == 0.5 and m.lr == 1e-3 and m.device == torch.device("cpu")
    assert isinstance(m.log_alpha, torch.nn.Parameter) and m.log_alpha.shape == () and m.log_alpha.requires_grad
    assert m.log_alpha.item() == f32(math.log(0.5))
    assert torch.equal(m.alpha, m.log_alpha.exp())
    assert isinstance(m.optim, torch.optim.Adam) and m.optim.param_groups[0]["params"] == [m.log_alpha]
    assert isinstance(m.target, float)
    assert m.config() == EntropyParameters(lr=1e-3, initial_alpha=0.5, target=m.target)
    assert m.config().model_dump() == {"lr": 1e-3, "initial_alpha": 0.5, "target": m.target}
    assert repr(cls(2)) == f"{cls.__name__}(action_dim=2, initial_alpha=1.0, optim=Adam, lr=0.0003, device=cpu)"
    assert m.learnable and m.alpha_mode == "learned" and m.schedule_position == 0


@pytest.mark.parametrize("action_dim", [1, 2, 6, 17])
def test_default_targets(action_dim):
    c = EntropyModule(action_dim)
    assert c.target == -float(action_dim)
    d = EntropyModuleDiscrete(action_dim)
    assert d.target == pytest.approx(0.98 * math.log(action_dim), rel=1e-15)
    if action_dim > 1:
        assert d.target > 0  # Velora's 0.98 * log(1 / action_dim) is negative
    for m in (c, d):
        assert m.target_tensor.dtype == torch.float32 and m.target_tensor.shape == ()
        assert m.target_tensor.item() == f32(m.target)


def test_target_overrides():
    assert EntropyModule(4, target_entropy=-1.5).target == -1.5
    assert EntropyModuleDiscrete(5, target_entropy=0.3).target == 0.3
    assert EntropyModuleDiscrete(5, target_entropy_scale=0.5).target == pytest.approx(0.5 * math.log(5), rel=1e-15)
    assert EntropyModuleDiscrete(5, target_entropy=LinearSchedule(1.0, 0.2, 10)).target == 1.0


# ---- exact losses and gradients --------------------------------------------------------------------------------
def test_continuous_loss_by_hand():
    m = EntropyModule(2, initial_alpha=2.0, optim=torch.optim.SGD, lr=0.1)
    log_probs = torch.tensor([-1.0, -3.0], requires_grad=True)
    loss = m.compute_loss(log_probs)
    # mean(log_probs + target) = mean(-3, -5) = -4, so loss = -log(2) * -4 and d loss / d log_alpha = +4
    la = f32(math.log(2.0))
    assert loss.shape == () and loss.item() == pytest.approx(4 * la, rel=1e-7)
    m.gradient_step(loss)
    assert m.log_alpha.grad.item() == 4.0
    assert log_probs.grad is None  # no gradient reaches the policy
    assert m.log_alpha.item() == pytest.approx(la - 0.1 * 4.0, rel=1e-7)  # entropy 2 > target -2: alpha falls


@pytest.mark.parametrize("shape", [(1,), (7,), (256, 1), (3, 5)])
@pytest.mark.parametrize("action_dim", [1, 3, 8])
def test_continuous_loss_and_grad_vs_float64(shape, action_dim):
    gen = torch.Generator().manual_seed(hash((shape, action_dim)) % 2**31)
    alpha0 = float(torch.rand((), generator=gen)) * 3 + 0.05
    m = EntropyModule(action_dim, initial_alpha=alpha0)
    lp = torch.randn(shape, generator=gen) * 4 - 1
    loss = m.compute_loss(lp)
    (grad,) = torch.autograd.grad(loss, m.log_alpha)
    la64 = m.log_alpha.detach().double()
    lp64 = lp.double()
    ref = -(la64 * (lp64 + m.target)).mean()
    ref_grad = -(lp64 + m.target).mean()
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss.double(), ref, rtol=2e-6, atol=1e-6)
    torch.testing.assert_close(grad.double(), ref_grad, rtol=2e-6, atol=1e-6)
    # float64 inputs are reduced in float64: agrees to float64 rounding
    loss64 = m.compute_loss(lp64)
    assert loss64.dtype == torch.float64
    torch.testing.assert_close(loss64, ref, rtol=1e-13, atol=1e-13)


def test_continuous_low_precision_inputs_reduced_in_float32():
    m = EntropyModule(3, initial_alpha=0.7)
    lp = (torch.randn(4096, generator=torch.Generator().manual_seed(1)) - 2).to(torch.bfloat16)
    loss = m.compute_loss(lp)
    ref = -(m.log_alpha.detach().double() * (lp.double() + m.target)).mean()
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss.double(), ref, rtol=1e-6, atol=1e-6)


def test_discrete_loss_by_hand():
    m = EntropyModuleDiscrete(2, initial_alpha=1.5, optim=torch.optim.SGD, lr=0.1)
    probs = torch.tensor([[0.5, 0.5], [1.0, 0.0]], requires_grad=True)
    log_probs = torch.tensor([[math.log(0.5)] * 2, [0.0, -math.inf]], requires_grad=True)
    loss = m.compute_loss(probs, log_probs)
    h = math.log(2) / 2  # row entropies log 2 and 0 (0 * log 0 = 0)
    target = 0.98 * math.log(2)
    la = f32(math.log(1.5))
    assert loss.shape == () and math.isfinite(loss.item())
    assert loss.item() == pytest.approx(la * (h - f32(target)), rel=1e-6)
    m.gradient_step(loss)
    assert m.log_alpha.grad.item() == pytest.approx(h - target, rel=1e-6)
    assert probs.grad is None and log_probs.grad is None
    assert m.log_alpha.item() > la  # entropy below target: alpha rises


@pytest.mark.parametrize("batch,action_dim", [(1, 2), (5, 3), (64, 18), (2, 1)])
def test_discrete_loss_and_grad_vs_float64(batch, action_dim):
    gen = torch.Generator().manual_seed(batch * 100 + action_dim)
    m = EntropyModuleDiscrete(action_dim, initial_alpha=0.3)
    probs, log_probs = categorical(gen, batch, action_dim, temperature=0.7)
    loss = m.compute_loss(probs, log_probs)
    (grad,) = torch.autograd.grad(loss, m.log_alpha)
    h = -(probs.double() * log_probs.double()).sum(-1).mean()
    t = m.target_tensor.double()  # the float32 target the module holds
    torch.testing.assert_close(loss.double(), m.log_alpha.detach().double() * (h - t), rtol=2e-6, atol=1e-6)
    torch.testing.assert_close(grad.double(), h - t, rtol=2e-6, atol=1e-6)


def test_discrete_extra_leading_dims_are_averaged():
    gen = torch.Generator().manual_seed(3)
    m = EntropyModuleDiscrete(4)
    probs, log_probs = categorical(gen, 6, 4, 1.0)
    flat = m.compute_loss(probs, log_probs)
    stacked = m.compute_loss(probs.view(2, 3, 4), log_probs.view(2, 3, 4))
    torch.testing.assert_close(stacked, flat)


# ---- direction: alpha rises below target, falls above -----------------------------------------------------------
@pytest.mark.parametrize("std,rises", [(0.01, True), (1.0, False)])
def test_continuous_alpha_direction(std, rises):
    # target -3: entropy of N(0, 0.01^2 I_3) is about -9.6 (below), of N(0, I_3) about +4.3 (above)
    gen = torch.Generator().manual_seed(0)
    m = EntropyModule(3, initial_alpha=0.2, lr=1e-2)
    history = [m.alpha.item()]
    for _ in range(20):
        m.gradient_step(m.compute_loss(gaussian_log_probs(gen, 256, 3, std)))
        history.append(m.alpha.item())
    steps = [b - a for a, b in zip(history, history[1:])]
    assert all((s > 0) == rises and s != 0 for s in steps)


@pytest.mark.parametrize("temperature,rises", [(0.05, True), (50.0, False)])
def test_discrete_alpha_direction(temperature, rises):
    # 6 actions, target 0.98 log 6: near-greedy logits (below target) and near-uniform at 100% of log 6 (above)
    gen = torch.Generator().manual_seed(1)
    m = EntropyModuleDiscrete(6, lr=1e-2)
    history = [m.alpha.item()]
    for _ in range(20):
        m.gradient_step(m.compute_loss(*categorical(gen, 128, 6, temperature)))
        history.append(m.alpha.item())
    steps = [b - a for a, b in zip(history, history[1:])]
    assert all((s > 0) == rises and s != 0 for s in steps)


def test_near_uniform_policy_does_not_drive_alpha_down():
    # A near-uniform policy just under the target (97% of the maximum entropy): alpha must not shrink.
    # Under Velora's negative target the same policy would drive alpha down on every step.
    action_dim = 10
    logits = torch.linspace(-0.6, 0.6, action_dim).expand(32, action_dim)
    probs, log_probs = logits.softmax(-1), logits.log_softmax(-1)
    h = -(probs * log_probs).sum(-1).mean().item()
    assert 0.9 * math.log(action_dim) < h < 0.98 * math.log(action_dim)
    ours = EntropyModuleDiscrete(action_dim, lr=1e-2)
    velora = EntropyModuleDiscrete(action_dim, lr=1e-2, target_entropy=0.98 * math.log(1 / action_dim))
    for _ in range(30):
        ours.gradient_step(ours.compute_loss(probs, log_probs))
        velora.gradient_step(velora.compute_loss(probs, log_probs))
    assert ours.alpha.item() > 1.0
    assert velora.alpha.item() < 1.0


def test_alpha_holds_at_target():
    # Entropy equal to the target: zero gradient, alpha unchanged by Adam.
    m = EntropyModule(2, initial_alpha=0.4, target_entropy=1.25)
    before = m.log_alpha.detach().clone()
    m.gradient_step(m.compute_loss(torch.full((8,), -1.25)))
    assert m.log_alpha.grad.item() == 0.0
    assert torch.equal(m.log_alpha.detach(), before)


# ---- on-policy controller --------------------------------------------------------------------------------------
def test_controller_loss_and_update_by_hand():
    c = EntropyController(-1.0, initial_alpha=0.5, optim=torch.optim.SGD, lr=0.2)
    la = f32(math.log(0.5))
    alpha, loss = c.step(torch.tensor([-2.0, -3.0]))  # mean entropy -2.5, below the target -1
    assert loss.item() == pytest.approx(la * (-2.5 + 1.0), rel=1e-7)
    assert c.log_alpha.item() == pytest.approx(la + 0.2 * 1.5, rel=1e-6)
    assert alpha.item() == c.alpha.item() and not alpha.requires_grad and not loss.requires_grad
    assert c.schedule_position == 1
    assert repr(c) == "EntropyController(target_entropy=-1.0, initial_alpha=0.5, optim=SGD, lr=0.2, device=cpu)"


@pytest.mark.parametrize("entropy,rises", [(0.3, True), (1.7, False)])
def test_controller_direction(entropy, rises):
    c = EntropyController(1.0)
    history = [c.alpha.item()]
    for k in range(15):
        measured = torch.full((64,), entropy) if k % 2 else entropy  # tensors and floats both accepted
        alpha, _ = c.step(measured)
        history.append(alpha.item())
    steps = [b - a for a, b in zip(history, history[1:])]
    assert all((s > 0) == rises and s != 0 for s in steps)


def test_controller_follows_target_schedule():
    c = EntropyController(LinearSchedule(2.0, 0.5, 3))
    seen = []
    for _ in range(5):
        seen.append(c.target)
        c.step(1.0)
    assert seen == [2.0, 1.5, 1.0, 0.5, 0.5]
    assert "LinearSchedule(start=2.0, end=0.5, steps=3)" in repr(c)


# ---- checkpoints ------------------------------------------------------------------------------------------------
def _train(m, gen, steps):
    for _ in range(steps):
        if isinstance(m, EntropyModuleDiscrete):
            m.gradient_step(m.compute_loss(*categorical(gen, 16, m.action_dim, 0.5)))
        elif isinstance(m, EntropyController):
            m.step(torch.randn(16, generator=gen))
        else:
            m.gradient_step(m.compute_loss(torch.randn(16, generator=gen) - 2))


@pytest.mark.parametrize("make", [
    lambda: EntropyModule(3, lr=1e-2, target_entropy=CosineSchedule(-1.0, -3.0, 12)),
    lambda: EntropyModuleDiscrete(5, lr=1e-2, target_entropy=LinearSchedule(1.5, 0.5, 12)),
    lambda: EntropyController(ExponentialSchedule(0.8, 0.1, 12)),
])
def test_checkpoint_round_trip_then_identical_training(make):
    a = make()
    _train(a, torch.Generator().manual_seed(0), 7)
    a.set_target_entropy(LinearSchedule(a.target, a.target - 0.5, 4))  # a curriculum phase, set mid-run
    _train(a, torch.Generator().manual_seed(1), 2)
    state = roundtrip(a.state_dict())

    b = make()
    log_alpha, target_tensor = b.log_alpha, b.target_tensor
    b.load_state_dict(state)
    assert b.log_alpha is log_alpha and b.target_tensor is target_tensor  # restored in place
    assert b.optim.param_groups[0]["params"][0] is b.log_alpha
    assert torch.equal(b.log_alpha, a.log_alpha) and torch.equal(b.alpha, a.alpha)
    assert b.alpha.item() != make().alpha.item()  # alpha really was restored, not restarted
    assert b.schedule_position == a.schedule_position == 9
    assert b.target == a.target and torch.equal(b.target_tensor, a.target_tensor)
    assert b.target_schedule == a.target_schedule
    ga, gb = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    for _ in range(8):
        _train(a, ga, 1)
        _train(b, gb, 1)
        assert torch.equal(b.log_alpha, a.log_alpha)
        assert b.target == a.target and torch.equal(b.target_tensor, a.target_tensor)
    assert a.target == pytest.approx(a.target_schedule.end)  # the phase schedule reached its end


def test_state_dict_is_a_snapshot():
    m = EntropyModule(2, lr=1e-2)
    _train(m, torch.Generator().manual_seed(0), 2)
    state = m.state_dict()
    saved = state["log_alpha"].clone()
    _train(m, torch.Generator().manual_seed(1), 2)
    assert torch.equal(state["log_alpha"], saved) and state["schedule_position"] == 2
    assert state["entropy_optim"]["state"][0]["step"].item() == 2


def test_velora_optimizer_only_checkpoint_still_loads():
    a = EntropyModule(2, lr=1e-2)
    _train(a, torch.Generator().manual_seed(0), 3)
    velora_state = roundtrip({"entropy_optim": a.optim.state_dict()})
    b = EntropyModule(2, lr=1e-2)
    with pytest.warns(UserWarning, match="no log_alpha"):
        b.load_state_dict(velora_state)
    for key in ("exp_avg", "exp_avg_sq", "step"):
        assert torch.equal(b.optim.state[b.log_alpha][key], a.optim.state[a.log_alpha][key])
    assert b.log_alpha.item() == 0.0 and b.schedule_position == 0  # nothing else was in the checkpoint


def test_decay_mode_round_trip():
    make = lambda: EntropyModule(2, alpha_schedule=ExponentialSchedule(0.5, 0.05, 10))  # noqa: E731
    a = make()
    a.advance_schedule(4)
    b = make()
    b.load_state_dict(roundtrip(a.state_dict()))
    assert b.schedule_position == 4 and torch.equal(b.log_alpha, a.log_alpha)


def test_load_rejects_mismatches():
    cont, disc = EntropyModule(2), EntropyModuleDiscrete(2)
    with pytest.raises(ValueError, match="saved by EntropyModuleDiscrete"):
        cont.load_state_dict(disc.state_dict())
    with pytest.raises(ValueError, match="alpha_mode='learned'"):
        EntropyModule(2, fixed_alpha=True).load_state_dict(cont.state_dict())
    with pytest.raises(ValueError, match="pass the dict returned by state_dict"):
        cont.load_state_dict({"alpha": 1.0})
    with pytest.raises(TypeError, match="expected a dict"):
        cont.load_state_dict([1, 2])
    bad = cont.state_dict()
    del bad["target_origin"]
    with pytest.raises(ValueError, match="lacks \\['target_origin'\\]"):
        cont.load_state_dict(bad)


# ---- schedules, fixed alpha and alpha decay ----------------------------------------------------------------------
@pytest.mark.parametrize("sched", [LinearSchedule(-1.0, -4.0, 6), CosineSchedule(-1.0, -4.0, 6),
                                   ExponentialSchedule(-1.0, -4.0, 6)])
def test_target_schedule_is_followed_in_place(sched):
    m = EntropyModule(4, target_entropy=sched)
    tt, ptr = m.target_tensor, m.target_tensor.data_ptr()
    for k in range(9):
        assert m.target == sched.value(k)
        assert m.target_tensor.item() == f32(sched.value(k))
        m.gradient_step(m.compute_loss(torch.full((4,), -2.0)))  # one position per gradient step
    assert m.target == -4.0 and m.target_tensor.item() == -4.0 and m.schedule_position == 9
    assert m.target_tensor is tt and m.target_tensor.data_ptr() == ptr
    m.advance_schedule(0)
    assert m.schedule_position == 9


def test_set_target_entropy_starts_schedule_now():
    m = EntropyModule(2)
    m.advance_schedule(100)
    m.set_target_entropy(LinearSchedule(-2.0, -1.0, 4))
    assert m.target == -2.0
    m.advance_schedule(2)
    assert m.target == -1.5
    m.target = -0.25  # Velora users assign the attribute
    assert m.target == -0.25 and m.target_tensor.item() == -0.25 and m.target_schedule == ConstantSchedule(-0.25)
    m.set_target_entropy(torch.tensor(-3.0))
    assert m.target == -3.0 and m.config().target == -3.0


def test_fixed_alpha_mode():
    m = EntropyModule(3, initial_alpha=0.2, fixed_alpha=True)
    assert not m.learnable and m.alpha_mode == "fixed" and not m.log_alpha.requires_grad
    before = m.log_alpha.detach().clone()
    lp = torch.tensor([5.0, 6.0])  # far below target: a learned alpha would rise
    loss = m.compute_loss(lp)
    assert loss.item() == pytest.approx(-f32(math.log(0.2)) * (5.5 - 3.0), rel=1e-6)
    for _ in range(5):
        m.gradient_step(m.compute_loss(lp))
    assert torch.equal(m.log_alpha.detach(), before) and m.log_alpha.grad is None
    assert m.schedule_position == 5 and m.optim.state == {}


@pytest.mark.parametrize("sched", [ExponentialSchedule(0.2, 0.01, 8), LinearSchedule(1.0, 0.1, 8),
                                   CosineSchedule(0.5, 0.05, 8)])
def test_alpha_decay_mode(sched):
    m = EntropyModuleDiscrete(4, alpha_schedule=sched)
    assert not m.learnable and m.alpha_mode == "decay" and m.initial_alpha == sched.start
    assert m.config().initial_alpha == sched.start
    probs, log_probs = categorical(torch.Generator().manual_seed(0), 8, 4, 0.1)
    for k in range(11):
        assert m.log_alpha.item() == f32(math.log(sched.value(k)))
        m.gradient_step(m.compute_loss(probs, log_probs))
    assert m.log_alpha.item() == f32(math.log(sched.end)) and m.log_alpha.grad is None


# ---- optimizers and devices ---------------------------------------------------------------------------------------
class SignSGD(torch.optim.Optimizer):
    """A user-defined optimizer: p -= lr * sign(grad)."""

    def __init__(self, params, lr):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                p.add_(p.grad.sign(), alpha=-group["lr"])


@pytest.mark.parametrize("optim", [torch.optim.SGD, torch.optim.RMSprop, torch.optim.AdamW, SignSGD,
                                   functools.partial(torch.optim.Adam, betas=(0.5, 0.999))])
def test_any_optimizer_class(optim):
    m = EntropyModule(2, optim=optim, lr=0.05)
    assert isinstance(m.optim, torch.optim.Optimizer) and m.optim.param_groups[0]["lr"] == 0.05
    m.gradient_step(m.compute_loss(torch.full((4,), 3.0)))  # entropy -3 < target -2
    assert m.alpha.item() > 1.0
    if optim is SignSGD:
        assert m.log_alpha.item() == pytest.approx(0.05, rel=1e-6)
        assert repr(m).endswith("optim=SignSGD, lr=0.05, device=cpu)")


def test_gradients_do_not_accumulate_across_steps():
    m = EntropyModule(1, optim=torch.optim.SGD, lr=0.1)
    m.gradient_step(m.compute_loss(torch.tensor([0.0])))  # grad -(0 - 1) = 1
    m.gradient_step(m.compute_loss(torch.tensor([2.0])))  # grad -(2 - 1) = -1
    assert m.log_alpha.item() == pytest.approx(0.0, abs=1e-7)


def test_device_honoured_meta():
    # The meta device has no data but proves every tensor is created on the requested device.
    m = EntropyModuleDiscrete(3, device="meta")
    assert m.device == torch.device("meta")
    assert m.log_alpha.device.type == "meta" and m.target_tensor.device.type == "meta"
    assert m.compute_loss(torch.rand(2, 3, device="meta"), torch.rand(2, 3, device="meta")).device.type == "meta"


@pytest.mark.gpu
def test_device_honoured_cuda():
    m = EntropyModule(2, device="cuda", target_entropy=LinearSchedule(-1.0, -2.0, 2))
    assert m.log_alpha.is_cuda and m.target_tensor.is_cuda and m.alpha.is_cuda
    lp = torch.full((8,), 3.0, device="cuda")
    m.gradient_step(m.compute_loss(lp))
    assert m.alpha.item() > 1.0 and m.target_tensor.item() == -1.5
    c = EntropyController(0.5, device="cuda")
    alpha, loss = c.step(torch.zeros(4, device="cuda"))
    assert alpha.is_cuda and loss.is_cuda and alpha.item() > 0.01


# ---- compiled use: changing the target must not recompile ----------------------------------------------------------
def test_compiled_loss_sees_target_changes_without_recompiling():
    torch._dynamo.reset()
    graphs = []

    def counting_backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    m = EntropyModule(2, target_entropy=LinearSchedule(-1.0, -3.0, 4))
    d = EntropyModuleDiscrete(3)
    loss_c = torch.compile(lambda lp: m.compute_loss(lp), fullgraph=True, backend=counting_backend)
    loss_d = torch.compile(lambda p, lp: d.compute_loss(p, lp), fullgraph=True, backend=counting_backend)
    lp = torch.randn(16)
    probs, log_probs = categorical(torch.Generator().manual_seed(0), 5, 3, 1.0)
    for _ in range(3):
        torch.testing.assert_close(loss_c(lp), m.compute_loss(lp))
        torch.testing.assert_close(loss_d(probs, log_probs), d.compute_loss(probs, log_probs))
        m.advance_schedule(1)
        d.set_target_entropy(d.target - 0.1)
    assert len(graphs) == 2


# ---- bad arguments ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [EntropyModule, EntropyModuleDiscrete])
def test_bad_constructor_arguments(cls):
    for bad in (0, -1):
        with pytest.raises(ValueError, match="action_dim must be >= 1"):
            cls(bad)
    for bad in (1.5, "2", True, None):
        with pytest.raises(TypeError, match="action_dim must be an int"):
            cls(bad)
    for bad in (0.0, -0.1, math.nan, math.inf):
        with pytest.raises(ValueError, match="initial_alpha must be"):
            cls(2, initial_alpha=bad)
    with pytest.raises(TypeError, match="initial_alpha must be a real number"):
        cls(2, initial_alpha="1")
    for bad in (0.0, -3e-4, math.nan):
        with pytest.raises(ValueError, match="lr must be"):
            cls(2, lr=bad)
    with pytest.raises(TypeError, match="not an instance"):
        cls(2, optim=torch.optim.Adam([torch.nn.Parameter(torch.zeros(()))]))
    with pytest.raises(TypeError, match="optimizer class"):
        cls(2, optim="adam")
    with pytest.raises(TypeError, match="must return a torch.optim.Optimizer"):
        cls(2, optim=lambda params, lr: None)
    with pytest.raises(ValueError, match="not a valid torch device"):
        cls(2, device="tpu9")
    with pytest.raises(ValueError, match="target_entropy must be finite"):
        cls(2, target_entropy=math.nan)
    with pytest.raises(TypeError, match="target_entropy must be a real number or"):
        cls(2, target_entropy="auto")
    with pytest.raises(ValueError, match="not both"):
        cls(2, fixed_alpha=True, alpha_schedule=LinearSchedule(1.0, 0.1, 10))
    with pytest.raises(TypeError, match="alpha_schedule must be a Schedule"):
        cls(2, alpha_schedule=0.1)
    with pytest.raises(ValueError, match="alpha_schedule must stay > 0"):
        cls(2, alpha_schedule=LinearSchedule(0.1, -0.1, 10))
    with pytest.raises(ValueError, match="conflicts with alpha_schedule"):
        cls(2, initial_alpha=0.5, alpha_schedule=LinearSchedule(0.2, 0.1, 10))
    with pytest.raises(TypeError, match="fixed_alpha must be True or False"):
        cls(2, fixed_alpha=1)


def test_bad_discrete_arguments():
    with pytest.raises(ValueError, match="not both"):
        EntropyModuleDiscrete(4, target_entropy=1.0, target_entropy_scale=0.5)
    for bad in (0.0, -0.5, 1.01):
        with pytest.raises(ValueError, match="target_entropy_scale must be in \\(0, 1\\]"):
            EntropyModuleDiscrete(4, target_entropy_scale=bad)
    with pytest.raises(TypeError):
        EntropyModule(4, target_entropy_scale=0.5)  # the scale is a discrete-only knob


def test_bad_loss_inputs():
    m, d = EntropyModule(2), EntropyModuleDiscrete(3)
    p = torch.full((4, 3), 1 / 3)
    with pytest.raises(ValueError, match="same shape, got \\(4, 3\\) and \\(4, 2\\)"):
        d.compute_loss(p, p[:, :2].log())
    with pytest.raises(ValueError, match="got 1-D shape \\(3,\\); for a single state pass probs.unsqueeze\\(0\\)"):
        d.compute_loss(p[0], p[0].log())
    with pytest.raises(ValueError, match="last dimension must be action_dim=3"):
        d.compute_loss(torch.full((4, 4), 0.25), torch.full((4, 4), 0.25).log())
    with pytest.raises(TypeError, match="floating-point"):
        d.compute_loss(torch.ones(4, 3, dtype=torch.int64), p.log())
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        m.compute_loss([-1.0, -2.0])
    with pytest.raises(ValueError, match="is empty"):
        m.compute_loss(torch.empty(0))
    with pytest.raises(TypeError, match="loss must be a torch.Tensor"):
        m.gradient_step(0.5)
    with pytest.raises(ValueError, match="num_steps must be >= 0"):
        m.advance_schedule(-1)
    with pytest.raises(TypeError, match="num_steps must be an int"):
        m.advance_schedule(1.0)
    with pytest.raises(TypeError, match="entropy must be a real number"):
        EntropyController(1.0).step("high")
    with pytest.raises(ValueError, match="lr must be > 0"):
        EntropyController(1.0, lr=0)
