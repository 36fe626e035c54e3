"""The Triton primitives of the categorical TD loss (``fastsac/kernels/categorical_td.py``) against float64.

Without CUDA they run under the Triton interpreter on CPU tensors (tests/conftest.py sets TRITON_INTERPRET=1); with
CUDA the same tests run on the GPU with the GPU launch shapes. The float64 truth is a dense projection matrix written
here (``m_j = sum_k p_k max(0, 1 - |pos_k - j|)``, the C51 split); the accuracy rule is tests/accuracy.py's: at most
twice the torch reference's own error in the same dtype (on the inputs and on +-4-ulp perturbed copies) plus a few
ulps. Every output buffer is allocated NaN-filled through the launchers' ``_alloc`` hook, so an element a kernel
fails to write shows up.
"""

from __future__ import annotations

import os

import pytest
import torch

if not torch.cuda.is_available():  # the interpreter must be chosen before the kernels are decorated
    assert os.environ.get("TRITON_INTERPRET") == "1", "tests/conftest.py should set TRITON_INTERPRET=1 without CUDA"

triton = pytest.importorskip("triton")

import fastsac.kernels as K  # noqa: E402
import fastsac.kernels.categorical_td as td_mod  # noqa: E402
from fastsac.ops import reference as ref  # noqa: E402
from tests.accuracy import assert_within_reference_error, reference_evaluations  # noqa: E402

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
GAMMA, V_MIN, V_MAX = 0.99, -5.0, 7.0


@pytest.fixture(autouse=True)
def poisoned(monkeypatch):
    """Every output allocation of the launchers NaN-filled; yields their list."""
    allocated = []

    def alloc(shape, dtype, device):
        t = torch.full(shape, float("nan"), dtype=dtype, device=device)
        allocated.append(t)
        return t

    monkeypatch.setattr(td_mod, "_alloc", alloc)
    return allocated


def case(gen, C, B, Kn, dtype=torch.float32):
    draw = lambda *s, scale=1.0: (torch.randn(*s, generator=gen, dtype=torch.float64) * scale)  # noqa: E731
    logits = draw(C, B, Kn, scale=2.0).to(DEVICE, dtype)
    p = torch.softmax(draw(B, Kn, scale=2.0), -1).float().to(DEVICE)
    reward = draw(B, scale=4.0).float().to(DEVICE)
    not_done = (torch.rand(B, generator=gen) > 0.25).float().to(DEVICE)
    ent = draw(B, scale=0.5).float().to(DEVICE)
    return logits, p, reward, not_done, ent


def truth64(logits, p, reward, not_done, ent, gamma=GAMMA, v_min=V_MIN, v_max=V_MAX):
    """(loss, m, softmax) in float64: the projection as a dense (B, K, K) matrix of C51 shares."""
    p, reward, not_done, ent = p.double(), reward.double(), not_done.double(), ent.double()
    Kn = p.shape[-1]
    dz = (v_max - v_min) / (Kn - 1)
    j = torch.arange(Kn, dtype=torch.float64, device=p.device)
    t = (reward[:, None] + gamma * not_done[:, None] * (v_min + j * dz - ent[:, None])).clamp(v_min, v_max)
    pos = ((t - v_min) / dz).clamp(0, Kn - 1)
    m = (p[:, :, None] * (1 - (pos[:, :, None] - j).abs()).clamp_min(0)).sum(1)
    log_p = torch.log_softmax(logits.double(), -1)
    return -(log_p * m).sum(-1), m, log_p.exp()


def check_fwd_bwd(args, poisoned, gen):
    logits = args[0]
    dtype = logits.dtype
    loss, m = K.categorical_td_fwd(*args, GAMMA, V_MIN, V_MAX)
    want_loss, want_m, soft = truth64(*args)
    assert m.dtype == torch.float32 and loss.dtype == dtype and loss.shape == logits.shape[:2]
    evals = reference_evaluations(lambda *a: ref.categorical_td_fwd(*a, GAMMA, V_MIN, V_MAX)[0], args, dtype)
    assert_within_reference_error("loss", loss, want_loss, evals)
    m_evals = reference_evaluations(lambda *a: ref.categorical_td_fwd(*a, GAMMA, V_MIN, V_MAX)[1], args,
                                    torch.float32)
    assert_within_reference_error("m", m, want_m, m_evals, scale=args[1].double().amax(-1, keepdim=True))
    g = (torch.randn(logits.shape[:2], generator=gen, dtype=torch.float64)).to(DEVICE, dtype)
    d = K.categorical_td_bwd(g, logits, m)
    mass = want_m.sum(-1, keepdim=True)
    want_d = g.double()[..., None] * (soft * mass - want_m)
    d_evals = reference_evaluations(lambda gg, z: ref.categorical_td_bwd(gg, z, m), (g, logits), dtype)
    assert_within_reference_error("d_logits", d, want_d, d_evals,
                                  scale=g.double().abs()[..., None] * (soft * mass + want_m))
    ptrs = {t.data_ptr() for t in poisoned}
    assert {loss.data_ptr(), m.data_ptr(), d.data_ptr()} <= ptrs, "outputs not allocated through the poisoning hook"


