"""The one home of the accuracy rule's perturbed inputs, shared by the Triton and C++/CUDA backend tests.

House rule (STYLE.md): a fast path's error against float64 may be at most about twice PyTorch's own error in the
same dtype, plus a small absolute term. "PyTorch's own error" is a random variable: one evaluation can be lucky
exactly where the problem is ill-conditioned. With log-std bounds on, u = mean + exp(lo + h (tanh(raw) + 1)) noise
can cancel to ~0 from |mean| ~ 27 and sigma ~ 7; one ulp of tanh(raw) then moves u by h sigma |noise| ulps (~100)
and the action by |scale| (1 - tanh(u)^2) times that, so two correct float32 evaluations of the same element
differ by ~1e-5 (seed 2644383009 of tests/csrc/test_cpp_cpu.py: the C++ error 1.5e-5 against the reference's
lucky 2.1e-6). The reference is therefore also evaluated on copies of the inputs perturbed by +-4 ulps (random
signs per element): the spread of those evaluations is the conditioning a correct implementation may show, with
the kernels' less accurate exp/log (2 to 3 ulps) modelled as the backward errors they are.
"""

from __future__ import annotations

import torch

PERTURBATION_ULPS = 4


def perturbed(args, gen: torch.Generator, dtype: torch.dtype):
    """``args`` with every floating tensor of ``dtype`` scaled by ``1 +- PERTURBATION_ULPS * eps(dtype)`` (random
    signs per element from the CPU generator ``gen``); everything else passes through unchanged."""
    rel = PERTURBATION_ULPS * torch.finfo(dtype).eps

    def one(a):
        if not (isinstance(a, torch.Tensor) and a.dtype == dtype):
            return a
        sign = torch.randint(0, 2, a.shape, generator=gen, dtype=torch.float64) * 2.0 - 1.0
        return (a.double() * (1.0 + rel * sign.to(a.device))).to(dtype)

    return [one(a) for a in args]


def reference_evaluations(fn, args, dtype: torch.dtype, *, copies: int = 2, seed: int = 0):
    """``fn(*args)`` followed, for float32 or float64 ``dtype``, by ``fn`` on ``copies`` perturbed copies of the
    inputs (seeded, so a failure reproduces). The 16-bit types get the one evaluation: there the rounding of the
    output dominates any conditioning."""
    evals = [fn(*args)]
    if dtype in (torch.float32, torch.float64):
        g = torch.Generator().manual_seed(seed)
        evals += [fn(*perturbed(args, g, dtype)) for _ in range(copies)]
    return evals


def assert_within_reference_error(name, actual, truth, reference_evals, *, scale=None, ulps: float = 4.0, ctx=""):
    """The house rule, elementwise: ``|actual - truth| <= 2 E + ulps * eps * (1 + scale)``.

    ``truth``: the float64 result; ``reference_evals``: the reference's results in ``actual``'s dtype (on the inputs
    and on perturbed copies, ``reference_evaluations``), E the worst error among them. ``scale`` defaults to
    ``|truth|``; for a sum pass the absolute sum of its terms, which is what bounds the rounding of a sum (a log-prob
    of 1.8 summed from 17 terms of magnitude ~3 carries the rounding of ~50, not of 1.8).
    """
    assert actual.dtype == reference_evals[0].dtype, f"{name}: dtype {actual.dtype} ({ctx})"
    assert actual.shape == truth.shape, f"{name}: shape {tuple(actual.shape)}, expected {tuple(truth.shape)} ({ctx})"
    assert torch.isfinite(actual).all(), f"{name}: non-finite values ({ctx})"
    truth = truth.double()
    worst_ref = max((r.double() - truth).abs().max().item() for r in reference_evals)
    scale = truth.abs() if scale is None else scale.double()
    bound = 2.0 * worst_ref + ulps * torch.finfo(actual.dtype).eps * (1.0 + scale)
    err = (actual.double() - truth).abs()
    worst = (err / bound).max().item()
    assert worst <= 1.0, (
        f"{name}: max error {err.max().item():.3g} exceeds the tolerance by {worst:.2f}x "
        f"(the reference's own error: {worst_ref:.3g}) ({ctx})"
    )
