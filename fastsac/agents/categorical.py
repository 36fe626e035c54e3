"""The categorical (C51) critic's value side, shared by every learner that has one (SAC and CrossQ with
``critic='categorical'``, FlashSAC always): a critic member outputs logits over a fixed support of atoms
``z_k = linspace(v_min, v_max, K)``; its Q value is the expectation ``sum_k softmax(logits)_k z_k``.

The loss (the target's atoms shifted by reward, discount and entropy, projected onto the support, cross-entropy
against the online logits) is the fused op ``fastsac.ops.categorical_td_loss``; this module holds the two pieces
around it: the expectation, and the target distribution of the member with the smaller expected Q (clipped double
Q for distributions, as FlashSAC picks it).
"""

from __future__ import annotations

import torch

__all__ = ["expected_q", "min_member_distribution", "support_atoms"]


def support_atoms(num_bins: int, v_min: float, v_max: float, device=None) -> torch.Tensor:
    """The support ``linspace(v_min, v_max, num_bins)`` (float32)."""
    return torch.linspace(v_min, v_max, num_bins, device=device)


def expected_q(logits: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """The expected value of each categorical distribution: (..., K) logits over ``support`` (K,) -> (...)."""
    return (torch.softmax(logits, dim=-1) * support).sum(dim=-1)


def min_member_distribution(logits: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """Per sample, the distribution (probabilities, (B, K)) of the member with the smaller expected Q among the
    members' logits (M, B, K); ties: the first member. Call it without gradient (a target)."""
    pick = expected_q(logits, support).argmin(dim=0)  # (B,)
    chosen = logits.gather(0, pick[None, :, None].expand(1, -1, logits.shape[-1]))[0]
    return torch.softmax(chosen, dim=-1)
