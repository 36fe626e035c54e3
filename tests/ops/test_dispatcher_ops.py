"""The extension's ops registered with torch's dispatcher (csrc/library.cpp): the node compiled code runs when the
backend is the extension. They must give the Python custom ops' numbers bit for bit (the same kernels, the gap formed
by the same arithmetic), carry consistent schema, fake and autograd registrations (``torch.library.opcheck``), and be
what ``torch.compile`` puts in the graph."""

from __future__ import annotations

import importlib

import pytest
import torch

from fastsac import ops
from fastsac.ops import extension

from .conftest import DEVICE, randn, uniform

sg_mod = importlib.import_module("fastsac.ops.squashed_gaussian")
cat_mod = importlib.import_module("fastsac.ops.categorical")


@pytest.fixture
def ext(cpp_extension):
    ns = extension.dispatcher_ops(DEVICE.type)
    assert ns is not None, "the extension module has no dispatcher ops (op_namespace)"
    return ns


def test_each_module_names_its_own_namespace(cpp_extension):
    module = extension.module_for(DEVICE.type)
    assert module.op_namespace == "fastsac_ext" + module.__name__.rsplit(".", 1)[-1]
    assert extension.dispatcher_ops(DEVICE.type) is getattr(torch.ops, module.op_namespace)


def _sg_args(gen, n, a, kind):
    mean, log_std, noise = randn((n, a), gen), uniform((n, a), gen, -2.0, 1.0), randn((n, a), gen)
    scale = bias = lo = hi = None
    if kind in ("scaled", "bounded"):
        scale, bias = uniform((a,), gen, 0.5, 3.0), randn((a,), gen)
    if kind == "bounded":
        lo, hi = -5.0, 2.0
    return mean, log_std, noise, scale, bias, lo, hi


@pytest.mark.parametrize("kind", ["plain", "scaled", "bounded"])
@pytest.mark.parametrize("with_target", [False, True])
@pytest.mark.parametrize("n,a", [(1, 1), (7, 6), (300, 17)])
def test_squashed_gaussian_equals_the_python_custom_op(gen, ext, kind, with_target, n, a):
    mean, log_std, noise, scale, bias, lo, hi = _sg_args(gen, n, a, kind)
    target = torch.tensor(-float(a), device=DEVICE) if with_target else None
    w_a, w_lp = randn((n, a), gen), randn((n,), gen)
    results = []
    for op in (ext.squashed_gaussian, lambda *args: torch.ops.fastsac.squashed_gaussian(*args, "cpp")):
        m, s = mean.clone().requires_grad_(), log_std.clone().requires_grad_()
        action, log_prob, gap = op(m, s, noise, scale, bias, lo, hi, target)
        grads = torch.autograd.grad((action * w_a).sum() + (log_prob * w_lp).sum(), (m, s))
        results.append((action.detach(), log_prob.detach(), gap, *grads))
    for name, got, want in zip(("action", "log_prob", "gap", "d_mean", "d_log_std"), *results):
        assert got.shape == want.shape and got.dtype == want.dtype, name
        torch.testing.assert_close(got, want, rtol=0, atol=0, msg=f"{name} differs from the Python custom op")
    if with_target:  # the gap: mean(log_prob) + target, from the kernel's partial sums
        torch.testing.assert_close(results[0][2], results[0][1].double().mean().float() + target, rtol=1e-6,
                                   atol=1e-6)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("with_target", [False, True])
def test_categorical_equals_the_python_custom_op(gen, ext, masked, with_target):
    logits = randn((40, 5), gen, scale=3.0)
    if masked:
        logits[::3, 1] = float("-inf")
    target = torch.tensor(1.0, device=DEVICE) if with_target else None
    w_p, w_lp, w_h = randn((40, 5), gen), randn((40, 5), gen), randn((40,), gen)
    results = []
    for op in (ext.categorical, lambda z, t: torch.ops.fastsac.categorical(z, t, "cpp")):
        z = logits.clone().requires_grad_()
        p, lp, h, gap = op(z, target)
        lp_used = lp.masked_fill(torch.isinf(lp), 0.0)
        (d,) = torch.autograd.grad((p * w_p).sum() + (lp_used * w_lp).sum() + (h * w_h).sum(), z)
        results.append((p.detach(), lp.detach(), h.detach(), gap, d))
    for name, got, want in zip(("probs", "log_probs", "entropy", "gap", "d_logits"), *results):
        torch.testing.assert_close(got, want, rtol=0, atol=0, msg=f"{name} differs from the Python custom op")


