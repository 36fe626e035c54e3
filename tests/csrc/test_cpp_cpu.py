"""The C++ extension's four primitives against the float64 reference (fastsac/ops/reference.py).

On CPU these run the math of csrc/sac_math.h that the CUDA kernels also run; with a GPU and a CUDA build of
fastsac._C the same tests run the kernels (``gpu`` marker). Inputs are random draws seeded from the test's id
(the ``gen`` fixture of tests/conftest.py: ``FASTSAC_TEST_SEED=k`` draws others; the seed is in every failure
message) with a third of the elements saturated (|u| from 20 to 50) and, for the categorical, masked
(-inf) logits.

Accuracy rule (STYLE.md): the error against float64 may be at most twice the reference's own error in the same
dtype, plus a small absolute term (16 ulps of the compute dtype times the output's magnitude). The reference's own
error is the worst of its evaluation on the inputs and on two copies perturbed by +-4 ulps (tests/accuracy.py
explains why one evaluation is not enough where u cancels). For float64 inputs the reference *is* the float64
result; its own rounding error is estimated from the float32 reference's error scaled by the unit-roundoff ratio
2^-29, which carries the conditioning of the computation (with bounds on, a one-ulp difference in tanh(raw) moves
u by sigma * noise * (hi - lo) / 2 ulps, about 40 ulps of the action).
"""

from __future__ import annotations

import inspect
import itertools
import math
import os
import subprocess
import sys

import pytest
import torch

from fastsac.ops import extension as E
from fastsac.ops import reference as R
from tests.accuracy import perturbed

DTYPES = [torch.float64, torch.float32, torch.bfloat16, torch.float16]
NS = [1, 7, 300]
# 1, 6, 17, 64 from the issue; 2, 3 and 12 complete the CUDA group sizes (1, 2, 4, 8, 16, 32 lanes per row).
AS = [1, 2, 3, 6, 12, 17, 64]
# name -> (scale, bias, bounds)
CONFIGS = {
    "plain": (False, False, False),
    "affine": (True, True, False),
    "bounds": (False, False, True),
    "affine_bounds": (True, True, True),
    "scale_only": (True, False, False),
}
LO, HI = -5.0, 2.0

# The CPU runs the full product of DTYPES x NS x AS x (CONFIGS or masked). The CUDA kernels' launch shape depends on
# the group size G (lanes per row, csrc/ops_cuda.cu: the power of two >= A, at most 32), the dtype and the batch (rows
# per block, grid-stride loops), so the CUDA half is a covering set instead: every G of 1..32 (A = 1, 2, 3, 6, 12,
# 17, 64; 64 is two elements per lane), every dtype at a small and at the full group, every configuration, a batch of
# 1, odd batches (7, 4097) and a large one (4097 rows: several blocks at every G). Noncontiguous inputs on CUDA:
# tests/csrc/test_cpp_boundaries.py.
LARGE_N = 4097
SG_CUDA = [  # (dtype, N, A, cfg)
    (torch.float64, 1, 1, "plain"),
    (torch.float32, 7, 2, "affine"),
    (torch.bfloat16, 300, 3, "bounds"),
    (torch.float16, 7, 6, "affine_bounds"),
    (torch.float32, 300, 12, "scale_only"),
    (torch.float32, LARGE_N, 17, "affine_bounds"),
    (torch.bfloat16, 1, 64, "affine"),
    (torch.float16, LARGE_N, 64, "bounds"),
    (torch.float64, 300, 64, "affine_bounds"),
]
CAT_CUDA = [  # (dtype, N, A, masked)
    (torch.float64, 1, 1, False),
    (torch.float32, 7, 2, True),
    (torch.bfloat16, 300, 3, True),
    (torch.float16, 7, 6, False),
    (torch.float32, 300, 12, True),
    (torch.float32, LARGE_N, 17, True),
    (torch.bfloat16, 1, 64, False),
    (torch.float16, LARGE_N, 64, True),
    (torch.float64, 300, 64, True),
]


def _cases(last_axis, cuda_cases, last_id=str):
    """``dtype, N, A, <last>, device`` parameters: the full product on CPU, ``cuda_cases`` on CUDA (``gpu``)."""
    def param(case, device, marks=()):
        dtype, n, a, last = case
        return pytest.param(*case, device, marks=marks, id=f"{dtype}-{n}-{a}-{last_id(last)}-{device}")

    cpu = [param(case, "cpu") for case in itertools.product(DTYPES, NS, AS, last_axis)]
    return cpu + [param(case, "cuda", pytest.mark.gpu) for case in cuda_cases]


