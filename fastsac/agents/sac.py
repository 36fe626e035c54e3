"""Continuous SAC (Haarnoja et al. 2018): tanh-squashed Gaussian actor, twin critics Q(s, a), learned temperature.

One update, read top to bottom in :meth:`SACLearner._update`::

    target   r + gamma * (1 - terminated) * (min_j Q'_j(s', a') - alpha log pi(a'|s')) from the target critics
             (bootstrapping is masked by termination only; a time-limit truncation still bootstraps)
    critic   both critics' squared error against that one target; one Adam step
             (``critic='categorical'``: the target critics' distributions at (s', a') instead, the member with the
             smaller expected Q shifted and projected onto the support, cross-entropy; both in
             ``fastsac.agents.twin_critics``)
    actor    (alpha * log pi(a|s) - min_j Q_j(s, a)).mean(), with a ~ pi reparameterised by the fused op,
    alpha    -log_alpha * mean(log pi + target), returned by the *same* fused-op call (gradient to log_alpha only);
             one backward pass and the actor's and log_alpha's Adam steps, every policy_delay-th update
    target   theta' <- lerp(theta', theta, tau), one fused ``torch._foreach_lerp_`` over all critic tensors

On a CPU the same update also exists as one C++ call (``fastsac.agents.sac_native``), which ``update='native'``
(and ``auto`` where it applies) runs instead.
"""

from __future__ import annotations

import torch

from fastsac import ops
from fastsac.agents.config import LearnerConfig
from fastsac.agents.learner import Learner
from fastsac.agents.networks import ContinuousTwinQ
from fastsac.agents.normed_networks import sac_actor, sac_critic_member
from fastsac.agents.precision import run_autocast
from fastsac.agents.sac_native import NativeSACUpdate, config_unsupported
from fastsac.agents.twin_critics import ContinuousTwinCritics
from fastsac.entropy import EntropyModule

__all__ = ["SACLearner"]


