"""Discrete SAC (Christodoulou 2019): categorical actor, twin critics Q(s, .) over all actions.

Every expectation over the policy (critic target, actor loss, temperature loss) is taken exactly over all actions
from one fused categorical op call, never from a sampled action.

One update, read top to bottom in :meth:`DiscreteSACLearner._update`::

    target   r + gamma * (1 - terminated) * sum_a pi(a|s') (min_j Q'_j(s', a) - alpha log pi(a|s'))
    critic   both critics' value of the taken action, squared error against that one target; one Adam step
    actor    mean_s sum_a pi(a|s) (alpha log pi(a|s) - min_j Q_j(s, a)), every policy_delay-th update,
    alpha    log_alpha * (mean_s H(pi(.|s)) - target) from the same fused-op call; one backward pass, two Adam steps
    target   theta' <- lerp(theta', theta, tau) over all critic tensors

On a CPU the same update also exists as one C++ call (``fastsac.agents.discrete_sac_native``), which
``update='native'`` (and ``auto`` where it applies) runs.
"""

from __future__ import annotations

import torch

from fastsac import ops
from fastsac.agents.config import LearnerConfig
from fastsac.agents.discrete_sac_native import NativeDiscreteSACUpdate, config_unsupported
from fastsac.agents.learner import Learner
from fastsac.agents.networks import DiscreteActor, DiscreteTwinQ
from fastsac.agents.normed_networks import sac_critic_member
from fastsac.entropy import EntropyModuleDiscrete

__all__ = ["DiscreteSACLearner"]


class DiscreteSACLearner(Learner):
    """Discrete SAC: categorical actor, twin critics Q(s, .) over all actions; every expectation over the policy
    is taken exactly over all actions (critic target, actor loss, alpha loss), never from a sampled action."""

    discrete = True

    def __init__(self, obs_dim: int, num_actions: int, cfg: LearnerConfig | None = None, device="cpu"):
        self.num_actions = int(num_actions)
        cfg = LearnerConfig() if cfg is None else cfg
        if cfg.critic != "scalar":
            raise ValueError(f"DiscreteSACLearner: critic={cfg.critic!r} is for continuous actions (sac, crossq, "
                             "flashsac); discrete SAC's critics output one Q value per action (leave critic 'scalar')")
        changed = [f"{name}={getattr(cfg, name)!r}" for name, default in
                   (("actor_network", "mlp"), ("activation", "relu"), ("amp", "none")) if getattr(cfg, name) != default]
        if changed:
            raise ValueError(f"DiscreteSACLearner: {', '.join(changed)} {'is' if len(changed) == 1 else 'are'} built "
                             "for continuous SAC's networks only; discrete SAC has ReLU MLPs in float32 (leave "
                             f"{'it' if len(changed) == 1 else 'them'} at the default)")
        super().__init__(obs_dim, num_actions, cfg, device)

    def _build_networks(self, n):
        cfg = self.cfg
        critic = DiscreteTwinQ(self.obs_dim, n, cfg.critic_widths, member=sac_critic_member(cfg, self.obs_dim, n))
        return DiscreteActor(self.obs_dim, n, cfg.hidden_sizes), critic

    def _build_entropy(self, n):
        cfg = self.cfg
        scale = None if cfg.target_entropy is not None else cfg.target_entropy_scale
        return EntropyModuleDiscrete(n, initial_alpha=cfg.initial_alpha, lr=cfg.alpha_lr, device=self.device,
                                     target_entropy=cfg.target_entropy, target_entropy_scale=scale,
                                     fixed_alpha=cfg.fixed_alpha)

    def _noise_shape(self, batch_size):
        return (0,)  # no sampling in the update: all expectations are exact

    def critic_target(self, reward, terminated, next_obs, noise=None) -> torch.Tensor:
        """``r + gamma * (1 - terminated) * sum_a pi(a|s') (min_j Q'_j(s', a) - alpha * log pi(a|s'))``: the soft
        value of ``s'`` as an exact expectation over all actions; no gradient. (``noise`` is unused.)"""
        with torch.no_grad():
            reward, not_done = self._rewards_and_mask(reward, terminated)
            probs, log_probs, _ = ops.categorical(self.actor(next_obs), backend=self.backend)
            next_q = self.target_critic(next_obs).amin(dim=0)  # (batch, num_actions)
            next_v = (probs * (next_q - self.alpha * log_probs)).sum(dim=-1)
            return reward + self.cfg.gamma * not_done * next_v

    def actor_and_alpha_losses(self, obs, noise=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(actor_loss, alpha_loss, entropy)`` from ONE fused-op call, all exact expectations over actions:
        ``actor_loss = mean_s sum_a pi(a|s) (alpha * log pi(a|s) - min_j Q_j(s, a))`` (Q and alpha detached),
        ``alpha_loss = log_alpha * (mean_s H(pi(.|s)) - target)``, ``entropy = mean_s H`` (detached)."""
        probs, log_probs, entropy, alpha_loss = ops.categorical_with_alpha_loss(
            self.actor(obs), self.entropy.log_alpha, self.entropy.target_tensor, backend=self.backend)
        with torch.no_grad():
            q = self.critic(obs).amin(dim=0)
        actor_loss = (probs * (self.alpha * log_probs - q)).sum(dim=-1).mean()
        return actor_loss, alpha_loss, entropy.detach().mean()

    def _update(self, obs, action, reward, next_obs, terminated, noise, update_actor: bool) -> None:
        # Critic: Q_j(s, a) of the taken action for both critics against one target (min over the target pair).
        q_target = self.critic_target(reward, terminated, next_obs)
        taken = action.reshape(1, -1, 1).long().expand(self.critic.num_critics, -1, 1)
        q = self.critic(obs).gather(2, taken).squeeze(2)  # (2, batch)
        critic_loss = (q - q_target).square().mean(dim=1).sum()
        self.critic_optim.step(self._grads(critic_loss, self.critic_params))
        actor_metrics = self._actor_and_alpha_step(obs) if update_actor else None  # every policy_delay-th
        self._update_target()
        self._record(critic_loss.detach(), q.detach().mean(), actor_metrics)

    @classmethod
    def native_unsupported(cls, cfg, device, *, data_parallel=False):
        if cls is not DiscreteSACLearner:
            return f"the native update is written for DiscreteSACLearner, not {cls.__name__}"
        return config_unsupported(cfg, device, data_parallel=data_parallel)

    def native_update(self):
        return NativeDiscreteSACUpdate(self)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """int64 actions (N,) for ``obs`` (N, obs_dim) (or a 0-dim action for one (obs_dim,) observation):
        the most likely action, or a sample from the policy drawn with the learner's generator."""
        obs, single = self.prepare_obs(obs)
        logits = self.actor(obs)
        if deterministic:
            action = logits.argmax(dim=-1)
        else:
            action = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=self.generator).squeeze(-1)
        return action[0] if single else action