SG_CASES = _cases(list(CONFIGS), SG_CUDA)
CAT_CASES = _cases([False, True], CAT_CUDA, lambda masked: "masked" if masked else "dense")

pytestmark = pytest.mark.usefixtures("cpp_ext")


@pytest.fixture
def device(request, cpp_ext):
    dev = request.param
    if dev == "cuda" and not E.is_available("cuda"):
        pytest.skip("fastsac._C was not built with CUDA (install with a CUDA torch and nvcc, --no-build-isolation)")
    return dev


def _eps(dtype: torch.dtype) -> float:
    return torch.finfo(R.compute_dtype(dtype)).eps


def _check(name, out, ref, ref64, dtype, ctx, *, terms=None, variants=None):
    """``out`` (extension) against ``ref64`` (float64 truth), with ``ref`` the reference in ``dtype``.

    ``variants`` (from ``_reference_variants``): ``(in32, others)``, more evaluations of the reference whose error
    also counts as its own. ``others`` are evaluations on inputs perturbed by +-4 ulps (tests/accuracy.py): for
    float32 inputs, the spread a correct evaluation shows where the element is ill-conditioned; for float64 inputs,
    the conditioning of the float64 reference, whose own error against itself is zero. ``in32`` (float64 inputs
    only) is the reference evaluated in float32: its error, scaled by eps64 / eps32, stands for the float64
    reference's rounding error.

    Non-finite values of the truth (-inf log-probs of masked actions) must be reproduced exactly and every other
    element must be finite, which also proves every element was written (outputs come from torch.empty).
    ``terms``: for a sum over rows, the float64 rows, whose absolute sum bounds the rounding of the summation.
    """
    assert out.dtype == ref.dtype, f"{name}: dtype {out.dtype}, expected {ref.dtype} ({ctx})"
    assert out.shape == ref64.shape, f"{name}: shape {tuple(out.shape)}, expected {tuple(ref64.shape)} ({ctx})"
    assert out.device == ref64.device, f"{name}: device {out.device} ({ctx})"
    out64, truth = out.double().cpu(), ref64.double().cpu()
    finite = torch.isfinite(truth)
    assert torch.equal(out64[~finite], truth[~finite]), f"{name}: non-finite entries differ ({ctx})"
    assert torch.isfinite(out64[finite]).all(), f"{name}: NaN/inf where the reference is finite ({ctx})"
    if not finite.any():
        return

    def error(x):
        return (x.double().cpu()[finite] - truth[finite]).abs().max().item()

    err, ref_err = error(out), error(ref)
    if dtype == torch.float64:
        assert variants is not None, f"{name}: float64 needs the float32 reference ({ctx})"
    if variants is not None:
        in32, others = variants
        ref_err = max([ref_err] + [error(v) for v in others])
        if in32 is not None:
            ref_err = max(ref_err, error(in32) * torch.finfo(torch.float64).eps / torch.finfo(torch.float32).eps)
    if terms is None:
        magnitude, ulps = truth[finite].abs().max().item(), 16.0
    else:  # a sum over N rows: rounding grows with the terms' absolute sum and with sqrt(N)
        magnitude, ulps = terms.double().abs().sum().item(), 16.0 + 4.0 * math.sqrt(terms.numel())
    tol = 2.0 * ref_err + ulps * _eps(dtype) * (1.0 + magnitude)
    assert err <= tol, f"{name}: max error {err:.3e} > tolerance {tol:.3e} (reference's own {ref_err:.3e}) ({ctx})"


