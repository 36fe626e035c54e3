"""categorical and categorical_with_alpha_loss on every backend against float64 references."""

from __future__ import annotations

import importlib

import pytest
import torch

from fastsac import ops

from tests.accuracy import assert_within_reference_error, reference_evaluations

from .conftest import DEVICE, randn


def make_logits(gen, n, a, dtype=torch.float32, scale=3.0):
    return randn((n, a), gen, dtype, scale=scale)


def reference64(logits):
    """Independent float64 ground truth: torch's log_softmax, entropy with 0 log 0 = 0."""
    log_probs = torch.log_softmax(logits.double(), -1)
    probs = log_probs.exp()
    entropy = -torch.where(probs > 0, probs * log_probs, torch.zeros((), dtype=torch.float64, device=probs.device)).sum(-1)
    return probs, log_probs, entropy


def plain_torch(logits):
    """PyTorch's own evaluation in the input dtype."""
    log_probs = torch.log_softmax(logits, -1)
    probs = torch.softmax(logits, -1)
    return probs, log_probs, -(probs * log_probs).sum(-1)


def assert_within_torch_error(logits, outputs):
    """The house rule (tests/accuracy.py): error against float64 at most ~2x PyTorch's own error in the same dtype
    (on the logits and on +-4-ulp perturbed copies), plus a few ulps; the entropy is a sum of non-negative terms,
    so its own magnitude bounds its rounding."""
    evals = reference_evaluations(plain_torch, (logits,), logits.dtype)
    for i, (ours, ref, what) in enumerate(zip(outputs, reference64(logits), ("probs", "log_probs", "entropy"))):
        assert_within_reference_error(what, ours, ref, [e[i] for e in evals])


