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