def _sg_inputs(N, A, dtype, device, cfg, g):
    has_scale, has_bias, has_bounds = CONFIGS[cfg]
    cd = R.compute_dtype(dtype)
    mean = torch.randn(N, A, generator=g, dtype=torch.float64) * 1.5
    saturated = torch.rand(N, A, generator=g) < 1.0 / 3.0
    sign = torch.where(torch.rand(N, A, generator=g) < 0.5, -1.0, 1.0).double()
    mean = torch.where(saturated, sign * (20.0 + 30.0 * torch.rand(N, A, generator=g, dtype=torch.float64)), mean)
    if has_bounds:
        log_std = torch.randn(N, A, generator=g, dtype=torch.float64) * 2.0  # the raw network output
    else:
        log_std = torch.randn(N, A, generator=g, dtype=torch.float64) * 0.5 - 0.5
    noise = torch.randn(N, A, generator=g, dtype=torch.float64)
    scale = bias = None
    if has_scale:
        scale = (torch.rand(A, generator=g, dtype=torch.float64) + 0.5) * torch.where(
            torch.rand(A, generator=g) < 0.3, -1.0, 1.0
        ).double()
        scale = scale.to(cd).to(device)
    if has_bias:
        bias = torch.randn(A, generator=g, dtype=torch.float64).to(cd).to(device)
    lo, hi = (LO, HI) if has_bounds else (None, None)
    mean, log_std, noise = (t.to(dtype).to(device) for t in (mean, log_std, noise))
    return mean, log_std, noise, scale, bias, lo, hi


def _f64(t):
    return None if t is None else t.double()


def _reference_variants(fn, dtype, *args):
    """Per output of ``fn``, the ``variants`` of ``_check``: ``(in32, [two evaluations on perturbed inputs])``,
    with ``in32`` the float32 evaluation for float64 inputs and None for float32 inputs; None for the 16-bit
    types (their output rounding dominates any conditioning). The perturbations are seeded, so a failure
    reproduces from the seed in its message."""
    if dtype not in (torch.float32, torch.float64):
        out = fn(*args)
        return None if isinstance(out, torch.Tensor) else (None,) * len(out)
    g = torch.Generator().manual_seed(0)
    in32 = fn(*(a.float() if isinstance(a, torch.Tensor) else a for a in args)) if dtype == torch.float64 else None
    others = [fn(*perturbed(args, g, dtype)) for _ in range(2)]
    if isinstance(others[0], torch.Tensor):  # a primitive with one output (categorical_bwd)
        return (in32, others)
    in32 = in32 if in32 is not None else (None,) * len(others[0])
    return tuple(None if x is None else (x32, [o[i] for o in others])
                 for i, (x, x32) in enumerate(zip(others[0], in32)))


@pytest.mark.parametrize("dtype, N, A, cfg, device", SG_CASES, indirect=["device"])
def test_squashed_gaussian_fwd(dtype, N, A, cfg, device, gen):
    g, seed = gen, gen.initial_seed()
    mean, log_std, noise, scale, bias, lo, hi = _sg_inputs(N, A, dtype, device, cfg, g)
    ctx = f"seed={seed} dtype={dtype} N={N} A={A} cfg={cfg} device={device}"
    action, log_prob, lp_sum = E.squashed_gaussian_fwd(mean, log_std, noise, scale, bias, lo, hi, True)
    ref = R.squashed_gaussian_fwd(mean, log_std, noise, scale, bias, lo, hi, True)
    ref64 = R.squashed_gaussian_fwd(mean.double(), log_std.double(), noise.double(), _f64(scale), _f64(bias), lo, hi,
                                    True)
    variants = _reference_variants(R.squashed_gaussian_fwd, dtype, mean, log_std, noise, scale, bias, lo, hi, True)
    _check("action", action, ref[0], ref64[0], dtype, ctx, variants=variants[0])
    _check("log_prob", log_prob, ref[1], ref64[1], dtype, ctx, variants=variants[1])
    assert lp_sum.dim() == 0 and lp_sum.dtype == R.compute_dtype(dtype), ctx
    _check("lp_sum", lp_sum, ref[2], ref64[2], dtype, ctx, terms=ref64[1], variants=variants[2])

    action2, log_prob2, none = E.squashed_gaussian_fwd(mean, log_std, noise, scale, bias, lo, hi, False)
    assert none is None, ctx
    assert torch.equal(action2, action) and torch.equal(log_prob2, log_prob), ctx