@pytest.mark.parametrize("C,B,Kn", [(2, 1, 101), (1, 7, 2), (2, 300, 51), (3, 33, 11), (2, 5, 256)])
def test_fp32(C, B, Kn, gen, poisoned):
    check_fwd_bwd(case(gen, C, B, Kn), poisoned, gen)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_low_precision(dtype, gen, poisoned):
    check_fwd_bwd(case(gen, 2, 40, 51, dtype), poisoned, gen)


@pytest.mark.parametrize("C,B,block", [(2, 7, 2), (1, 300, 64), (2, 1, 4)])
def test_many_programs(C, B, block, gen, poisoned, monkeypatch):
    """Several programs with a ragged last one in both kernels, even under the interpreter."""
    monkeypatch.setattr(td_mod, "_FORCE_BLOCK_B", block)
    monkeypatch.setattr(td_mod, "_FORCE_BLOCK_N", block)
    check_fwd_bwd(case(gen, C, B, 21), poisoned, gen)


def test_terminal_and_exact_positions(gen, poisoned):
    """not_done = 0 puts everything beside the reward; integer shifts on a dz = 1 support land exactly on atoms."""
    B, Kn = 4, 13  # support -5 .. 7, dz = 1
    logits, p, _, _, ent = case(gen, 2, B, Kn)
    reward = torch.tensor([2.0, -1.25, 100.0, 3.0], device=DEVICE)
    not_done = torch.tensor([0.0, 0.0, 1.0, 1.0], device=DEVICE)
    zero_ent = torch.zeros(B, device=DEVICE)
    _, m = K.categorical_td_fwd(logits, p, reward, not_done, zero_ent, 1.0, V_MIN, V_MAX)
    want = torch.zeros(B, Kn, dtype=torch.float64)
    want[0, 7] = 1.0
    want[1, 3], want[1, 4] = 0.25, 0.75
    want[2, -1] = 1.0
    want[3, 3:] = p[3, :-3].double().cpu()
    want[3, -1] += p[3, -3:].double().sum().cpu()
    want[:3] *= p[:3].double().sum(-1, keepdim=True).cpu()
    torch.testing.assert_close(m.double().cpu(), want, rtol=0, atol=2e-6)
    del ent


def test_empty_batch(poisoned):
    logits = torch.empty(2, 0, 5, device=DEVICE)
    z = torch.empty(0, device=DEVICE)
    loss, m = K.categorical_td_fwd(logits, torch.empty(0, 5, device=DEVICE), z, z, z, GAMMA, V_MIN, V_MAX)
    assert loss.shape == (2, 0) and m.shape == (0, 5)
    assert K.categorical_td_bwd(torch.empty(2, 0, device=DEVICE), logits, m).shape == (2, 0, 5)


def test_rejects_bad_inputs(gen):
    logits, p, r, nd, ent = case(gen, 2, 4, 6)
    fwd = lambda *a: K.categorical_td_fwd(*a, GAMMA, V_MIN, V_MAX)  # noqa: E731
    with pytest.raises(ValueError, match="3-D"):
        fwd(logits[0], p, r, nd, ent)
    with pytest.raises(ValueError, match="2 <= K <= 256"):
        fwd(logits[..., :1].contiguous(), p[:, :1].contiguous(), r, nd, ent)
    with pytest.raises(ValueError, match="2 <= K <= 256"):
        big = torch.zeros(1, 4, 257, device=DEVICE)
        fwd(big, torch.zeros(4, 257, device=DEVICE), r, nd, ent)
    with pytest.raises(TypeError, match="float64"):
        fwd(logits.double(), p, r, nd, ent)
    with pytest.raises(ValueError, match="target_probs must be a contiguous torch.float32"):
        fwd(logits, p.half(), r, nd, ent)
    with pytest.raises(ValueError, match="reward must be"):
        fwd(logits, p, r[:3], nd, ent)
    with pytest.raises(ValueError, match="must be contiguous"):
        fwd(logits.transpose(0, 1), p, r, nd, ent)
    _, m = fwd(logits, p, r, nd, ent)
    with pytest.raises(ValueError, match="grad_loss must be"):
        K.categorical_td_bwd(torch.zeros(2, 3, device=DEVICE), logits, m)
    with pytest.raises(ValueError, match="m must be"):
        K.categorical_td_bwd(torch.zeros(2, 4, device=DEVICE), logits, m[:3])