class SACLearner(ContinuousTwinCritics, Learner):
    """Continuous SAC: tanh-squashed Gaussian actor, twin critics Q(s, a), learned temperature.

    Actions are in [-1, 1] (the env wrapper rescales them to the env's bounds).
    """

    discrete = False
    acts_in_update = True

    def __init__(self, obs_dim: int, action_dim: int, cfg: LearnerConfig | None = None, device="cpu", *,
                 policy_obs_dim: int | None = None):
        self.action_dim = int(action_dim)
        cfg = LearnerConfig() if cfg is None else cfg
        self.log_std_bounds = (cfg.log_std_min, cfg.log_std_max)
        if policy_obs_dim is not None and not 0 < int(policy_obs_dim) < int(obs_dim):
            raise ValueError(f"SACLearner: policy_obs_dim must be in (0, obs_dim={obs_dim}), got {policy_obs_dim}")
        #: asymmetric critics: the policy reads the first policy_obs_dim features of an observation, the critics all
        self.policy_obs_dim = None if policy_obs_dim is None else int(policy_obs_dim)
        super().__init__(obs_dim, action_dim, cfg, device)

    def _build_networks(self, n):
        cfg = self.cfg
        outputs = self.critic_outputs()
        critic = ContinuousTwinQ(self.obs_dim, n, cfg.critic_widths,
                                 member=sac_critic_member(cfg, self.obs_dim + n, outputs), outputs=outputs)
        return sac_actor(cfg, self.policy_obs_dim or self.obs_dim, n), critic

    def _policy(self, obs) -> tuple[torch.Tensor, torch.Tensor]:
        """The actor's ``(mean, raw log-std)`` for ``obs`` (its first ``policy_obs_dim`` features with asymmetric
        critics), float32 (its forward under bf16 autocast with ``cfg.amp`` where it applies:
        ``fastsac.agents.precision``)."""
        if self.policy_obs_dim is not None:
            obs = obs[..., : self.policy_obs_dim]
        return run_autocast(self.amp_dtype, self.device, self.actor, obs)

    def _critics(self, critic, obs, action) -> torch.Tensor:
        """``critic(obs, action)`` (the critics or the target critics), float32, under autocast as :meth:`_policy`."""
        return run_autocast(self.amp_dtype, self.device, critic, obs, action)

    def _build_entropy(self, n):
        cfg = self.cfg
        return EntropyModule(n, initial_alpha=cfg.initial_alpha, lr=cfg.alpha_lr, device=self.device,
                             target_entropy=cfg.target_entropy, fixed_alpha=cfg.fixed_alpha)

    def _noise_shape(self, batch_size):
        return (2, batch_size, self.action_dim)  # [0]: next-state action (target), [1]: current action (actor)

    def bootstrap_values(self, next_obs, noise) -> tuple[torch.Tensor, torch.Tensor]:
        """``(target critics' outputs at (s', a'), log pi(a'|s'))`` with ``a' ~ pi(.|s')`` from ``noise``
        (batch, action_dim); no gradient. Outputs: (2, batch) Q values, or (2, batch, bins) logits."""
        with torch.no_grad():
            mean, log_std = self._policy(next_obs)
            next_action, next_log_prob = ops.squashed_gaussian(
                mean, log_std, noise, log_std_bounds=self.log_std_bounds, backend=self.backend)
            return self._critics(self.target_critic, next_obs, next_action), next_log_prob

    def critic_target(self, reward, terminated, next_obs, noise) -> torch.Tensor:
        """The scalar critics' target ``r + gamma * (1 - terminated) * (min_j Q'_j(s', a') - alpha * log pi(a'|s'))``
        with ``a' ~ pi(.|s')`` from ``noise`` (batch, action_dim); no gradient. Truncated transitions are stored as
        not terminated and bootstrap."""
        return self.bootstrap_target(reward, terminated, *self.bootstrap_values(next_obs, noise))

    def actor_and_alpha_losses(self, obs, noise) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(actor_loss, alpha_loss, entropy)`` from ONE fused-op call: ``a ~ pi(.|s)`` reparameterised by
        ``noise``; ``actor_loss = mean(alpha * log pi(a|s) - min_j Q_j(s, a))`` (alpha detached);
        ``alpha_loss = -log_alpha * mean(log pi + target)`` (gradient to log_alpha only); ``entropy`` is the
        detached estimate ``-mean(log pi)``."""
        mean, log_std = self._policy(obs)
        action, log_prob, alpha_loss = ops.squashed_gaussian_with_alpha_loss(
            mean, log_std, noise, self.entropy.log_alpha, self.entropy.target_tensor,
            log_std_bounds=self.log_std_bounds, backend=self.backend)
        actor_loss = (self.alpha * log_prob - self.q_values(self._critics(self.critic, obs, action)).amin(dim=0)).mean()
        return actor_loss, alpha_loss, -log_prob.detach().mean()

    def _update(self, obs, action, reward, next_obs, terminated, noise, update_actor: bool,
                act_obs=None, act_noise=None) -> torch.Tensor | None:
        next_out, next_log_prob = self.bootstrap_values(next_obs, noise[0])
        # (2, batch) Q values or (2, batch, bins) logits: both onto the one target
        out = self._critics(self.critic, obs, action)
        critic_loss = self.critic_loss(out, next_out, reward, terminated, next_log_prob)
        self.critic_optim.step(self._grads(critic_loss, self.critic_params))
        actor_metrics = self._actor_and_alpha_step(obs, noise[1]) if update_actor else None  # every policy_delay-th
        self._update_target()
        self._record(critic_loss.detach(), self.q_values(out.detach()).mean(), actor_metrics)
        return self._actions_after_update(act_obs, act_noise)  # the next env step's actions, when asked for

    @classmethod
    def native_unsupported(cls, cfg, device, *, data_parallel=False):
        if cls is not SACLearner:
            return f"the native update is written for SACLearner, not {cls.__name__}"
        return config_unsupported(cfg, device, data_parallel=data_parallel)

    def native_update(self):
        return NativeSACUpdate(self)

    def _act_noise_shape(self, n):
        return (n, self.action_dim)

    def _sample_actions(self, policy_obs, noise):
        mean, log_std = self._policy(policy_obs)
        action, _ = ops.squashed_gaussian(mean, log_std, noise, log_std_bounds=self.log_std_bounds,
                                          backend=self.backend)
        return action

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """Actions in [-1, 1] for ``obs`` (N, obs_dim) -> (N, action_dim) (or (obs_dim,) -> (action_dim,)).
        Eager (compiling batch-1 acting is slower on CPU); stochastic actions draw from the learner's generator.
        ``update(batch, act_obs=obs)`` returns the same stochastic actions from inside the update."""
        obs, single = self.prepare_obs(obs)
        if deterministic:
            action = ops.deterministic_action(self._policy(obs)[0])
        else:
            action = self._sample_actions(obs, self._draw_act_noise(obs.shape[0]))
        return action[0] if single else action