@pytest.mark.parametrize("dtype, N, A, cfg, device", SG_CASES, indirect=["device"])
def test_squashed_gaussian_bwd(dtype, N, A, cfg, device, gen):
    g, seed = gen, gen.initial_seed()
    mean, log_std, noise, scale, _, lo, hi = _sg_inputs(N, A, dtype, device, cfg, g)
    grad_action = torch.randn(N, A, generator=g, dtype=torch.float64).to(dtype).to(device)
    grad_log_prob = torch.randn(N, generator=g, dtype=torch.float64).to(dtype).to(device)
    ctx = f"seed={seed} dtype={dtype} N={N} A={A} cfg={cfg} device={device}"
    d_mean, d_log_std = E.squashed_gaussian_bwd(grad_action, grad_log_prob, mean, log_std, noise, scale, lo, hi)
    ref = R.squashed_gaussian_bwd(grad_action, grad_log_prob, mean, log_std, noise, scale, lo, hi)
    ref64 = R.squashed_gaussian_bwd(grad_action.double(), grad_log_prob.double(), mean.double(), log_std.double(),
                                    noise.double(), _f64(scale), lo, hi)
    variants = _reference_variants(R.squashed_gaussian_bwd, dtype, grad_action, grad_log_prob, mean, log_std, noise,
                                   scale, lo, hi)
    _check("d_mean", d_mean, ref[0], ref64[0], dtype, ctx, variants=variants[0])
    _check("d_log_std", d_log_std, ref[1], ref64[1], dtype, ctx, variants=variants[1])


def _logits(N, A, dtype, device, masked, g):
    z = torch.randn(N, A, generator=g, dtype=torch.float64) * 3.0
    if masked:
        mask = torch.rand(N, A, generator=g) < 0.25
        keep = torch.randint(0, A, (N,), generator=g)
        mask[torch.arange(N), keep] = False  # at least one action per row stays available
        z = z.masked_fill(mask, -math.inf)
    return z.to(dtype).to(device)


@pytest.mark.parametrize("dtype, N, A, masked, device", CAT_CASES, indirect=["device"])
def test_categorical_fwd(dtype, N, A, masked, device, gen):
    g, seed = gen, gen.initial_seed()
    logits = _logits(N, A, dtype, device, masked, g)
    ctx = f"seed={seed} dtype={dtype} N={N} A={A} masked={masked} device={device}"
    probs, log_probs, entropy, h_sum = E.categorical_fwd(logits, True)
    ref = R.categorical_fwd(logits, True)
    ref64 = R.categorical_fwd(logits.double(), True)
    variants = _reference_variants(R.categorical_fwd, dtype, logits, True)
    _check("probs", probs, ref[0], ref64[0], dtype, ctx, variants=variants[0])
    _check("log_probs", log_probs, ref[1], ref64[1], dtype, ctx, variants=variants[1])
    _check("entropy", entropy, ref[2], ref64[2], dtype, ctx, variants=variants[2])
    assert h_sum.dim() == 0 and h_sum.dtype == R.compute_dtype(dtype), ctx
    _check("entropy_sum", h_sum, ref[3], ref64[3], dtype, ctx, terms=ref64[2], variants=variants[3])

    out2 = E.categorical_fwd(logits, False)
    assert out2[3] is None, ctx
    assert all(torch.equal(a, b) for a, b in zip(out2[:3], (probs, log_probs, entropy))), ctx


@pytest.mark.parametrize("dtype, N, A, masked, device", CAT_CASES, indirect=["device"])
def test_categorical_bwd(dtype, N, A, masked, device, gen):
    g, seed = gen, gen.initial_seed()
    logits = _logits(N, A, dtype, device, masked, g)
    shapes = ((N, A), (N, A), (N,))
    grads = [torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype).to(device) for shape in shapes]
    ctx = f"seed={seed} dtype={dtype} N={N} A={A} masked={masked} device={device}"
    d = E.categorical_bwd(*grads, logits)
    ref = R.categorical_bwd(*grads, logits)
    ref64 = R.categorical_bwd(*(t.double() for t in grads), logits.double())
    _check("d_logits", d, ref, ref64, dtype, ctx, variants=_reference_variants(R.categorical_bwd, dtype, *grads, logits))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_saturated_tanh_is_exact(dtype):
    """|u| of 20 and 50: tanh rounds to +-1, yet log(1 - tanh^2) and the Jacobian 1 - tanh^2 stay exact."""
    u = torch.tensor([[20.0, -20.0, 50.0, -50.0]], dtype=dtype)
    zeros = torch.zeros_like(u)  # log_std = 0 and noise = 0: u = mean exactly
    action, log_prob, _ = E.squashed_gaussian_fwd(u, zeros, zeros, None, None, None, None, False)
    assert torch.equal(action, torch.sign(u))
    abs_u = u.double().abs()
    e = torch.exp(-2.0 * abs_u)
    expected = (-R.LOG_SQRT_2PI - 2.0 * (R.LOG_2 - abs_u - torch.log1p(e))).sum(-1)
    torch.testing.assert_close(log_prob.double(), expected, rtol=4 * torch.finfo(dtype).eps, atol=0)
    d_mean, d_log_std = E.squashed_gaussian_bwd(torch.ones_like(u), torch.zeros(1, dtype=dtype), u, zeros, zeros,
                                                None, None, None)
    jacobian = 4.0 * e / (1.0 + e) ** 2  # 1 - tanh(u)^2 in float64
    normal = e >= torch.finfo(dtype).tiny  # e^{-100} is subnormal in float32: few significant bits left
    assert normal[0, :2].all()
    torch.testing.assert_close(d_mean.double()[normal], jacobian[normal], rtol=16 * torch.finfo(dtype).eps, atol=0)
    assert (d_mean >= 0).all() and torch.isfinite(d_log_std).all()
    if dtype == torch.float64:
        assert normal.all() and (d_mean > 0).all()