def test_opcheck_squashed_gaussian(gen, ext):
    """Schema, fake function, autograd registration and their agreement, as torch checks them for custom ops."""
    for kind in ("plain", "bounded"):
        mean, log_std, noise, scale, bias, lo, hi = _sg_args(gen, 9, 4, kind)
        mean.requires_grad_()
        log_std.requires_grad_()
        torch.library.opcheck(ext.squashed_gaussian.default,
                              (mean, log_std, noise, scale, bias, lo, hi, torch.tensor(-4.0, device=DEVICE)))
        torch.library.opcheck(ext.squashed_gaussian_backward.default,
                              (randn((9, 4), gen), randn((9,), gen), mean.detach(), log_std.detach(), noise, scale,
                               lo, hi))


def test_opcheck_categorical(gen, ext):
    logits = randn((9, 4), gen).requires_grad_()
    torch.library.opcheck(ext.categorical.default, (logits, torch.tensor(0.5, device=DEVICE)))
    torch.library.opcheck(ext.categorical_backward.default,
                          (randn((9, 4), gen), randn((9, 4), gen), randn((9,), gen), logits.detach()))


def test_the_dispatcher_ops_reject_bad_input_clearly(gen, ext):
    mean = randn((4, 3), gen)
    with pytest.raises(RuntimeError, match="log_std must have shape"):
        ext.squashed_gaussian(mean, randn((4, 2), gen), mean, None, None, None, None, None)
    with pytest.raises(RuntimeError, match="logits must be 2-D"):
        ext.categorical(randn((4,), gen), None)


def test_compiled_code_runs_the_dispatcher_ops(gen, ext, monkeypatch):
    """With the extension as the backend, compiled code calls the dispatcher ops, never the Python custom ops, and
    gets the eager path's numbers."""

    def boom(*args, **kwargs):
        raise AssertionError("compiled code used the Python custom op")

    monkeypatch.setattr(sg_mod, "_squashed_gaussian", boom)
    monkeypatch.setattr(cat_mod, "_categorical", boom)
    mean, log_std, noise = randn((64, 6), gen), randn((64, 6), gen), randn((64, 6), gen)
    logits = randn((64, 5), gen)
    log_alpha = torch.tensor(0.3, device=DEVICE)

    def f(mean, log_std, logits):
        action, log_prob, alpha_loss = ops.squashed_gaussian_with_alpha_loss(
            mean, log_std, noise, log_alpha, -6.0, log_std_bounds=(-5.0, 2.0), backend="cpp")
        p, lp, h = ops.categorical(logits, backend="cpp")
        return (action.sum() + log_prob.sum() + (p * lp).sum() + h.sum()), alpha_loss

    results = []
    for run in (f, torch.compile(f, fullgraph=True, backend="aot_eager")):
        m, s, z = (t.clone().requires_grad_() for t in (mean, log_std, logits))
        loss, alpha_loss = run(m, s, z)
        results.append((loss.detach(), alpha_loss, *torch.autograd.grad(loss, (m, s, z))))
    for name, got, want in zip(("loss", "alpha_loss", "d_mean", "d_log_std", "d_logits"), *results):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6, msg=name)


def test_without_the_extension_compiled_code_keeps_the_python_custom_op(gen, monkeypatch):
    """Another backend (here torch) inside torch.compile is the Python custom op's node."""
    calls = []
    original = sg_mod._squashed_gaussian

    def counting(*args):
        calls.append(args[-1])
        return original(*args)

    monkeypatch.setattr(sg_mod, "_squashed_gaussian", counting)
    mean = randn((8, 3), gen)

    @torch.compile(fullgraph=True, backend="aot_eager")
    def f(mean):
        return ops.squashed_gaussian(mean, mean, mean, backend="torch")[1].sum()

    f(mean)
    assert calls and set(calls) == {"torch"}


def test_a_module_built_before_an_op_is_left_alone(cpp_extension):
    """An extension module whose namespace lacks an op (built before the op was added) registers nothing for it and
    importing fastsac.ops does not fail (the op then runs on the other backends)."""
    module = extension.module_for(DEVICE.type)
    calls = []
    extension.register_dispatcher_op("no_such_op", calls.append, calls.append, lambda op: calls.append(op))
    assert calls == [] and not hasattr(getattr(torch.ops, module.op_namespace), "no_such_op")
    extension._registrars.pop()  # leave the registrar list as it was
