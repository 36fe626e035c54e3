"""The matrix products one update of a learner cannot avoid, counted in FLOPs (2 per multiply-add).

Used for the floor that ``bench/bench_update.py`` prints (those FLOPs at the machine's GEMM rate) and for the rule
that decides whether a CPU run compiles its update (``fastsac.training.resolve``): what compiling saves grows
with the work of an update. Checked against ``torch.utils.flop_counter`` on the eager updates in
``tests/agents/test_cost.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["crossq_update_flops", "flash_update_flops", "learner_update_flops", "update_flops"]


def _mlp_macs(dims: Sequence[int]) -> int:
    return sum(a * b for a, b in zip(dims[:-1], dims[1:]))


def update_flops(obs_dim: int, action_dim: int, hidden_sizes: Sequence[int], batch_size: int, *,
                 discrete: bool = False, critic_hidden: Sequence[int] | None = None, critic_outputs: int = 1) -> float:
    """FLOPs of the matrix products of one SAC update (actor and critics updated; ``action_dim`` is the number of
    actions for discrete SAC). The actor's hidden layers are ``hidden_sizes``, the critics' ``critic_hidden``
    (default: the same); a continuous critic outputs ``critic_outputs`` values per (s, a) (a categorical critic's
    bins; 1 for a Q value).

    Continuous, per sample, with C the MACs of one critic's forward and P the actor's (both heads): target (actor P,
    twin target critics 2C), critic step (forward 2C, weight gradients 2C, input gradients of the layers above the
    first 2(C - (o+a) h1)), actor step (actor P, critics 2C, critic input gradients 2C, actor weight gradients P
    and input gradients above the first layer P - o h1'), h1 and h1' the critics' and the actor's first widths.
    No critic weight gradients in the actor step and no extra actor pass for the alpha loss (CleanRL does both, so
    it needs more).

    Discrete, Q(s, .) over all actions: target (actor P, target critics 2C), critic step (2C, 2C, 2(C - o h1)),
    actor step (actor P, critics 2C without gradient, actor weight gradients P, input gradients P - o h1')."""
    o, a, hidden = obs_dim, action_dim, tuple(hidden_sizes)
    critic_hidden = hidden if critic_hidden is None else tuple(critic_hidden)
    if discrete:
        c = _mlp_macs((o, *critic_hidden, a))
        p = _mlp_macs((o, *hidden, a))
        macs = 4 * p + 10 * c - 2 * o * critic_hidden[0] - o * hidden[0]
    else:
        c = _mlp_macs((o + a, *critic_hidden, int(critic_outputs)))
        p = _mlp_macs((o, *hidden)) + 2 * a * hidden[-1]
        macs = 4 * p + 12 * c - 2 * (o + a) * critic_hidden[0] - o * hidden[0]
    return 2.0 * macs * batch_size


def crossq_update_flops(obs_dim: int, action_dim: int, actor_hidden: Sequence[int], critic_hidden: Sequence[int],
                        batch_size: int, *, policy_delay: int = 1, critic_outputs: int = 1) -> float:
    """FLOPs of the matrix products of one CrossQ update, averaged over a policy-delay cycle (the actor's step
    runs every ``policy_delay``-th update); each critic outputs ``critic_outputs`` values per (s, a) (a
    categorical critic's bins; 1 for a Q value).

    Per sample, with C the MACs of one critic's forward (``critic_hidden``) and P the actor's (both heads): next
    action (actor P, evaluation mode); critic step over the joint batch of 2 x batch rows (forward 2C, weight
    gradients 2C, input gradients 2C, all per row: the first layer's input gradient too, since the input's batch
    renorm has parameters), so 12C per sample; actor step (actor P, critics 2C in evaluation mode, their input
    gradients 2C, actor weight gradients P and input gradients P, the first layer's included for the same reason).
    No target critics."""
    o, a = obs_dim, action_dim
    actor_hidden, critic_hidden = tuple(actor_hidden), tuple(critic_hidden)
    c = _mlp_macs((o + a, *critic_hidden, int(critic_outputs)))
    p = _mlp_macs((o, *actor_hidden)) + 2 * a * actor_hidden[-1]
    critic_macs = p + 12 * c
    actor_macs = 3 * p + 4 * c
    return 2.0 * (critic_macs + actor_macs / max(1, int(policy_delay))) * batch_size


def learner_update_flops(cfg: Any, obs_dim: int, action_size: int, batch_size: int, *, discrete: bool = False) -> float:
    """The FLOPs of one update of the learner ``cfg`` (a ``LearnerConfig``) builds: :func:`crossq_update_flops` for
    CrossQ (its critic widths, the joint batch, its policy delay), :func:`flash_update_flops` for FlashSAC (widths
    and block counts from ``hidden_sizes`` / ``critic_widths``, its bins, twin critics, the actor every
    ``policy_delay``-th update), :func:`update_flops` of ``cfg.hidden_sizes`` and ``cfg.critic_widths`` otherwise;
    categorical critics (``cfg.critic``) output ``cfg.critic_bins`` logits. The MLP critics' products only: the
    LayerNorm and SimBa members (``cfg.critic_network``) add normalization work and residual blocks not counted."""
    if cfg.agent == "flashsac":
        return flash_update_flops(obs_dim, action_size, batch_size, cfg.hidden_sizes[0], len(cfg.hidden_sizes),
                                  cfg.critic_widths[0], len(cfg.critic_widths), cfg.critic_bins, 2,
                                  actor_every=cfg.policy_delay)
    outputs = 1 if cfg.critic == "scalar" else cfg.critic_bins
    if cfg.agent == "crossq":
        return crossq_update_flops(obs_dim, action_size, cfg.hidden_sizes, cfg.critic_widths, batch_size,
                                   policy_delay=cfg.policy_delay, critic_outputs=outputs)
    return update_flops(obs_dim, action_size, cfg.hidden_sizes, batch_size, discrete=discrete,
                        critic_hidden=cfg.critic_widths, critic_outputs=outputs)


def _flash_trunk_macs(in_dim: int, width: int, blocks: int) -> int:
    """Per row: the embedding ``in_dim -> width`` and per block ``width -> 4 width -> width``."""
    return in_dim * width + blocks * 8 * width * width


def flash_update_flops(obs_dim: int, action_dim: int, batch: int, actor_width: int, actor_blocks: int,
                       critic_width: int, critic_blocks: int, num_bins: int, members: int,
                       actor_every: int = 1) -> float:
    """FLOPs of the matrix products of one FlashSAC update (``fastsac.agents.flash_networks``), averaged over an
    actor cycle (the actor's step runs every ``actor_every``-th update).

    Per row, with P the MACs of the actor's forward (trunk and both heads) and C those of one critic member's (trunk
    and the ``num_bins`` head), M members, B = ``batch``:

    - target: the actor on the B next observations (evaluation mode, no gradient): P B; the target critics in
      training mode on the joint batch of 2B rows, no gradient: 2 M C B;
    - critic step: the online critics on the joint 2B rows, forward M C 2B, weight gradients M C 2B and input
      gradients M C 2B. The loss reads only the first half, but training-mode batch norm couples every row through
      the batch statistics, so the backward products cover all 2B rows; and the first layer's input gradient is
      needed too (the input batch norm has parameters): 6 M C B;
    - actor step (every ``actor_every``-th update): the actor in training mode on the joint 2B rows, forward,
      weight and input gradients (every layer's, as above): 6 P B; the critics on the B (s, a) rows in evaluation
      mode, forward M C B, and their backward to the action only: input gradients through every layer, no weight
      gradients (``torch.autograd.grad`` for the actor's parameters skips them): M C B.

    Total ``2 (8 M C + P + (6 P + 2 M C) / actor_every) B`` (2 FLOPs per multiply-add). Checked against
    ``torch.utils.flop_counter`` on an eager run of these passes in ``tests/agents/test_cost.py``."""
    o, a, m = obs_dim, action_dim, members
    p = _flash_trunk_macs(o, actor_width, actor_blocks) + 2 * a * actor_width
    c = _flash_trunk_macs(o + a, critic_width, critic_blocks) + critic_width * num_bins
    critic_macs = 8 * m * c + p
    actor_macs = 6 * p + 2 * m * c
    return 2.0 * (critic_macs + actor_macs / max(1, int(actor_every))) * batch