def test_sums_do_not_depend_on_thread_count(gen):
    """want_sum totals are summed per fixed block of rows, then over blocks in order: bitwise stable."""
    g, seed = gen, gen.initial_seed()
    mean, log_std, noise, scale, bias, lo, hi = _sg_inputs(2000, 6, torch.float32, "cpu", "affine_bounds", g)
    logits = _logits(2000, 6, torch.float32, "cpu", True, g)
    before = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 1):
            torch.set_num_threads(threads)
            results.append((E.squashed_gaussian_fwd(mean, log_std, noise, scale, bias, lo, hi, True)[2],
                            E.categorical_fwd(logits, True)[3]))
    finally:
        torch.set_num_threads(before)
    for lp_sum, h_sum in results[1:]:
        assert torch.equal(lp_sum, results[0][0]) and torch.equal(h_sum, results[0][1]), f"seed={seed}"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_empty_batch(dtype):
    cd = R.compute_dtype(dtype)
    x = torch.empty(0, 4, dtype=dtype)
    action, log_prob, lp_sum = E.squashed_gaussian_fwd(x, x, x, None, None, None, None, True)
    assert action.shape == (0, 4) and log_prob.shape == (0,) and lp_sum.item() == 0.0 and lp_sum.dtype == cd
    probs, log_probs, entropy, h_sum = E.categorical_fwd(x, True)
    assert probs.shape == (0, 4) and entropy.shape == (0,) and h_sum.item() == 0.0 and h_sum.dtype == cd
    assert E.categorical_bwd(x, x, torch.empty(0, dtype=dtype), x).shape == (0, 4)


# ---- the Python face ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["squashed_gaussian_fwd", "squashed_gaussian_bwd", "categorical_fwd",
                                  "categorical_bwd"])
def test_signatures_match_the_reference(name):
    assert list(inspect.signature(getattr(E, name)).parameters) == list(
        inspect.signature(getattr(R, name)).parameters)


def test_keyword_call_like_the_reference():
    x = torch.randn(3, 2)
    out = E.squashed_gaussian_fwd(mean=x, log_std=x, noise=x, scale=None, bias=None, lo=None, hi=None, want_sum=False)
    ref = R.squashed_gaussian_fwd(mean=x, log_std=x, noise=x, scale=None, bias=None, lo=None, hi=None, want_sum=False)
    torch.testing.assert_close(out[0], ref[0])
    assert out[2] is None and ref[2] is None


def test_is_available_after_load():
    assert E.is_available("cpu")
    assert not E.is_available("meta")
    if not torch.cuda.is_available():
        assert not E.is_available("cuda")


def test_import_builds_nothing(tmp_path):
    """Importing fastsac.ops.extension neither builds nor fails; is_available is False until something is loaded."""
    build_dir = tmp_path / "ext"
    code = (
        "import importlib.util, fastsac.ops.extension as e\n"
        "compiled = importlib.util.find_spec('fastsac._C') is not None\n"
        "assert e.is_available('cpu') == compiled, (e.is_available('cpu'), compiled)\n"
        "assert e._jit is None\n"
        "print('ok')\n"
    )
    env = {**os.environ, "FASTSAC_EXTENSION_DIR": str(build_dir)}
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr
    assert not build_dir.exists()