@pytest.mark.parametrize("n", [1, 7, 300])
@pytest.mark.parametrize("a", [1, 2, 6, 17, 64])
def test_forward_matches_float64(backend, gen, n, a):
    logits = make_logits(gen, n, a)
    probs, log_probs, entropy = ops.categorical(logits, backend=backend)
    assert probs.shape == log_probs.shape == logits.shape and entropy.shape == (n,)
    assert_within_torch_error(logits, (probs, log_probs, entropy))
    torch.testing.assert_close(probs.double().sum(-1), torch.ones(n, dtype=torch.float64, device=DEVICE), rtol=0, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_within_rounding(backend, gen, dtype):
    logits = make_logits(gen, 129, 9, dtype)
    assert_within_torch_error(logits, ops.categorical(logits, backend=backend))


def test_extreme_logits_and_masked_actions(backend, gen):
    """Huge logit gaps stay exact; -inf logits (masked actions) give probability 0 and no NaN anywhere."""
    logits = make_logits(gen, 40, 7, scale=300.0)
    logits[::3, 2] = float("-inf")
    logits[1::4, 0] = float("-inf")
    probs, log_probs, entropy = ops.categorical(logits, backend=backend)
    ref_probs, ref_log_probs, ref_entropy = reference64(logits)
    assert torch.isfinite(probs).all() and torch.isfinite(entropy).all()
    assert (probs[::3, 2] == 0).all() and (log_probs[::3, 2] == float("-inf")).all()
    finite = torch.isfinite(ref_log_probs)
    torch.testing.assert_close(log_probs.double()[finite], ref_log_probs[finite], rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(entropy.double(), ref_entropy, rtol=1e-5, atol=1e-6)
    # Gradients through a masked row stay finite and the masked action gets none.
    x = logits.clone().requires_grad_()
    p, lp, h = ops.categorical(x, backend=backend)
    (h.sum() + (p * randn(p.shape, gen)).sum()).backward()
    assert torch.isfinite(x.grad).all()
    assert (x.grad[::3, 2] == 0).all()


@pytest.mark.parametrize("a", [1, 3, 17])
def test_gradients_match_float64_autograd(backend, gen, a):
    n = 11
    logits = make_logits(gen, n, a)
    w_p, w_lp, w_h = randn((n, a), gen), randn((n, a), gen), randn((n,), gen)
    x = logits.clone().requires_grad_()
    p, lp, h = ops.categorical(x, backend=backend)
    ((p * w_p).sum() + (lp * w_lp).sum() + (h * w_h).sum()).backward()
    x64 = logits.double().requires_grad_()
    p64, lp64, h64 = reference64(x64)
    ((p64 * w_p.double()).sum() + (lp64 * w_lp.double()).sum() + (h64 * w_h.double()).sum()).backward()
    torch.testing.assert_close(x.grad.double(), x64.grad, rtol=1e-5, atol=2e-6)


def test_gradcheck_float64(backend, gen):
    from fastsac.ops import backends as _backends

    if torch.float64 not in getattr(_backends.backend_module(backend), "SUPPORTED_DTYPES", (torch.float64,)):
        pytest.skip(f"the {backend} backend computes in float32 only; its gradients are checked against float64 above")
    logits = make_logits(gen, 4, 5).double().requires_grad_()
    assert torch.autograd.gradcheck(lambda x: ops.categorical(x, backend=backend), (logits,))
    la = torch.tensor(-0.4, dtype=torch.float64, device=DEVICE, requires_grad=True)
    fused = lambda x, la: ops.categorical_with_alpha_loss(x, la, 1.2, backend=backend)  # noqa: E731
    assert torch.autograd.gradcheck(lambda x: fused(x, la.detach())[:3], (logits,))
    assert torch.autograd.gradcheck(lambda la: fused(logits.detach(), la)[3], (la,))


@pytest.mark.parametrize("target_as_tensor", [False, True])
def test_alpha_loss_value_and_gradient(backend, gen, target_as_tensor):
    n, a = 257, 5
    logits = make_logits(gen, n, a)
    log_alpha = torch.tensor(0.4, device=DEVICE, requires_grad=True)
    target = 0.98 * torch.log(torch.tensor(float(a))).item()
    target_arg = torch.tensor(target, device=DEVICE) if target_as_tensor else target
    x = logits.clone().requires_grad_()
    probs, log_probs, entropy, alpha_loss = ops.categorical_with_alpha_loss(x, log_alpha, target_arg, backend=backend)
    gap = reference64(logits)[2].mean() - target
    torch.testing.assert_close(alpha_loss.double(), 0.4 * gap, rtol=1e-5, atol=1e-6)
    alpha_loss.backward(retain_graph=True)
    torch.testing.assert_close(log_alpha.grad.double(), gap, rtol=1e-5, atol=1e-6)
    assert x.grad is None, "the alpha loss must not reach the logits"
    for fused, plain in zip((probs, log_probs, entropy), ops.categorical(logits, backend=backend)):
        torch.testing.assert_close(fused, plain, rtol=0, atol=0)


def test_alpha_rises_when_entropy_below_target(backend, gen):
    """Peaked logits (low entropy) against the near-uniform target: the gradient step raises log_alpha."""
    logits = make_logits(gen, 64, 4, scale=10.0)
    for sign_below, target in ((True, 0.98 * torch.log(torch.tensor(4.0)).item()), (False, 0.01)):
        log_alpha = torch.tensor(0.0, device=DEVICE, requires_grad=True)
        *_, loss = ops.categorical_with_alpha_loss(logits, log_alpha, target, backend=backend)
        loss.backward()
        stepped = log_alpha.detach() - 0.1 * log_alpha.grad
        assert (stepped > 0).item() == sign_below


def test_opcheck(backend, gen):
    cat = importlib.import_module("fastsac.ops.categorical")  # the module; the package exports the function
    logits = make_logits(gen, 6, 5).requires_grad_()
    torch.library.opcheck(cat._categorical, (logits, None, backend))
    torch.library.opcheck(cat._categorical, (logits, torch.tensor(1.0, device=DEVICE), backend))
    g = (randn((6, 5), gen), randn((6, 5), gen), randn((6,), gen))
    torch.library.opcheck(cat._categorical_backward, (*g, logits.detach(), backend))


def test_leading_dims_and_non_contiguous(backend, gen):
    base = make_logits(gen, 4 * 3, 10).reshape(4, 3, 10)
    logits = base[..., ::2]
    assert not logits.is_contiguous()
    probs, log_probs, entropy = ops.categorical(logits, backend=backend)
    assert probs.shape == (4, 3, 5) and entropy.shape == (4, 3)
    for got, want in zip((probs, log_probs, entropy), ops.categorical(logits.contiguous(), backend=backend)):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_bad_inputs_raise_clear_errors(gen):
    logits = make_logits(gen, 3, 4)
    cases = [
        (TypeError, "dtype", lambda: ops.categorical(logits.long())),
        (TypeError, "torch.Tensor", lambda: ops.categorical([[0.0, 1.0]])),
        (ValueError, "0-dim", lambda: ops.categorical_with_alpha_loss(logits, torch.zeros(2), 1.0)),
        (ValueError, "device", lambda: ops.categorical_with_alpha_loss(logits, torch.zeros((), device="meta"), 1.0)),
        (TypeError, "target_entropy", lambda: ops.categorical_with_alpha_loss(logits, torch.zeros(()), "high")),
        (ValueError, "empty", lambda: ops.categorical(logits[:0])),
    ]
    for exc, words, call in cases:
        with pytest.raises(exc, match=words):
            call()
