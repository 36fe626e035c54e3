"""squashed_gaussian and squashed_gaussian_with_alpha_loss on every backend against float64 references."""

from __future__ import annotations

import importlib
import math

import pytest
import torch
from torch.distributions import Normal, TransformedDistribution
from torch.distributions.transforms import AffineTransform, TanhTransform

from fastsac import ops
from tests.accuracy import assert_within_reference_error, reference_evaluations

from .conftest import DEVICE, randn, uniform

LOW_PRECISION = (torch.bfloat16, torch.float16)
# Saturated inputs have a well-conditioned log-prob (dominated by -2|u|): a plain relative tolerance applies.
RTOL32 = 2e-6


def make_inputs(gen, n, a, dtype=torch.float32, saturate=False):
    if saturate:  # |u| between 20 and 50: tanh is +-1 in every float format
        sign = torch.where(torch.rand((n, a), generator=gen) < 0.5, -1.0, 1.0).to(DEVICE)
        mean = (uniform((n, a), gen, 20.0, 50.0, torch.float64) * sign).to(dtype)
        log_std = uniform((n, a), gen, -4.0, -1.0, dtype)
    else:
        mean = randn((n, a), gen, dtype)
        log_std = uniform((n, a), gen, -2.0, 1.0, dtype)
    noise = randn((n, a), gen, dtype)
    return mean, log_std, noise


def options(gen, a, kind):
    """Keyword arguments for one of the option sets the tests sweep."""
    if kind == "plain":
        return {}
    if kind == "scaled":
        return {
            "action_scale": uniform((a,), gen, 0.5, 3.0, torch.float32),
            "action_bias": randn((a,), gen, torch.float32),
        }
    if kind == "scalar_scale":
        return {"action_scale": 2.0, "action_bias": -0.25}
    if kind == "bounded":
        return {"log_std_bounds": (-5.0, 2.0), "action_scale": 1.5}
    raise ValueError(kind)


def reference64(mean, log_std, noise, action_scale=None, action_bias=None, log_std_bounds=None):
    """The float64 reference (ground truth) through the public validation, on the torch backend."""
    d = lambda t: t.double() if isinstance(t, torch.Tensor) else t  # noqa: E731
    return ops.squashed_gaussian(
        d(mean), d(log_std), d(noise), action_scale=d(action_scale), action_bias=d(action_bias),
        log_std_bounds=log_std_bounds, backend="torch",
    )


def assert_close64(actual, expected, rtol, atol, what):
    actual = actual.double()
    assert torch.isfinite(actual).all(), f"{what}: non-finite values"
    err = (actual - expected).abs()
    bound = atol + rtol * expected.abs()
    worst = (err / bound).max().item()
    assert worst <= 1.0, f"{what}: max error {err.max().item():.3g} exceeds tolerance by {worst:.2f}x"


def plain_torch(mean, log_std, noise, action_scale=None, action_bias=None, log_std_bounds=None):
    """PyTorch's own evaluation of the formula in the input dtype (torch.tanh, softplus Jacobian).

    Returns ``(action, log_prob, terms)``: ``terms`` are the per-element log-prob terms summed into ``log_prob``."""
    s = log_std
    if log_std_bounds is not None:
        lo, hi = log_std_bounds
        s = lo + 0.5 * (hi - lo) * (torch.tanh(log_std) + 1)
    u = mean + s.exp() * noise
    jac = 2 * (math.log(2) - u - torch.nn.functional.softplus(-2 * u))
    terms = -0.5 * noise * noise - s - 0.5 * math.log(2 * math.pi) - jac
    action = torch.tanh(u)
    if action_scale is not None:
        scale = torch.as_tensor(action_scale, dtype=mean.dtype, device=mean.device)
        action = action * scale
        terms = terms - torch.log(scale).expand(terms.shape)
    log_prob = terms.sum(-1)
    if action_bias is not None:
        action = action + torch.as_tensor(action_bias, dtype=mean.dtype, device=mean.device)
    return action, log_prob, terms


def assert_within_torch_error(inputs, kw, action, log_prob):
    """The house rule (tests/accuracy.py): error against float64 at most ~2x PyTorch's own error in the same dtype
    (on the inputs and on +-4-ulp perturbed copies), plus a few ulps of the value, or for the log-prob of the
    absolute sum of its terms."""
    ref_action, ref_log_prob = reference64(*inputs, **kw)
    evals = reference_evaluations(lambda *x: plain_torch(*x, **kw), inputs, inputs[0].dtype)
    terms64 = plain_torch(*(t.double() for t in inputs), **kw)[2]
    assert_within_reference_error("action", action, ref_action, [e[0] for e in evals])
    assert_within_reference_error("log_prob", log_prob, ref_log_prob, [e[1] for e in evals],
                                  scale=terms64.abs().sum(-1))