# ---- argument checks -----------------------------------------------------------------------------------------
def _sg_args(**over):
    x = torch.randn(5, 3)
    args = dict(mean=x, log_std=torch.randn(5, 3), noise=torch.randn(5, 3), scale=None, bias=None, lo=None, hi=None,
                want_sum=False)
    args.update(over)
    return args


@pytest.mark.parametrize(
    "over, message",
    [
        (dict(mean=torch.randn(5, 3).long()), r"mean must be float32, float64, float16 or bfloat16, got Long"),
        (dict(log_std=torch.randn(5, 3, dtype=torch.float64)), r"log_std must have the dtype of mean \(Float\)"),
        (dict(noise=torch.randn(5, 4)), r"noise must have shape \[5, 3\] \(from mean\), got \[5, 4\]"),
        (dict(mean=torch.randn(3, 5).t()), r"mean must be contiguous"),
        (dict(noise=torch.randn(3, 5).t()), r"noise must be contiguous"),
        (dict(mean=torch.randn(15)), r"mean must be 2-D \(N, A\), got shape \[15\]"),
        (dict(scale=torch.ones(4)), r"scale must be None or 1-D of shape \(3,\)"),
        (dict(bias=torch.ones(3, dtype=torch.float64)), r"bias must have the compute dtype Float for Float inputs"),
        (dict(scale=torch.ones(6)[::2]), r"scale must be contiguous"),
        (dict(lo=-5.0), r"lo and hi must both be None or both be floats"),
        (dict(lo=2.0, hi=-5.0), r"need finite lo < hi, got lo=2 hi=-5"),
        (dict(mean=torch.randn(5, 3, device="meta")), r"device meta"),
    ],
    ids=["int", "dtype_mismatch", "shape_mismatch", "mean_noncontig", "noise_noncontig", "1d", "scale_shape",
         "bias_dtype", "scale_noncontig", "lo_only", "lo_ge_hi", "meta_device"],
)
def test_squashed_gaussian_fwd_rejects(over, message):
    with pytest.raises(RuntimeError, match=message):
        E.squashed_gaussian_fwd(**_sg_args(**over))


def test_low_precision_scale_must_be_float32():
    x = torch.randn(5, 3, dtype=torch.bfloat16)
    with pytest.raises(RuntimeError, match=r"scale must have the compute dtype Float for BFloat16 inputs"):
        E.squashed_gaussian_fwd(x, x, x, torch.ones(3, dtype=torch.bfloat16), None, None, None, False)


def test_squashed_gaussian_bwd_rejects():
    x = torch.randn(5, 3)
    with pytest.raises(RuntimeError, match=r"grad_log_prob must have shape \[5\] \(from mean\), got \[5, 1\]"):
        E.squashed_gaussian_bwd(x, torch.randn(5, 1), x, x, x, None, None, None)
    with pytest.raises(RuntimeError, match=r"grad_action must be contiguous"):
        E.squashed_gaussian_bwd(torch.randn(3, 5).t(), torch.randn(5), x, x, x, None, None, None)
    with pytest.raises(RuntimeError, match=r"grad_action must have the dtype of mean \(Float\), got Half"):
        E.squashed_gaussian_bwd(x.half(), torch.randn(5), x, x, x, None, None, None)


def test_categorical_rejects():
    z = torch.randn(4, 6)
    with pytest.raises(RuntimeError, match=r"logits must be 2-D \(N, A\), got shape \[2, 2, 6\]"):
        E.categorical_fwd(torch.randn(2, 2, 6), False)
    with pytest.raises(RuntimeError, match=r"logits must be contiguous"):
        E.categorical_fwd(torch.randn(6, 4).t(), True)
    with pytest.raises(RuntimeError, match=r"grad_entropy must have the dtype of logits \(Float\), got Double"):
        E.categorical_bwd(z, z, torch.randn(4, dtype=torch.float64), z)
    with pytest.raises(RuntimeError, match=r"grad_probs must have shape \[4, 6\] \(from logits\), got \[4, 5\]"):
        E.categorical_bwd(torch.randn(4, 5), z, torch.randn(4), z)
