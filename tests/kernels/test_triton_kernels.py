"""The Triton primitives (``fastsac.kernels``) against the float64 reference (``fastsac.ops.reference``).

Without CUDA they run under the Triton interpreter on CPU tensors (tests/conftest.py sets TRITON_INTERPRET=1
before anything imports the kernels); with CUDA the same tests run on the GPU with the GPU launch shapes.

Accuracy rule (house style): with ``err(x) = max |x - r64| / (|r64| + 1)`` over the finite reference values, a
kernel output may be off by at most twice the torch reference's own error in the same input dtype, plus a small
absolute term (ATOL). Infinite reference values (masked actions) must be matched exactly. For float32, "torch's own
error" is the worst over its evaluation on the inputs and on two copies perturbed by +-4 ulps: a single evaluation
can be lucky exactly where the problem is ill-conditioned (u = mean + sigma * noise cancelling to ~0 amplifies every
rounding), while the kernel's exp/log are less accurate than torch's CPU ones (numpy's float32 exp/log under the
interpreter: up to 2.3 / 3.2 ulp, measured, against 0.55; ex2.approx.f32 after a rounded x*log2(e) on the GPU: ~2 ulp
+ |x| * 2^-24). A 4-ulp input perturbation models those differences as the backward errors they are.

Every output buffer is allocated NaN-filled through the launchers' ``_alloc`` hook, so an element a kernel fails
to write shows up. Under the interpreter, fp32 -> bf16 casts are patched to round to nearest even as the GPU does
(see ``bf16_rounds_to_nearest`` in tests/conftest.py).
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

if not torch.cuda.is_available():  # the interpreter must be chosen before the kernels are decorated
    assert os.environ.get("TRITON_INTERPRET") == "1", "tests/conftest.py should set TRITON_INTERPRET=1 without CUDA"

triton = pytest.importorskip("triton")
tl = pytest.importorskip("triton.language")

import fastsac.kernels as K  # noqa: E402
import fastsac.kernels.categorical as cat_mod  # noqa: E402
import fastsac.kernels.squashed_gaussian as sg_mod  # noqa: E402
from fastsac.ops import reference as ref  # noqa: E402
from tests.accuracy import perturbed  # noqa: E402

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
LOW_PRECISION = (torch.bfloat16, torch.float16)
# The "small absolute term" of the accuracy rule, in units of err(): a few roundings of the output format.
ATOL = {torch.float32: 4 * torch.finfo(torch.float32).eps, torch.bfloat16: 2**-9, torch.float16: 2**-12}
# Design target: fp32 relative error well under 1e-5 on normal inputs (test_fp32_design_accuracy).
FP32_TARGET = 1e-5

NS = (1, 7, 300)
AS = (1, 6, 17, 64)
SG_OPTIONS = ("plain", "scale_bias", "bounds", "all")


# ----------------------------------------------------------------------------------------------------------------
# Fixtures and helpers
# ----------------------------------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def poisoned_outputs(monkeypatch):
    """Route every output / partial-sum allocation of the launchers to NaN-filled buffers; yield their list."""
    allocated = []

    def alloc(shape, dtype, device):
        t = torch.full(shape, float("nan"), dtype=dtype, device=device)
        allocated.append(t)
        return t

    monkeypatch.setattr(sg_mod, "_alloc", alloc)
    monkeypatch.setattr(cat_mod, "_alloc", alloc)
    return allocated


@pytest.fixture
def force_block_n(monkeypatch):
    """Force BLOCK_N in both launchers: several programs and a ragged last tile even under the interpreter."""

    def setter(block_n):
        monkeypatch.setattr(sg_mod, "_FORCE_BLOCK_N", block_n)
        monkeypatch.setattr(cat_mod, "_FORCE_BLOCK_N", block_n)

    return setter


def assert_from_poisoned(outputs, allocated):
    """The tensors returned are the NaN-poisoned buffers (so the hook is live and 'all finite' means 'all written')."""
    ptrs = {t.data_ptr() for t in allocated}
    for out in outputs:
        if out is not None and out.dim() > 0 and out.numel() > 0:
            assert out.data_ptr() in ptrs, "output was not allocated through the poisoning hook"


def randn(shape, gen, scale=1.0):
    return (torch.randn(shape, generator=gen, dtype=torch.float64) * scale).to(DEVICE)


def uniform(shape, gen, lo, hi):
    return (torch.rand(shape, generator=gen, dtype=torch.float64) * (hi - lo) + lo).to(DEVICE)


def err(x: torch.Tensor, r64: torch.Tensor, floor: float = 1.0, tiny: float = 0.0) -> float:
    """``max |x - r| / (|r| + floor)`` over the finite entries of the float64 reference ``r`` above ``tiny``."""
    keep = torch.isfinite(r64) & (r64.abs() > tiny)
    if not bool(keep.any()):
        return 0.0
    x, r = x.double()[keep], r64[keep]
    return float(((x - r).abs() / (r.abs() + floor)).max())


def check(name, actual, torch_variants, r64, dtype):
    """Dtype, shape, finiteness pattern and the 2x-torch accuracy rule for one output.

    ``torch_variants``: the torch reference's outputs in the same dtype (first on the very inputs, then on the
    perturbed copies for float32); its error is the worst of them.
    """
    expected = torch_variants[0]
    assert actual.dtype == expected.dtype, f"{name}: dtype {actual.dtype} != {expected.dtype}"
    assert actual.shape == r64.shape, f"{name}: shape {tuple(actual.shape)} != {tuple(r64.shape)}"
    assert not bool(torch.isnan(actual).any()), f"{name}: NaN in the output (an element left unwritten?)"
    finite = torch.isfinite(r64)
    assert torch.equal(torch.isfinite(actual), finite), f"{name}: finite where the reference is not, or vice versa"
    assert torch.equal(actual.double()[~finite], r64[~finite]), f"{name}: infinities differ from the reference"
    e_kernel = err(actual, r64)
    e_torch = max(err(v, r64) for v in torch_variants)
    bound = 2.0 * e_torch + ATOL[dtype]
    assert e_kernel <= bound, f"{name}: error {e_kernel:.3g} > 2 x torch's {e_torch:.3g} + {ATOL[dtype]:.3g}"


def torch_variants(fn, args, gen):
    """``fn`` (a torch reference) on ``args`` and, for float32 inputs, on two copies with every float32 tensor
    perturbed by +-4 ulps (tests/accuracy.py). Returns a list of output tuples."""
    outs = [fn(*args)]
    if any(isinstance(a, torch.Tensor) and a.dtype == torch.float32 and a.dim() == 2 for a in args):
        outs += [fn(*perturbed(args, gen, torch.float32)) for _ in range(2)]
    return outs


def d64(t):
    return t.double() if isinstance(t, torch.Tensor) else t


# ----------------------------------------------------------------------------------------------------------------
# Squashed Gaussian
# ----------------------------------------------------------------------------------------------------------------
def sg_inputs(gen, n, a, dtype, option, saturate=False):
    if saturate:  # |u| from 20 up to 50: tanh is +-1 in every float format, log(1 - tanh^2) ~ -2|u|
        sign = torch.where(uniform((n, a), gen, 0.0, 1.0) < 0.5, -1.0, 1.0)
        mean = uniform((n, a), gen, 20.0, 49.0) * sign
        log_std = uniform((n, a), gen, -6.0, -2.0)  # sigma * |noise| < 1: |u| stays below 50
    else:
        mean = randn((n, a), gen, 2.0)
        log_std = uniform((n, a), gen, -3.0, 1.5)
    noise = randn((n, a), gen)
    scale = bias = lo = hi = None
    if option in ("scale_bias", "all"):
        sign = torch.where(uniform((a,), gen, 0.0, 1.0) < 0.25, -1.0, 1.0)  # log|scale|: negative scales too
        scale = (uniform((a,), gen, 0.3, 3.0) * sign).float()
        bias = randn((a,), gen).float()
    if option in ("bounds", "all"):
        lo, hi = -5.0, 2.0
        if not saturate:
            log_std = randn((n, a), gen, 2.0)  # raw network output: saturates the bound's tanh sometimes
    return mean.to(dtype), log_std.to(dtype), noise.to(dtype), scale, bias, lo, hi


def check_sg_fwd(inputs, want_sum, dtype, allocated, gen):
    mean, log_std, noise, scale, bias, lo, hi = inputs
    out = K.squashed_gaussian_fwd(mean, log_std, noise, scale, bias, lo, hi, want_sum)
    same = torch_variants(ref.squashed_gaussian_fwd, (mean, log_std, noise, scale, bias, lo, hi, want_sum), gen)
    r64 = ref.squashed_gaussian_fwd(d64(mean), d64(log_std), d64(noise), d64(scale), d64(bias), lo, hi, want_sum)
    assert_from_poisoned(out, allocated)
    check("action", out[0], [v[0] for v in same], r64[0], dtype)
    check("log_prob", out[1], [v[1] for v in same], r64[1], dtype)
    if want_sum:
        assert out[2].shape == () and out[2].dtype == torch.float32
        check("lp_sum", out[2], [v[2] for v in same], r64[2], dtype)
    else:
        assert out[2] is None
    return out


def check_sg_bwd(inputs, gen, dtype, allocated):
    mean, log_std, noise, scale, _, lo, hi = inputs
    n, a = mean.shape
    g_a, g_lp = randn((n, a), gen).to(dtype), randn((n,), gen).to(dtype)
    out = K.squashed_gaussian_bwd(g_a, g_lp, mean, log_std, noise, scale, lo, hi)
    same = torch_variants(ref.squashed_gaussian_bwd, (g_a, g_lp, mean, log_std, noise, scale, lo, hi), gen)
    r64 = ref.squashed_gaussian_bwd(d64(g_a), d64(g_lp), d64(mean), d64(log_std), d64(noise), d64(scale), lo, hi)
    assert_from_poisoned(out, allocated)
    check("d_mean", out[0], [v[0] for v in same], r64[0], dtype)
    check("d_log_std", out[1], [v[1] for v in same], r64[1], dtype)
    return out


@pytest.mark.parametrize("want_sum", [False, True], ids=["nosum", "sum"])
@pytest.mark.parametrize("option", SG_OPTIONS)
@pytest.mark.parametrize("a", AS)
@pytest.mark.parametrize("n", NS)
def test_squashed_gaussian_fwd_fp32(n, a, option, want_sum, gen, poisoned_outputs):
    inputs = sg_inputs(gen, n, a, torch.float32, option)
    check_sg_fwd(inputs, want_sum, torch.float32, poisoned_outputs, gen)


@pytest.mark.parametrize("option", SG_OPTIONS)
@pytest.mark.parametrize("a", AS)
@pytest.mark.parametrize("n", NS)
def test_squashed_gaussian_bwd_fp32(n, a, option, gen, poisoned_outputs):
    inputs = sg_inputs(gen, n, a, torch.float32, option)
    check_sg_bwd(inputs, gen, torch.float32, poisoned_outputs)


@pytest.mark.parametrize("dtype", LOW_PRECISION, ids=["bf16", "fp16"])
@pytest.mark.parametrize("option", ["plain", "all"])
@pytest.mark.parametrize("n,a", [(7, 6), (300, 17)])
def test_squashed_gaussian_low_precision(n, a, option, dtype, gen, poisoned_outputs):
    inputs = sg_inputs(gen, n, a, dtype, option)
    check_sg_fwd(inputs, True, dtype, poisoned_outputs, gen)
    check_sg_bwd(inputs, gen, dtype, poisoned_outputs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("option", ["plain", "all"])
def test_squashed_gaussian_saturated(option, dtype, gen, poisoned_outputs):
    """|u| up to 50: finite, exact log-probs (relative error at the fp32 level) and exact gradients."""
    inputs = sg_inputs(gen, 300, 17, dtype, option, saturate=True)
    mean, log_std, noise, scale, bias, lo, hi = inputs
    s = ref.bound_log_std(d64(log_std), lo, hi) if lo is not None else d64(log_std)
    abs_u = (d64(mean) + s.exp() * d64(noise)).abs()
    assert float(abs_u.min()) > 19.0 and float(abs_u.max()) > 45.0 and float(abs_u.max()) < 50.5
    action, log_prob, lp_sum = check_sg_fwd(inputs, True, dtype, poisoned_outputs, gen)
    check_sg_bwd(inputs, gen, dtype, poisoned_outputs)
    if dtype == torch.float32:  # well conditioned (dominated by -2|u|): a plain relative error applies
        r64 = ref.squashed_gaussian_fwd(d64(mean), d64(log_std), d64(noise), d64(scale), d64(bias), lo, hi, True)
        rel = ((log_prob.double() - r64[1]).abs() / r64[1].abs()).max()
        assert float(rel) < 2e-6, f"saturated log_prob relative error {float(rel):.3g}"
        assert abs(float(lp_sum) - float(r64[2])) < 2e-6 * abs(float(r64[2]))


@pytest.mark.parametrize("option", SG_OPTIONS)
def test_fp32_design_accuracy(option, gen, poisoned_outputs):
    """DESIGN.md: fp32 relative error well under 1e-5 on normal inputs (mean ~ N(0, 1), log_std in [-2, 1], bounds
    (-5, 2) on a N(0, 1) raw output), for the per-row outputs and gradients of the four primitives.

    Left to the 2x-torch rule of the other tests, because no float32 evaluation meets 1e-5 there (torch's own
    reaches ~1.2e-5 over 45 seeds): d_log_std with bounds (sigma up to e^2 and d_u*sigma*noise - g_lp cancelling), and
    the batch sums lp_sum / entropy_sum (rows of both signs cancel). The kernel's worst seen: ~3e-6 on the rest.
    """
    n, a = 300, 17
    mean, noise = randn((n, a), gen).float(), randn((n, a), gen).float()
    log_std = (uniform((n, a), gen, -2.0, 1.0) if option in ("plain", "scale_bias") else randn((n, a), gen)).float()
    _, _, _, scale, bias, lo, hi = sg_inputs(gen, 1, a, torch.float32, option)
    args = (mean, log_std, noise, scale, bias, lo, hi, False)
    out, r64 = K.squashed_gaussian_fwd(*args)[:2], ref.squashed_gaussian_fwd(*[d64(x) for x in args])[:2]
    g_a, g_lp = randn((n, a), gen).float(), randn((n,), gen).float()
    bargs = (g_a, g_lp, mean, log_std, noise, scale, lo, hi)
    out += K.squashed_gaussian_bwd(*bargs)
    r64 += ref.squashed_gaussian_bwd(*[d64(x) for x in bargs])
    logits = cat_logits(gen, n, a, torch.float32)
    out += K.categorical_fwd(logits, False)[:3]
    r64 += ref.categorical_fwd(logits.double(), False)[:3]
    g_p, g_lpc, g_h = randn((n, a), gen).float(), randn((n, a), gen).float(), randn((n,), gen).float()
    out += (K.categorical_bwd(g_p, g_lpc, g_h, logits),)
    r64 += (ref.categorical_bwd(g_p.double(), g_lpc.double(), g_h.double(), logits.double()),)
    names = ("action", "log_prob", "d_mean", "d_log_std", "probs", "log_probs", "entropy", "d_logits")
    for name, x, r in zip(names, out, r64, strict=True):
        if name == "d_log_std" and lo is not None:
            continue
        assert err(x, r) < FP32_TARGET, f"{name}: fp32 error {err(x, r):.3g} not under {FP32_TARGET}"


@pytest.mark.parametrize("option", ["plain", "all"])
def test_squashed_gaussian_saturated_jacobian(option, gen, poisoned_outputs):
    """With only the action's gradient (g_lp = 0), d_mean = g_a * scale * (1 - a^2) is tiny once tanh saturates, and
    must keep its *relative* accuracy there (``1 - a*a`` would give 0 from |u| ~ 9 on). Same for the bound's
    Jacobian 1 - tanh(raw)^2 (raw up to 8: the float64 reference's own ``1 - tanh^2`` is still exact to ~1e-9)."""
    n, a = 300, 17
    sign = torch.where(uniform((n, a), gen, 0.0, 1.0) < 0.5, -1.0, 1.0)
    mean = (uniform((n, a), gen, 3.0, 30.0) * sign).float()  # tanh'(u) from ~1e-2 down to ~1e-25: normal floats
    noise = randn((n, a), gen).float()
    scale = lo = hi = None
    if option == "all":
        raw_sign = torch.where(uniform((n, a), gen, 0.0, 1.0) < 0.5, -1.0, 1.0)
        log_std = (uniform((n, a), gen, 3.0, 8.0) * raw_sign).float()  # raw output pushed into either bound
        scale, lo, hi = uniform((a,), gen, 0.5, 2.0).float(), -5.0, 2.0
    else:
        log_std = uniform((n, a), gen, -4.0, -1.0).float()
    g_a, g_lp = randn((n, a), gen).float(), torch.zeros(n, device=DEVICE)
    args = (g_a, g_lp, mean, log_std, noise, scale, lo, hi)
    out = K.squashed_gaussian_bwd(*args)
    same = torch_variants(ref.squashed_gaussian_bwd, args, gen)
    r64 = ref.squashed_gaussian_bwd(*[d64(x) for x in args])
    assert float(r64[0].abs().min()) < 1e-20  # really saturated
    for i, name in enumerate(("d_mean", "d_log_std")):
        e_kernel = err(out[i], r64[i], floor=0.0, tiny=1e-30)
        e_torch = max(err(v[i], r64[i], floor=0.0, tiny=1e-30) for v in same)
        bound = 2.0 * e_torch + ATOL[torch.float32]
        assert e_kernel <= bound, f"{name}: relative error {e_kernel:.3g} > 2 x torch's {e_torch:.3g} + ATOL"
        assert e_kernel < 1e-4, f"{name}: relative error {e_kernel:.3g}"


def test_squashed_gaussian_bwd_is_the_gradient(gen, poisoned_outputs):
    """Independent of the reference's closed form: the kernel's backward equals float64 autograd of the forward."""
    mean, log_std, noise, scale, bias, lo, hi = sg_inputs(gen, 7, 6, torch.float32, "all")
    g_a, g_lp = randn((7, 6), gen).float(), randn((7,), gen).float()
    d_mean, d_log_std = K.squashed_gaussian_bwd(g_a, g_lp, mean, log_std, noise, scale, lo, hi)
    m64, s64 = d64(mean).requires_grad_(), d64(log_std).requires_grad_()
    action, log_prob, _ = ref.squashed_gaussian_fwd(m64, s64, d64(noise), d64(scale), d64(bias), lo, hi, False)
    gm, gs = torch.autograd.grad((action * d64(g_a)).sum() + (log_prob * d64(g_lp)).sum(), (m64, s64))
    torch.testing.assert_close(d_mean.double(), gm, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(d_log_std.double(), gs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n,block_n", [(300, 64), (7, 2), (1, 4)])
def test_squashed_gaussian_many_programs(n, block_n, gen, poisoned_outputs, force_block_n):
    """Several programs with a ragged last tile: masks, per-program partial sums and their deterministic total."""
    force_block_n(block_n)
    inputs = sg_inputs(gen, n, 17, torch.float32, "all")
    out = check_sg_fwd(inputs, True, torch.float32, poisoned_outputs, gen)
    partial = [t for t in poisoned_outputs if t.dtype == torch.float32 and t.shape == (math.ceil(n / block_n),)]
    assert partial and not bool(torch.isnan(partial[-1]).any()), "a program did not write its partial sum"
    again = K.squashed_gaussian_fwd(*inputs, True)
    assert torch.equal(out[2], again[2]), "lp_sum is not deterministic"
    check_sg_bwd(inputs, gen, torch.float32, poisoned_outputs)


# ----------------------------------------------------------------------------------------------------------------
# Categorical
# ----------------------------------------------------------------------------------------------------------------
def cat_logits(gen, n, a, dtype, masked=True):
    logits = randn((n, a), gen, 3.0)
    if masked and a > 1:  # mask ~1/4 of the actions with -inf, never a whole row
        drop = uniform((n, a), gen, 0.0, 1.0) < 0.25
        drop[:, int(torch.randint(a, (1,), generator=gen))] = False
        logits = logits.masked_fill(drop, float("-inf"))
    return logits.to(dtype)


def check_cat_fwd(logits, want_sum, dtype, allocated, gen):
    out = K.categorical_fwd(logits, want_sum)
    same = torch_variants(ref.categorical_fwd, (logits, want_sum), gen)
    r64 = ref.categorical_fwd(logits.double(), want_sum)
    assert_from_poisoned(out, allocated)
    for i, name in enumerate(("probs", "log_probs", "entropy")):
        check(name, out[i], [v[i] for v in same], r64[i], dtype)
    if want_sum:
        assert out[3].shape == () and out[3].dtype == torch.float32
        check("entropy_sum", out[3], [v[3] for v in same], r64[3], dtype)
    else:
        assert out[3] is None
    return out


def check_cat_bwd(logits, gen, dtype, allocated):
    n, a = logits.shape
    g_p, g_lp, g_h = randn((n, a), gen).to(dtype), randn((n, a), gen).to(dtype), randn((n,), gen).to(dtype)
    out = K.categorical_bwd(g_p, g_lp, g_h, logits)
    same = torch_variants(ref.categorical_bwd, (g_p, g_lp, g_h, logits), gen)
    r64 = ref.categorical_bwd(g_p.double(), g_lp.double(), g_h.double(), logits.double())
    assert_from_poisoned([out], allocated)
    check("d_logits", out, same, r64, dtype)
    return out


@pytest.mark.parametrize("want_sum", [False, True], ids=["nosum", "sum"])
@pytest.mark.parametrize("n,a", [(n, a) for n in NS for a in AS] + [(7, 1024), (2, 8192)])
def test_categorical_fp32(n, a, want_sum, gen, poisoned_outputs):
    logits = cat_logits(gen, n, a, torch.float32)
    check_cat_fwd(logits, want_sum, torch.float32, poisoned_outputs, gen)
    if want_sum:  # the backward once per shape
        check_cat_bwd(logits, gen, torch.float32, poisoned_outputs)


@pytest.mark.parametrize("dtype", LOW_PRECISION, ids=["bf16", "fp16"])
@pytest.mark.parametrize("n,a", [(7, 6), (300, 17), (3, 1024)])
def test_categorical_low_precision(n, a, dtype, gen, poisoned_outputs):
    logits = cat_logits(gen, n, a, dtype)
    check_cat_fwd(logits, True, dtype, poisoned_outputs, gen)
    check_cat_bwd(logits, gen, dtype, poisoned_outputs)


def test_categorical_extreme_logits(gen, poisoned_outputs):
    """Huge spreads (p underflows to 0 without a -inf), one-hot rows and masked rows stay finite and exact."""
    logits = randn((300, 17), gen, 200.0)
    logits[0] = float("-inf")
    logits[0, 3] = 1.0  # a single allowed action: p = 1, H = 0
    logits[1] = 1e4  # a constant row: uniform
    check_cat_fwd(logits.float(), True, torch.float32, poisoned_outputs, gen)
    check_cat_bwd(logits.float(), gen, torch.float32, poisoned_outputs)


def test_categorical_bwd_is_the_gradient(gen, poisoned_outputs):
    """Independent of the reference's closed form: the kernel's backward equals float64 autograd of the forward."""
    logits = cat_logits(gen, 7, 17, torch.float32)
    g_p, g_lp, g_h = randn((7, 17), gen).float(), randn((7, 17), gen).float(), randn((7,), gen).float()
    d = K.categorical_bwd(g_p, g_lp, g_h, logits)
    z = logits.double().requires_grad_()
    live = torch.isfinite(logits)
    # log p_j = z_j - logsumexp(z) for every j: masked entries (z_j = -inf) still see the normaliser, which is how
    # the contract's closed form treats them; their own -inf is replaced by a constant to keep everything finite.
    log_p_lin = torch.where(live, z, torch.zeros((), dtype=z.dtype)) - torch.logsumexp(z, dim=-1, keepdim=True)
    log_p_safe = torch.where(live, log_p_lin, torch.zeros((), dtype=z.dtype))  # 0 * log 0 = 0
    p = log_p_safe.exp() * live
    ent = -(p * log_p_safe).sum(-1)
    objective = (p * g_p.double()).sum() + (log_p_lin * g_lp.double()).sum() + (ent * g_h.double()).sum()
    (gz,) = torch.autograd.grad(objective, z)
    torch.testing.assert_close(d.double()[live], gz[live], rtol=1e-5, atol=1e-5)
    # Masked actions: the contract passes g_lp straight through (d log p_j / d z_j = 1 there, p_j = 0).
    torch.testing.assert_close(d[~live], g_lp[~live], rtol=0, atol=0)


@pytest.mark.parametrize("n,block_n", [(300, 64), (7, 2)])
def test_categorical_many_programs(n, block_n, gen, poisoned_outputs, force_block_n):
    force_block_n(block_n)
    logits = cat_logits(gen, n, 6, torch.float32)
    out = check_cat_fwd(logits, True, torch.float32, poisoned_outputs, gen)
    assert torch.equal(out[3], K.categorical_fwd(logits, True)[3]), "entropy_sum is not deterministic"
    check_cat_bwd(logits, gen, torch.float32, poisoned_outputs)


# ----------------------------------------------------------------------------------------------------------------
# Launch shapes and validation
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mod", [sg_mod, cat_mod], ids=["squashed_gaussian", "categorical"])
def test_gpu_launch_shapes(mod):
    """The GPU shapes the launchers pick: 2048-lane tiles of 8 warps, whole rows, never above 16 warps."""
    assert mod._gpu_launch_config(1 << 20, 6) == (256, 8, 8)
    assert mod._gpu_launch_config(1 << 20, 17) == (64, 32, 8)
    assert mod._gpu_launch_config(1, 6) == (1, 8, 1)
    assert mod._gpu_launch_config(256, 64) == (32, 64, 8)
    for a in (1, 3, 64, 1000, mod.MAX_A):
        block_n, block_a, warps = mod._gpu_launch_config(1 << 20, a)
        assert block_a >= a and block_a == triton.next_power_of_2(a) and 1 <= warps <= 16
        assert block_n * block_a <= max(mod.GPU_TILE_LANES, block_a)


def test_empty_batch(poisoned_outputs):
    x = torch.empty((0, 6), device=DEVICE)
    action, log_prob, lp_sum = K.squashed_gaussian_fwd(x, x, x, None, None, None, None, True)
    assert action.shape == (0, 6) and log_prob.shape == (0,) and float(lp_sum) == 0.0
    probs, log_probs, entropy, h_sum = K.categorical_fwd(x, True)
    assert probs.shape == (0, 6) and entropy.shape == (0,) and float(h_sum) == 0.0


def test_rejects_bad_inputs():
    x = torch.randn(4, 6, device=DEVICE)
    with pytest.raises(TypeError, match="float64"):
        K.squashed_gaussian_fwd(x.double(), x.double(), x.double(), None, None, None, None, False)
    with pytest.raises(ValueError, match="contiguous"):
        K.squashed_gaussian_fwd(x.t().contiguous().t(), x, x, None, None, None, None, False)
    with pytest.raises(ValueError, match="match mean"):
        K.squashed_gaussian_fwd(x, x[:3], x, None, None, None, None, False)
    with pytest.raises(ValueError, match="scale"):
        K.squashed_gaussian_fwd(x, x, x, torch.ones(5, device=DEVICE), None, None, None, False)
    with pytest.raises(ValueError, match="lo < hi"):
        K.squashed_gaussian_fwd(x, x, x, None, None, 2.0, -5.0, False)
    with pytest.raises(ValueError, match="grad_log_prob"):
        K.squashed_gaussian_bwd(x, x, x, x, x, None, None, None)
    with pytest.raises(ValueError, match="1-D|2-D"):
        K.categorical_fwd(x[0], False)
    with pytest.raises(ValueError, match="contiguous"):
        K.categorical_fwd(x.t(), False)
    with pytest.raises(ValueError, match="torch backend"):
        K.categorical_fwd(torch.zeros(1, cat_mod.MAX_A + 1, device=DEVICE), False)
    with pytest.raises(ValueError, match="grad_entropy"):
        K.categorical_bwd(x, x, x, x)


def test_exports():
    assert sorted(K.__all__) == sorted(
        ["SUPPORTED_DTYPES", "squashed_gaussian_fwd", "squashed_gaussian_bwd", "categorical_fwd", "categorical_bwd",
         "categorical_td_fwd", "categorical_td_bwd"]
    )
    assert torch.float64 not in K.SUPPORTED_DTYPES  # fastsac.ops routes float64 to the torch / C++ backends
    if DEVICE.type == "cpu":
        assert sg_mod._INTERPRETED and cat_mod._INTERPRETED