@pytest.mark.parametrize("n", [1, 7, 300])
@pytest.mark.parametrize("a", [1, 6, 17, 64])
@pytest.mark.parametrize("kind", ["plain", "scaled", "scalar_scale", "bounded"])
def test_forward_matches_float64(backend, gen, n, a, kind):
    mean, log_std, noise = make_inputs(gen, n, a)
    kw = options(gen, a, kind)
    action, log_prob = ops.squashed_gaussian(mean, log_std, noise, backend=backend, **kw)
    assert action.shape == mean.shape and log_prob.shape == mean.shape[:-1]
    assert action.dtype == log_prob.dtype == torch.float32
    assert_within_torch_error((mean, log_std, noise), kw, action, log_prob)
    # DESIGN: fp32 relative error well under 1e-5 (relative to the size of the values).
    ref_action, ref_log_prob = reference64(mean, log_std, noise, **kw)
    assert (log_prob.double() - ref_log_prob).abs().max() <= 1e-5 * ref_log_prob.abs().max().clamp(min=1)


def test_reference_agrees_with_torch_distributions(gen):
    """An independent check of the ground truth: Normal + TanhTransform + AffineTransform in float64."""
    mean, log_std, noise = (t.double() for t in make_inputs(gen, 64, 5))
    scale = uniform((5,), gen, 0.5, 2.0, torch.float64)
    bias = randn((5,), gen, torch.float64)
    action, log_prob = ops.squashed_gaussian(mean, log_std, noise, action_scale=scale, action_bias=bias, backend="torch")
    dist = TransformedDistribution(
        Normal(mean, log_std.exp()), [TanhTransform(), AffineTransform(bias, scale)]
    )
    u = mean + log_std.exp() * noise
    torch.testing.assert_close(action, torch.tanh(u) * scale + bias, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(log_prob, dist.log_prob(action).sum(-1), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("a", [1, 6, 17])
def test_saturated_tanh_gives_exact_finite_log_prob(backend, gen, a):
    """|u| of 20 to 50: the log-prob comes from u, so it stays finite and exact; inverting the action fails."""
    mean, log_std, noise = make_inputs(gen, 33, a, saturate=True)
    action, log_prob = ops.squashed_gaussian(mean, log_std, noise, backend=backend)
    _, ref_log_prob = reference64(mean, log_std, noise)
    assert torch.isfinite(log_prob).all()
    assert_close64(log_prob, ref_log_prob, RTOL32, 1e-5, "saturated log_prob")
    # The exact value: log(1 - tanh(u)^2) ~ log 4 - 2|u| for large |u|; the log-prob is large and positive.
    u = mean.double() + log_std.double().exp() * noise.double()
    approx = (-0.5 * noise.double() ** 2 - log_std.double() - 0.5 * math.log(2 * math.pi) - (math.log(4) - 2 * u.abs())).sum(-1)
    torch.testing.assert_close(log_prob.double(), approx, rtol=1e-6, atol=1e-4)
    # What a distribution that inverts the squashed action returns in float32 here: not the exact value.
    dist = TransformedDistribution(Normal(mean, log_std.exp()), [TanhTransform()])
    inverted = dist.log_prob(action.clamp(-1 + 1e-7, 1 - 1e-7)).sum(-1).double()
    assert (~torch.isfinite(inverted) | ((inverted - ref_log_prob).abs() > 1.0)).any()


@pytest.mark.parametrize("dtype", LOW_PRECISION)
@pytest.mark.parametrize("kind", ["plain", "bounded"])
def test_low_precision_within_rounding(backend, gen, dtype, kind):
    """bf16/fp16 inputs: error at most ~2x PyTorch's own error in that dtype plus a small absolute term."""
    mean, log_std, noise = make_inputs(gen, 257, 6, dtype)
    kw = options(gen, 6, kind)
    action, log_prob = ops.squashed_gaussian(mean, log_std, noise, backend=backend, **kw)
    assert action.dtype == log_prob.dtype == dtype
    assert_within_torch_error((mean, log_std, noise), kw, action, log_prob)


def test_leading_dims_and_non_contiguous(backend, gen):
    base_mean, base_log_std, base_noise = make_inputs(gen, 2 * 5 * 3, 12)
    mean = base_mean.reshape(2, 5, 3, 12)[..., ::2]  # (2, 5, 3, 6), non-contiguous
    log_std = base_log_std.reshape(2, 5, 3, 12)[..., 1::2]
    noise = base_noise.reshape(2, 5, 3, 12).transpose(0, 1).transpose(0, 1)[..., ::2]
    assert not mean.is_contiguous()
    action, log_prob = ops.squashed_gaussian(mean, log_std, noise, log_std_bounds=(-5, 2), backend=backend)
    assert action.shape == (2, 5, 3, 6) and log_prob.shape == (2, 5, 3)
    contiguous = (mean.contiguous(), log_std.contiguous(), noise.contiguous())
    assert_within_torch_error(contiguous, {"log_std_bounds": (-5, 2)}, action, log_prob)
    again = ops.squashed_gaussian(*contiguous, log_std_bounds=(-5, 2), backend=backend)
    torch.testing.assert_close(action, again[0], rtol=0, atol=0)
    torch.testing.assert_close(log_prob, again[1], rtol=0, atol=0)


def test_large_batch(backend, gen):
    n = 1 << 14
    mean, log_std, noise = make_inputs(gen, n, 6)
    action, log_prob = ops.squashed_gaussian(mean, log_std, noise, backend=backend)
    assert_within_torch_error((mean, log_std, noise), {}, action, log_prob)


def naive_float64(mean, log_std, noise, scale, bias, bounds):
    """Independent float64 formula for autograd: log(1 - tanh(u)^2) taken literally (fine for |u| < 8)."""
    s = log_std if bounds is None else bounds[0] + 0.5 * (bounds[1] - bounds[0]) * (torch.tanh(log_std) + 1)
    u = mean + s.exp() * noise
    a = torch.tanh(u)
    log_prob = (Normal(0.0, 1.0).log_prob(noise) - s - torch.log(1 - a * a)).sum(-1) - torch.log(scale).sum()
    return a * scale + bias, log_prob


def autograd_grads(formula, mean, log_std, noise, w_action, w_log_prob, **kw):
    """d/d(mean, log_std) of ``sum(action * w_action) + sum(log_prob * w_log_prob)`` by autograd of ``formula``."""
    m, s = mean.clone().requires_grad_(), log_std.clone().requires_grad_()
    action, log_prob = formula(m, s, noise, **kw)[:2]
    ((action * w_action).sum() + (log_prob * w_log_prob).sum()).backward()
    return m.grad, s.grad


@pytest.mark.parametrize("kind", ["scaled", "bounded"])
@pytest.mark.parametrize("a", [1, 6, 17])
def test_gradients_match_float64_autograd(backend, gen, kind, a):
    """Gradients against autograd of an independent float64 formula, within the house rule: ~2x the error of
    PyTorch's own float32 autograd (of the stable formula, on the inputs and on +-4-ulp perturbed copies)."""
    n = 9
    mean, log_std, noise = make_inputs(gen, n, a)
    kw = options(gen, a, kind)
    scale64 = torch.as_tensor(kw.get("action_scale", 1.0), dtype=torch.float64, device=DEVICE).expand(a)
    bias64 = torch.as_tensor(kw.get("action_bias", 0.0), dtype=torch.float64, device=DEVICE).expand(a)
    w_action, w_log_prob = randn((n, a), gen), randn((n,), gen)

    m, s = mean.clone().requires_grad_(), log_std.clone().requires_grad_()
    action, log_prob = ops.squashed_gaussian(m, s, noise, backend=backend, **kw)
    ((action * w_action).sum() + (log_prob * w_log_prob).sum()).backward()

    truth = autograd_grads(
        lambda *x: naive_float64(*x, scale64, bias64, kw.get("log_std_bounds")),
        mean.double(), log_std.double(), noise.double(), w_action.double(), w_log_prob.double(),
    )
    evals = reference_evaluations(
        lambda *x: autograd_grads(plain_torch, *x, w_action, w_log_prob, **kw), (mean, log_std, noise), torch.float32
    )
    assert_within_reference_error("d_mean", m.grad, truth[0], [e[0] for e in evals])
    assert_within_reference_error("d_log_std", s.grad, truth[1], [e[1] for e in evals])


def test_gradients_exact_when_saturated(backend, gen):
    """1 - tanh(u)^2 is formed from exp(-2|u|), so d action / d mean keeps its relative accuracy at |u| ~ 20."""
    mean, log_std, noise = make_inputs(gen, 16, 4, saturate=True)
    mean = mean.clamp(-25, 25)
    m = mean.clone().requires_grad_()
    action, _ = ops.squashed_gaussian(m, log_std, noise, backend=backend)
    action.sum().backward()
    u = mean.double() + log_std.double().exp() * noise.double()
    exact = 4 * torch.exp(-2 * u.abs()) / (1 + torch.exp(-2 * u.abs())) ** 2
    assert (m.grad > 0).all()
    assert_close64(m.grad, exact, 1e-5, 0.0, "d_mean at saturation")


@pytest.mark.parametrize("kind", ["plain", "scaled", "bounded"])
def test_gradcheck_float64(backend, gen, kind):
    from fastsac.ops import backends as _backends

    if torch.float64 not in getattr(_backends.backend_module(backend), "SUPPORTED_DTYPES", (torch.float64,)):
        pytest.skip(f"the {backend} backend computes in float32 only; its gradients are checked against float64 above")
    mean, log_std, noise = (t.double() for t in make_inputs(gen, 5, 3))
    kw = {k: (v.double() if isinstance(v, torch.Tensor) else v) for k, v in options(gen, 3, kind).items()}
    fn = lambda m, s: ops.squashed_gaussian(m, s, noise, backend=backend, **kw)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (mean.requires_grad_(), log_std.requires_grad_()))
    # The fused variant: action and log-prob w.r.t. the policy inputs; the alpha loss w.r.t. log_alpha only
    # (it uses log_prob.detach() by definition, so its numerical Jacobian w.r.t. mean is not its gradient).
    la = torch.tensor(0.3, dtype=torch.float64, device=DEVICE, requires_grad=True)
    fused = lambda m, s, la: ops.squashed_gaussian_with_alpha_loss(m, s, noise, la, -3.0, backend=backend, **kw)  # noqa: E731
    assert torch.autograd.gradcheck(lambda m, s: fused(m, s, la.detach())[:2], (mean, log_std))
    assert torch.autograd.gradcheck(lambda la: fused(mean.detach(), log_std.detach(), la)[2], (la,))


@pytest.mark.parametrize("target_as_tensor", [False, True])
def test_alpha_loss_value_and_gradient(backend, gen, target_as_tensor):
    n, a = 301, 6
    mean, log_std, noise = make_inputs(gen, n, a)
    kw = options(gen, a, "bounded")
    log_alpha = torch.tensor(-0.7, device=DEVICE, requires_grad=True)
    target = torch.tensor(-6.0, device=DEVICE) if target_as_tensor else -6.0
    m, s = mean.clone().requires_grad_(), log_std.clone().requires_grad_()
    action, log_prob, alpha_loss = ops.squashed_gaussian_with_alpha_loss(m, s, noise, log_alpha, target, backend=backend, **kw)
    _, ref_log_prob = reference64(mean, log_std, noise, **kw)
    gap = ref_log_prob.mean() - 6.0
    assert alpha_loss.shape == () and alpha_loss.dtype == torch.float32
    torch.testing.assert_close(alpha_loss.double(), 0.7 * gap, rtol=1e-5, atol=1e-5)
    alpha_loss.backward(retain_graph=True)
    torch.testing.assert_close(log_alpha.grad.double(), -gap, rtol=1e-5, atol=1e-5)
    assert m.grad is None and s.grad is None, "the alpha loss must not reach the policy"
    # The other outputs equal the plain op's, and their gradients too.
    action2, log_prob2 = ops.squashed_gaussian(mean, log_std, noise, backend=backend, **kw)
    torch.testing.assert_close(action, action2, rtol=0, atol=0)
    torch.testing.assert_close(log_prob, log_prob2, rtol=0, atol=0)
    log_prob.sum().backward()
    assert m.grad is not None and torch.isfinite(s.grad).all()


def test_noise_gets_no_gradient(backend, gen):
    mean, log_std, noise = make_inputs(gen, 4, 3)
    noise.requires_grad_()
    m = mean.clone().requires_grad_()
    action, log_prob = ops.squashed_gaussian(m, log_std, noise, backend=backend)
    (action.sum() + log_prob.sum()).backward()
    assert noise.grad is None and m.grad is not None


def test_only_one_output_used(backend, gen):
    """The unused output's gradient arrives as None; the backward must treat it as zero."""
    mean, log_std, noise = make_inputs(gen, 8, 3)
    for pick in (0, 1):
        m, s = mean.clone().requires_grad_(), log_std.clone().requires_grad_()
        out = ops.squashed_gaussian(m, s, noise, backend=backend)[pick]
        out.sum().backward()
        m64, s64 = mean.double().requires_grad_(), log_std.double().requires_grad_()
        one = torch.ones(3, dtype=torch.float64, device=DEVICE)
        naive_float64(m64, s64, noise.double(), one, 0 * one, None)[pick].sum().backward()
        assert_close64(m.grad, m64.grad, 1e-5, 1e-6, f"d_mean (output {pick})")
        assert_close64(s.grad, s64.grad, 1e-5, 1e-6, f"d_log_std (output {pick})")


def test_opcheck(backend, gen):
    sg = importlib.import_module("fastsac.ops.squashed_gaussian")  # the module; the package exports the function
    mean, log_std, noise = make_inputs(gen, 5, 3)
    scale = uniform((3,), gen, 0.5, 2.0)
    bias = randn((3,), gen)
    target = torch.tensor(-3.0, device=DEVICE)
    mean.requires_grad_(), log_std.requires_grad_()
    torch.library.opcheck(sg._squashed_gaussian, (mean, log_std, noise, scale, bias, -5.0, 2.0, None, backend))
    torch.library.opcheck(sg._squashed_gaussian, (mean, log_std, noise, None, None, None, None, None, backend))
    torch.library.opcheck(sg._squashed_gaussian, (mean, log_std, noise, scale, bias, -5.0, 2.0, target, backend))
    g_a, g_lp = randn((5, 3), gen), randn((5,), gen)
    torch.library.opcheck(
        sg._squashed_gaussian_backward, (g_a, g_lp, mean.detach(), log_std.detach(), noise, scale, -5.0, 2.0, backend)
    )


def test_actor_and_alpha_losses_backpropagate_separately(backend, gen):
    """Velora-style code calls actor_loss.backward() and then alpha_loss.backward(): both must work."""
    mean, log_std, noise = make_inputs(gen, 16, 3)
    m = mean.clone().requires_grad_()
    log_alpha = torch.tensor(0.1, device=DEVICE, requires_grad=True)
    _, log_prob, alpha_loss = ops.squashed_gaussian_with_alpha_loss(m, log_std, noise, log_alpha, -3.0, backend=backend)
    log_prob.mean().backward()
    alpha_loss.backward()
    assert m.grad is not None and log_alpha.grad is not None


def test_compiles_as_one_graph_with_backward(gen):
    """A SAC-style actor + alpha loss step with torch.autograd.grad compiles with fullgraph and matches eager."""
    from torch._dynamo.testing import CompileCounterWithBackend

    torch._dynamo.config.trace_autograd_ops = True
    mean, log_std, noise = make_inputs(gen, 64, 6)
    q_weight = randn((6,), gen)
    log_alpha = torch.tensor(-0.3, device=DEVICE, requires_grad=True)

    def step(mean, log_std, noise, log_alpha):
        action, log_prob, alpha_loss = ops.squashed_gaussian_with_alpha_loss(
            mean, log_std, noise, log_alpha, -6.0, action_scale=2.0, log_std_bounds=(-5.0, 2.0)
        )
        actor_loss = (log_alpha.detach().exp() * log_prob - action @ q_weight).mean()
        return torch.autograd.grad(actor_loss + alpha_loss, (mean, log_std, log_alpha))

    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(step, backend=counter, fullgraph=True)
    args = (mean.requires_grad_(), log_std.requires_grad_(), noise, log_alpha)
    for got, want in zip(compiled(*args), step(*args)):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
    assert counter.frame_count == 1


def test_compiles_with_inductor_for_categorical_and_gaussian(gen):
    torch._dynamo.config.trace_autograd_ops = True
    mean, log_std, noise = make_inputs(gen, 32, 3)
    logits = randn((32, 5), gen)

    def f(mean, log_std, noise, logits):
        action, log_prob = ops.squashed_gaussian(mean, log_std, noise)
        probs, log_probs, entropy = ops.categorical(logits)
        loss = log_prob.mean() + action.square().mean() + (probs * log_probs).sum() + entropy.mean()
        return torch.autograd.grad(loss, (mean, log_std, logits))

    args = (mean.requires_grad_(), log_std.requires_grad_(), noise, logits.requires_grad_())
    compiled = torch.compile(f, fullgraph=True)
    for got, want in zip(compiled(*args), f(*args)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_deterministic_action(gen):
    mean = randn((4, 3), gen)
    torch.testing.assert_close(ops.deterministic_action(mean, action_scale=2.0, action_bias=0.5), torch.tanh(mean) * 2 + 0.5)


# ---------------------------------------------------------------------------------------------------- bad input


def test_bad_inputs_raise_clear_errors(gen):
    mean, log_std, noise = make_inputs(gen, 4, 3)
    la = torch.tensor(0.0)
    cases = [
        (ValueError, "shape", lambda: ops.squashed_gaussian(mean, log_std[:, :2], noise)),
        (TypeError, "dtype", lambda: ops.squashed_gaussian(mean.long(), log_std.long(), noise.long())),
        (TypeError, "dtype", lambda: ops.squashed_gaussian(mean, log_std.double(), noise)),
        (TypeError, "torch.Tensor", lambda: ops.squashed_gaussian(mean.tolist(), log_std, noise)),
        (ValueError, "device", lambda: ops.squashed_gaussian(mean, log_std.to("meta"), noise)),
        (ValueError, "lo < hi", lambda: ops.squashed_gaussian(mean, log_std, noise, log_std_bounds=(2.0, -5.0))),
        (ValueError, "lo < hi", lambda: ops.squashed_gaussian(mean, log_std, noise, log_std_bounds=(1.0, 1.0))),
        (TypeError, "pair", lambda: ops.squashed_gaussian(mean, log_std, noise, log_std_bounds=3.0)),
        (ValueError, "action_scale", lambda: ops.squashed_gaussian(mean, log_std, noise, action_scale=torch.ones(4))),
        (ValueError, "0-dim", lambda: ops.squashed_gaussian_with_alpha_loss(mean, log_std, noise, torch.zeros(3), -3.0)),
        (TypeError, "log_alpha", lambda: ops.squashed_gaussian_with_alpha_loss(mean, log_std, noise, 0.0, -3.0)),
        (ValueError, "target_entropy", lambda: ops.squashed_gaussian_with_alpha_loss(mean, log_std, noise, la, torch.ones(2))),
        (ValueError, "empty", lambda: ops.squashed_gaussian(mean[:0], log_std[:0], noise[:0])),
        (ValueError, "at least one dimension", lambda: ops.squashed_gaussian(mean[0, 0], log_std[0, 0], noise[0, 0])),
    ]
    for exc, words, call in cases:
        with pytest.raises(exc, match=words):
            call()


def test_the_accuracy_rule_catches_a_systematic_error_beside_an_ill_conditioned_element(gen):
    """The rule's reference error is taken per element. With one element where u cancels (mean = -sigma * noise:
    four ulps of the mean move the action by ~1e-5), a path that is off by 1e-5 (relative) on EVERY element fails
    it; a rule with one scalar reference error (the worst element's) let that path pass."""
    from tests.accuracy import reference_error

    mean, log_std, noise = make_inputs(gen, 300, 6)
    log_std[0, 0], noise[0, 0] = 2.0, 3.6
    mean[0, 0] = -(log_std[0, 0].double().exp() * noise[0, 0].double()).float()
    ref_action, _ = reference64(mean, log_std, noise)
    evals = [e[0] for e in reference_evaluations(lambda *x: plain_torch(*x), (mean, log_std, noise), torch.float32)]
    e = reference_error(ref_action, evals)
    assert e[0, 0] > 10 * e[1:].max(), "the constructed element is not the ill-conditioned one"
    worse = (ref_action * (1 + 1e-5)).float()  # a "faster but worse" path: 1e-5 off everywhere
    with pytest.raises(AssertionError, match="exceeds its tolerance"):
        assert_within_reference_error("action", worse, ref_action, evals)
    scalar_bound = 2.0 * e.max() + 4.0 * torch.finfo(torch.float32).eps * (1.0 + ref_action.abs())
    assert ((worse.double() - ref_action).abs() <= scalar_bound).all(), "the scalar rule would have caught it too"
    action, _ = ops.squashed_gaussian(mean, log_std, noise, backend="torch")  # the real path passes
    assert_within_reference_error("action", action, ref_action, evals)
