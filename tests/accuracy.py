"""The one home of the accuracy rule: perturbed inputs (shared by the Triton and C++/CUDA backend tests) and the
per-element bound every backend's public ops are checked with.

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


def one_input_perturbed(args, index: int, sign: float, dtype: torch.dtype):
    """``args`` with the ``index``-th floating tensor of ``dtype`` scaled by ``1 + sign * PERTURBATION_ULPS * eps``
    (every element the same way) and everything else unchanged."""
    rel = sign * PERTURBATION_ULPS * torch.finfo(dtype).eps
    out, k = [], 0
    for a in args:
        if isinstance(a, torch.Tensor) and a.dtype == dtype:
            if k == index:
                a = (a.double() * (1.0 + rel)).to(dtype)
            k += 1
        out.append(a)
    return out


def reference_evaluations(fn, args, dtype: torch.dtype):
    """``fn(*args)`` followed, for float32 or float64 ``dtype``, by ``fn`` on copies of the inputs where ONE input
    is scaled by ``1 +- PERTURBATION_ULPS * eps`` (each input, each sign: 2 copies per input). Perturbing one input
    at a time with one sign means the perturbations cannot cancel one another at an element (random signs on all
    inputs at once did, at ill-conditioned elements, and made a correct backend look wrong there), so the spread at
    each element measures its conditioning. The 16-bit types get the one evaluation: there the rounding of the
    output dominates any conditioning."""
    evals = [fn(*args)]
    if dtype in (torch.float32, torch.float64):
        n = sum(1 for a in args if isinstance(a, torch.Tensor) and a.dtype == dtype)
        evals += [fn(*one_input_perturbed(args, k, sign, dtype)) for k in range(n) for sign in (1.0, -1.0)]
    return evals


def reference_error(truth: torch.Tensor, reference_evals) -> torch.Tensor:
    """E per element: the largest error of the reference's evaluations (on the inputs and on perturbed copies) at
    that element, in float64. One ill-conditioned element widens the bound of that element only."""
    truth = truth.double()
    errs = torch.stack([(r.double() - truth).abs() for r in reference_evals])
    return errs.amax(dim=0)


def assert_within_reference_error(name, actual, truth, reference_evals, *, scale=None, ulps: float = 4.0, ctx=""):
    """The house rule, element by element: ``|actual_i - truth_i| <= 2 E_i + ulps * eps * (1 + scale_i)``.

    ``truth``: the float64 result; ``reference_evals``: the reference's results in ``actual``'s dtype (on the inputs
    and on perturbed copies, ``reference_evaluations``), E_i the worst error among them at element i
    (:func:`reference_error`). ``scale`` defaults to ``|truth|``; for a sum pass the absolute sum of its terms,
    which is what bounds the rounding of a sum (a log-prob of 1.8 summed from 17 terms of magnitude ~3 carries the
    rounding of ~50, not of 1.8).
    """
    assert actual.dtype == reference_evals[0].dtype, f"{name}: dtype {actual.dtype} ({ctx})"
    assert actual.shape == truth.shape, f"{name}: shape {tuple(actual.shape)}, expected {tuple(truth.shape)} ({ctx})"
    assert torch.isfinite(actual).all(), f"{name}: non-finite values ({ctx})"
    truth = truth.double()
    e = reference_error(truth, reference_evals)
    scale = truth.abs() if scale is None else scale.double()
    bound = 2.0 * e + ulps * torch.finfo(actual.dtype).eps * (1.0 + scale)
    err = (actual.double() - truth).abs()
    ratio = err / bound
    worst = ratio.max().item()
    if worst > 1.0:
        i = int(ratio.argmax())
        raise AssertionError(
            f"{name}: error {err.flatten()[i].item():.3g} at element {i} exceeds its tolerance "
            f"{bound.flatten()[i].item():.3g} by {worst:.2f}x (the reference's own error there: "
            f"{e.flatten()[i].item():.3g}; largest error anywhere {err.max().item():.3g}) ({ctx})"
        )
