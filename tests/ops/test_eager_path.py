"""The eager paths of the public ops against their custom-op node: on the torch backend eager calls run the reference
math directly, with the C++ extension on CPU tensors they call its primitives directly (neither through the custom-op
dispatch); compiled code sees one custom-op node. Both must give the same numbers (the C++ paths the same bits, as
they run the same kernels); these tests pin that down and that each path is the one that runs."""

from __future__ import annotations

import importlib

import pytest
import torch

from fastsac import ops
from fastsac.ops import _validate

# The modules (``fastsac.ops.squashed_gaussian`` the attribute is the function of that name).
sg_mod = importlib.import_module("fastsac.ops.squashed_gaussian")
cat_mod = importlib.import_module("fastsac.ops.categorical")

from .conftest import DEVICE, randn, uniform

# The backends with an eager path: the torch reference, and the C++ extension on CPU tensors (built or JIT-built).
EAGER_BACKENDS = ["torch", pytest.param("cpp", marks=pytest.mark.skipif(DEVICE.type != "cpu",
                                                                         reason="the direct path is for CPU tensors"))]


@pytest.fixture(params=EAGER_BACKENDS)
def eager_backend(request):
    if request.param == "cpp":
        request.getfixturevalue("cpp_extension")
    return request.param

KINDS = {
    "plain": {},
    "scaled": "tensor",  # filled per test from the generator
    "scalar_scale": {"action_scale": 2.0, "action_bias": -0.25},
    "bounded": {"log_std_bounds": (-5.0, 2.0), "action_scale": 1.5},
}


def _kw(gen, a, kind):
    if KINDS[kind] == "tensor":
        return {"action_scale": uniform((a,), gen, 0.5, 3.0), "action_bias": randn((a,), gen)}
    return dict(KINDS[kind])


def _custom_op(mean, log_std, noise, action_scale=None, action_bias=None, log_std_bounds=None, target=None,
               backend="torch"):
    """The compiled path's node, called directly (its autograd is the registered closed-form backward)."""
    cd = torch.float32
    scale = _validate.per_action("action_scale", action_scale, mean, cd)
    bias = _validate.per_action("action_bias", action_bias, mean, cd)
    lo, hi = _validate.bounds(log_std_bounds)
    return torch.ops.fastsac.squashed_gaussian(mean, log_std, noise, scale, bias, lo, hi, target, backend)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("n,a", [(1, 1), (7, 6), (300, 17)])
def test_squashed_gaussian_eager_equals_the_custom_op(gen, kind, n, a, eager_backend):
    mean, log_std, noise = randn((n, a), gen), uniform((n, a), gen, -2.0, 1.0), randn((n, a), gen)
    kw = _kw(gen, a, kind)
    w_a, w_lp = randn((n, a), gen), randn((n,), gen)
    grads = []
    for path in ("eager", "custom"):
        m, s = mean.clone().requires_grad_(), log_std.clone().requires_grad_()
        if path == "eager":
            action, log_prob = ops.squashed_gaussian(m, s, noise, backend=eager_backend, **kw)
        else:
            action, log_prob, _ = _custom_op(m, s, noise, **kw, backend=eager_backend)
        grads.append((action.detach(), log_prob.detach(), *torch.autograd.grad(
            (action * w_a).sum() + (log_prob * w_lp).sum(), (m, s))))
    number_scale = isinstance(kw.get("action_scale"), float) and eager_backend == "torch"
    for name, got, want in zip(("action", "log_prob", "d_mean", "d_log_std"), *grads):
        # Bit for bit, except one term: with a number as action_scale the eager path subtracts A * log|scale| formed
        # in float64, the node (whose scale is an (A,) tensor) the float32 sum of A logs: an ulp or two apart.
        rtol, atol = (2e-7, 4 * 1.2e-7 * a) if (number_scale and name == "log_prob") else (0.0, 0.0)
        torch.testing.assert_close(got, want, rtol=rtol, atol=atol, msg=f"{name} differs between the paths ({kind})")


