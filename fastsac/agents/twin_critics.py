"""The continuous twin critics' head and TD loss, shared by SAC and CrossQ (:class:`ContinuousTwinCritics`, a mixin
of their learners): scalar critics (one Q value per (s, a), squared TD error) or categorical ones
(``LearnerConfig.critic='categorical'``: logits over the support ``Learner.critic_support``, C51 cross-entropy).
FlashSAC builds its own critics and target (``fastsac.agents.flashsac``) from the same pieces of
``fastsac.agents.categorical``; discrete SAC's critics output one Q value per action and keep their own loss.
"""

from __future__ import annotations

import torch

from fastsac import ops
from fastsac.agents.categorical import expected_q, min_member_distribution

__all__ = ["ContinuousTwinCritics"]


class ContinuousTwinCritics:
    """Mixed into a :class:`~fastsac.agents.learner.Learner` whose critics map (s, a) to ``critic_outputs()`` values
    per member; it reads the learner's ``cfg``, ``critic_support``, ``alpha``, ``backend`` and
    ``_rewards_and_mask``."""

    def critic_outputs(self) -> int:
        """What each critic outputs per (s, a): 1 (a Q value) or ``cfg.critic_bins`` (a categorical critic's logits)."""
        return 1 if self.cfg.critic == "scalar" else self.cfg.critic_bins

    def q_values(self, out: torch.Tensor) -> torch.Tensor:
        """The critics' Q values (members, batch) from their outputs: the outputs themselves (scalar critics), or
        the expectation of each member's distribution over :attr:`critic_support` (categorical)."""
        return out if self.critic_support is None else expected_q(out, self.critic_support)

    def bootstrap_target(self, reward, terminated, next_q, next_log_prob) -> torch.Tensor:
        """The scalar critics' TD target ``r + gamma * (1 - terminated) * (min_j next_q_j - alpha * next_log_prob)``
        from the critics' values ``next_q`` (members, batch) at (s', a'), no gradient (r scaled under
        ``cfg.reward_norm``). A categorical critic has a distribution as its target, not this: ValueError."""
        if self.critic_support is not None:
            raise ValueError(f"{type(self).__name__}.bootstrap_target is the scalar critics' target; with "
                             "critic='categorical' the target is a projected distribution (critic_loss computes it)")
        with torch.no_grad():
            reward, not_done = self._rewards_and_mask(reward, terminated)
            return reward + self.cfg.gamma * not_done * (next_q.amin(dim=0) - self.alpha * next_log_prob)

    def critic_loss(self, out, next_out, reward, terminated, next_log_prob) -> torch.Tensor:
        """The continuous critics' TD loss, summed over members and averaged over samples, from their outputs
        ``out`` at (s, a) and the bootstrap outputs ``next_out`` at (s', a') (target critics, or CrossQ's detached
        second half; no gradient):

        - scalar: the squared error against :meth:`bootstrap_target` (the smaller member's Q);
        - categorical: per sample the distribution of the member with the smaller expected Q at (s', a')
          (``fastsac.agents.categorical``), its atoms shifted to ``r + gamma (1 - terminated)(z - alpha log pi)``,
          clipped, projected onto the support and compared with ``out``'s logits by cross-entropy: the fused op
          ``fastsac.ops.categorical_td_loss``."""
        if self.critic_support is None:
            q_target = self.bootstrap_target(reward, terminated, next_out, next_log_prob)
            return (out - q_target).square().mean(dim=1).sum()
        with torch.no_grad():
            target_probs = min_member_distribution(next_out, self.critic_support)
            reward, not_done = self._rewards_and_mask(reward, terminated)
        cfg = self.cfg
        return ops.categorical_td_loss(
            out, target_probs, reward, not_done, self.alpha * next_log_prob, gamma=cfg.gamma, v_min=cfg.critic_v_min,
            v_max=cfg.critic_v_max, backend=self.backend).mean(dim=1).sum()
