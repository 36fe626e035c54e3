"""The CUDA registrations of the custom ops, checked without a GPU.

``torch.library.opcheck`` on meta tensors with the CUDA-device backends: schema, autograd registration and AOT
dispatch (its fake-versus-real comparison is trivial on meta, where both run the fake implementation). And the fake
implementations of the forward and backward ops on fake CUDA tensors (what ``torch.compile`` traces the learner's
update with on a GPU), checked against the shapes, dtypes and device every output must have. The kernels
themselves need a GPU (tests/csrc/test_cuda_ext.py, tests/kernels). Runs on any torch build, CUDA or not.
"""

from __future__ import annotations

import importlib

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

sg = importlib.import_module("fastsac.ops.squashed_gaussian")  # the modules; the package exports the functions
cat = importlib.import_module("fastsac.ops.categorical")

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
CUDA_BACKENDS = ["triton", "cpp"]


def _sg_args(device, dtype, n=7, a=3, *, affine=True, bounds=True, target=True):
    """Arguments of the forward op; on meta, ``mean`` and ``log_std`` require grad (opcheck then checks autograd;
    the autograd engine itself needs a real device, so the fake CUDA checks call the backward op directly)."""
    cd = torch.float64 if dtype == torch.float64 else torch.float32
    mean, log_std = (torch.randn(n, a, device=device, dtype=dtype).requires_grad_(device == "meta") for _ in range(2))
    noise = torch.randn(n, a, device=device, dtype=dtype)
    scale = torch.ones(a, device=device, dtype=cd) * 2.0 if affine else None
    bias = torch.zeros(a, device=device, dtype=cd) if affine else None
    lo, hi = (-5.0, 2.0) if bounds else (None, None)
    tgt = torch.tensor(-3.0, device=device, dtype=cd) if target else None
    return mean, log_std, noise, scale, bias, lo, hi, tgt


@pytest.mark.parametrize("backend", CUDA_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_opcheck_on_meta_tensors(backend, dtype):
    for variant in ({}, {"affine": False, "bounds": False, "target": False}, {"target": False}):
        torch.library.opcheck(sg._squashed_gaussian, (*_sg_args("meta", dtype, **variant), backend))
    mean, log_std, noise, scale, _, lo, hi, _ = _sg_args("meta", dtype)
    grads = (torch.randn(7, 3, device="meta", dtype=dtype), torch.randn(7, device="meta", dtype=dtype))
    torch.library.opcheck(sg._squashed_gaussian_backward,
                          (*grads, mean.detach(), log_std.detach(), noise, scale, lo, hi, backend))
    logits = torch.randn(6, 5, device="meta", dtype=dtype).requires_grad_()
    torch.library.opcheck(cat._categorical, (logits, None, backend))
    torch.library.opcheck(cat._categorical, (logits, torch.tensor(1.0, device="meta"), backend))
    g = (torch.randn(6, 5, device="meta", dtype=dtype), torch.randn(6, 5, device="meta", dtype=dtype),
         torch.randn(6, device="meta", dtype=dtype))
    torch.library.opcheck(cat._categorical_backward, (*g, logits.detach(), backend))


@pytest.mark.parametrize("backend", CUDA_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_fake_cuda_outputs(backend, dtype):
    with FakeTensorMode():
        mean, log_std, noise, scale, bias, lo, hi, target = _sg_args("cuda", dtype, n=9, a=4)
        action, log_prob, gap = sg._squashed_gaussian(mean, log_std, noise, scale, bias, lo, hi, target, backend)
        assert (action.shape, log_prob.shape, gap.shape) == ((9, 4), (9,), ())
        assert {action.dtype, log_prob.dtype} == {dtype} and gap.dtype == torch.float32
        assert {t.device.type for t in (action, log_prob, gap)} == {"cuda"}
        d_mean, d_log_std = sg._squashed_gaussian_backward(torch.empty_like(action), torch.empty_like(log_prob),
                                                           mean, log_std, noise, scale, lo, hi, backend)
        assert d_mean.shape == d_log_std.shape == (9, 4) and {d_mean.dtype, d_log_std.dtype} == {dtype}
        assert d_mean.device.type == d_log_std.device.type == "cuda"

        logits = torch.randn(9, 5, device="cuda", dtype=dtype)
        probs, log_probs, entropy, gap = cat._categorical(logits, torch.tensor(1.0, device="cuda"), backend)
        assert (probs.shape, log_probs.shape, entropy.shape, gap.shape) == ((9, 5), (9, 5), (9,), ())
        assert {t.device.type for t in (probs, log_probs, entropy, gap)} == {"cuda"}
        d_logits = cat._categorical_backward(probs, log_probs, entropy, logits, backend)
        assert d_logits.shape == (9, 5) and d_logits.dtype == dtype and d_logits.device.type == "cuda"


td = importlib.import_module("fastsac.ops.categorical_td")


def _td_args(device, dtype, members=2, b=7, k=11):
    logits = torch.randn(members, b, k, device=device, dtype=dtype).requires_grad_(device == "meta")
    side = [torch.rand(b, k, device=device), torch.randn(b, device=device), torch.ones(b, device=device),
            torch.randn(b, device=device)]  # float32: the compute dtype of 16-bit and float32 logits
    return (logits, *side, 0.99, -5.0, 5.0)


@pytest.mark.parametrize("backend", CUDA_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_categorical_td_on_meta_and_fake_cuda(backend, dtype):
    args = _td_args("meta", dtype)
    torch.library.opcheck(td._categorical_td, (*args, backend))
    m = torch.rand(7, 11, device="meta")
    torch.library.opcheck(td._categorical_td_backward,
                          (torch.randn(2, 7, device="meta", dtype=dtype), args[0].detach(), m, backend))
    with FakeTensorMode():
        args = _td_args("cuda", dtype, members=3, b=9, k=101)
        loss, m = td._categorical_td(*args, backend)
        assert loss.shape == (3, 9) and loss.dtype == dtype and loss.device.type == "cuda"
        assert m.shape == (9, 101) and m.dtype == torch.float32 and m.device.type == "cuda"
        d = td._categorical_td_backward(torch.empty_like(loss), args[0], m, backend)
        assert d.shape == (3, 9, 101) and d.dtype == dtype and d.device.type == "cuda"
