"""Repeat lengths for held exploration noise: a Zeta (discrete power-law) distribution truncated to 1..max_n.

FlashSAC (Holiday-Robot, arXiv:2604.04539; github.com/Holiday-Robot/FlashSAC, MIT, commit 87edc90) holds each
env's exploration noise for k steps, k ~ Zeta(mu = 2) truncated at 16: ``P(k) = k^-mu / sum_{j=1}^{max_n} j^-mu``
for k = 1..max_n, so most draws are short and a few long (temporally correlated exploration, as in
Dabney et al. 2021, "Temporally-Extended epsilon-Greedy Exploration", arXiv:2006.01782). Our code is our own.

:func:`zeta_cdf` tabulates the cumulative probabilities once (float64, on the CPU; move it to the device once);
:func:`sample_repeat` draws by inverting it: ``k = 1 + #{j : cdf[j] <= u}`` for a uniform ``u`` in [0, 1), one
``searchsorted`` for all envs, no host sync, traceable by ``torch.compile``. (FlashSAC's agent draws one length
shared by all envs, as the first k with ``u < cdf[k - 1]``, the same inverse; here each env draws its own.)
"""

from __future__ import annotations

import torch

__all__ = ["zeta_cdf", "zeta_pmf", "sample_repeat"]


def zeta_pmf(mu: float, max_n: int) -> torch.Tensor:
    """``P(k)`` for k = 1..max_n (float64, (max_n,)): ``k^-mu`` normalized over the truncated support."""
    if max_n < 1 or mu <= 0.0:
        raise ValueError(f"zeta_pmf: need max_n >= 1 and mu > 0, got max_n={max_n}, mu={mu}")
    weights = torch.arange(1, int(max_n) + 1, dtype=torch.float64).pow(-float(mu))
    return weights / weights.sum()


def zeta_cdf(mu: float, max_n: int) -> torch.Tensor:
    """``P(k <= n)`` for n = 1..max_n (float64 CPU tensor, (max_n,)); the last entry is exactly 1."""
    cdf = torch.cumsum(zeta_pmf(mu, max_n), dim=0)
    cdf[-1] = 1.0  # not 1 - 1ulp: a uniform just below 1 must still land on max_n
    return cdf


def sample_repeat(cdf: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """Repeat lengths (int64, shaped like ``uniform``, in 1..len(cdf)) by the inverse CDF of ``uniform``'s values
    in [0, 1) (any float dtype; compared in ``cdf``'s dtype). A value of 1.0 or more gives ``len(cdf)``."""
    if cdf.dim() != 1:
        raise ValueError(f"sample_repeat: cdf must be 1-D (from zeta_cdf), got shape {tuple(cdf.shape)}")
    k = torch.searchsorted(cdf, uniform.to(cdf.dtype).contiguous(), right=True) + 1
    return k.clamp_(max=cdf.shape[0])