def test_alpha_loss_eager_equals_the_custom_op(gen, eager_backend):
    mean, log_std, noise = randn((33, 6), gen), uniform((33, 6), gen, -2.0, 1.0), randn((33, 6), gen)
    log_alpha = torch.tensor(0.4, device=DEVICE, requires_grad=True)
    _, lp, loss = ops.squashed_gaussian_with_alpha_loss(mean, log_std, noise, log_alpha, -6.0, backend=eager_backend)
    _, lp2, gap = _custom_op(mean, log_std, noise, target=torch.tensor(-6.0, device=DEVICE), backend=eager_backend)
    torch.testing.assert_close(lp, lp2, rtol=0, atol=0)
    torch.testing.assert_close(loss, -(log_alpha * gap), rtol=1e-6, atol=1e-7)
    (g,) = torch.autograd.grad(loss, log_alpha)
    torch.testing.assert_close(g, -(lp2.double().mean() - 6.0).float(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("masked", [False, True])
def test_categorical_eager_matches_the_custom_op(gen, masked, eager_backend):
    """Eager on the torch backend: autograd of the reference math; the node: the closed-form backward. Same values,
    gradients to float32 rounding (the C++ paths: the same bits), finite with masked (-inf) actions."""
    logits = randn((40, 5), gen, scale=3.0)
    if masked:
        logits[::3, 1] = float("-inf")
    w_p, w_lp, w_h = randn((40, 5), gen), randn((40, 5), gen), randn((40,), gen)
    results = []
    for path in ("eager", "custom"):
        z = logits.clone().requires_grad_()
        if path == "eager":
            p, lp, h = ops.categorical(z, backend=eager_backend)
        else:
            p, lp, h, _ = torch.ops.fastsac.categorical(z, None, eager_backend)
        lp_used = lp.masked_fill(torch.isinf(lp), 0.0)
        (d,) = torch.autograd.grad((p * w_p).sum() + (lp_used * w_lp).sum() + (h * w_h).sum(), z)
        results.append((p.detach(), lp.detach(), h.detach(), d))
    for name, got, want in zip(("probs", "log_probs", "entropy", "d_logits"), *results):
        assert torch.isfinite(got[~torch.isinf(want)]).all(), name
        rtol, atol = (1e-5, 2e-6) if eager_backend == "torch" else (0.0, 0.0)
        torch.testing.assert_close(got, want, rtol=rtol, atol=atol, msg=f"{name} differs between the two paths")


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_the_direct_path_takes_every_dtype_and_shape(gen, dtype, cpp_extension):
    """The C++ direct path on (..., A) inputs of the extension's dtypes: the custom op's numbers, in shape."""
    if DEVICE.type != "cpu":
        pytest.skip("the direct path is for CPU tensors")
    mean, log_std, noise = (randn((2, 5, 3), gen, dtype=dtype) for _ in range(3))
    action, log_prob = ops.squashed_gaussian(mean, log_std, noise, backend="cpp")
    rows = [t.reshape(10, 3) for t in (mean, log_std, noise)]
    want_a, want_lp, _ = torch.ops.fastsac.squashed_gaussian(*rows, None, None, None, None, None, "cpp")
    assert action.shape == (2, 5, 3) and log_prob.shape == (2, 5) and action.dtype == log_prob.dtype == dtype
    torch.testing.assert_close(action.reshape(10, 3), want_a, rtol=0, atol=0)
    torch.testing.assert_close(log_prob.reshape(10), want_lp, rtol=0, atol=0)
    logits = randn((2, 5, 4), gen, dtype=dtype)
    p, lp, h = ops.categorical(logits, backend="cpp")
    want = torch.ops.fastsac.categorical(logits.reshape(10, 4), None, "cpp")
    assert p.shape == lp.shape == (2, 5, 4) and h.shape == (2, 5)
    for got, w in zip((p, lp, h), want[:3]):
        torch.testing.assert_close(got.reshape(w.shape), w, rtol=0, atol=0)


def test_eager_calls_do_not_dispatch_the_custom_op(gen, monkeypatch, eager_backend):
    """On the torch backend, and with the C++ extension on CPU tensors, an eager call never enters the custom op
    (the point of the eager paths: its dispatch costs ~15-100 us a call on a CPU); under torch.compile the op is still
    one node."""

    def boom(*args, **kwargs):
        raise AssertionError("the custom op was dispatched on an eager call")

    monkeypatch.setattr(sg_mod, "_squashed_gaussian", boom)
    monkeypatch.setattr(cat_mod, "_categorical", boom)
    mean, log_std, noise = randn((4, 3), gen).requires_grad_(), randn((4, 3), gen), randn((4, 3), gen)
    action, log_prob = ops.squashed_gaussian(mean, log_std, noise, backend=eager_backend)
    (action.sum() + log_prob.sum()).backward()
    ops.squashed_gaussian_with_alpha_loss(mean, log_std, noise, torch.zeros((), device=DEVICE), -3.0,
                                          backend=eager_backend)
    logits = randn((4, 3), gen).requires_grad_()
    p, _, h, loss = ops.categorical_with_alpha_loss(logits, torch.zeros((), device=DEVICE), 1.0, backend=eager_backend)
    (p.sum() + h.sum() + loss).backward()
    with torch.no_grad():
        ops.squashed_gaussian(mean, log_std, noise, log_std_bounds=(-5.0, 2.0), backend=eager_backend)
        ops.categorical(logits, backend=eager_backend)
