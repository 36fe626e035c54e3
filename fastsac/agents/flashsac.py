"""FlashSAC (arXiv 2604.04539, "FlashSAC"; public code github.com/Holiday-Robot/FlashSAC at 87edc90,
``flash_rl/agents/flashSAC/``): SAC with normalized residual networks, a categorical (C51) critic, reward scaling
and repeated exploration noise.

One update, read top to bottom in :meth:`FlashSACLearner._update` (the reference's order: actor and temperature
first, then the critics with the updated actor and temperature)::

    actor    every policy_delay-th update: the actor in training mode over the joint batch [s; s'] (its batch norm
             sees both halves and its running statistics advance), a ~ pi(.|s) from the first half by the fused op,
             the critics in evaluation mode: mean(alpha log pi(a|s) - min_j Q_j(s, a)), Q_j the expectation of
             critic j's distribution; temperature loss alpha * (H - target) with H = -mean(log pi) (FlashSAC's
             form: its gradient to log_alpha is alpha (H - target)); one backward pass, the actor's and log_alpha's
             Adam steps, then the actor's weights projected (``FlashActor.project_``)
    target   a' ~ pi(.|s') from the actor in evaluation mode; the target critics in training mode over the joint
             batch [(s, a); (s', a')] (their running statistics advance); per sample the distribution of the
             member with the smaller expected Q at (s', a')
    critic   the online critics in training mode over the same joint batch; the fused categorical TD loss
             (``fastsac.ops.categorical_td_loss``: atoms shifted to r~ + gamma (1 - terminated)(z - alpha log
             pi(a'|s')), clipped, projected onto the support, cross-entropy against the first half's logits),
             averaged over members and samples; one Adam step, then the critics' weights projected
    polyak   theta' <- lerp(theta', theta, tau) over the critics' parameters (not their batch-norm statistics)

r~ is the reward divided by the running return scale (:class:`~fastsac.agents.normalization.ReturnScale`, updated
by :meth:`observe_step` from every env step, read inside the update). Every optimizer follows a cosine learning
rate over its own steps (``LearnerConfig.lr_decay``, ``fastsac.agents.optim.CosineLR``).

Acting: ``tanh(mean + std * noise)`` with the actor in evaluation mode, where each env's noise is held for k steps,
k ~ Zeta(2) truncated at ``cfg.noise_repeat`` (``fastsac.agents.noise_repeat``), drawn again when it runs out. The
held noise and the steps it has left are learner state (in ``state_dict``: exact resume), sized by
:meth:`attach_envs`. Deliberate difference from the reference, which holds one count for all envs: each env
counts its own (identical with one env, as in its MuJoCo runs).

The whole update is one graph under ``torch.compile(fullgraph=True)`` like SAC's: the batch-norm statistics,
the weight projections, the reward scale and the learning-rate schedules are in-place tensor operations inside it.

Defaults: :data:`fastsac.agents.config.FLASHSAC_DEFAULTS` (``LearnerConfig().with_agent("flashsac")``), with the
source there; the networks: ``fastsac.agents.flash_networks``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from fastsac import ops
from fastsac.agents.config import LearnerConfig
from fastsac.agents.categorical import min_member_distribution
from fastsac.agents.flash_networks import FlashActor, FlashCritic
from fastsac.agents.learner import Learner
from fastsac.agents.noise_repeat import sample_repeat, zeta_cdf
from fastsac.agents.sac import SACLearner
from fastsac.entropy import EntropyModule

__all__ = ["FlashSACLearner", "gaussian_target_entropy"]

ZETA_MU = 2.0  # FlashSAC's noise repetition: k ~ Zeta(2)


def gaussian_target_entropy(action_dim: int, sigma: float) -> float:
    """The entropy of a ``action_dim``-dimensional Gaussian of std ``sigma``: ``0.5 |A| ln(2 pi e sigma^2)``
    (FlashSAC's target entropy, sigma 0.15)."""
    return 0.5 * action_dim * math.log(2.0 * math.pi * math.e * sigma**2)


class FlashSACLearner(Learner):
    """FlashSAC: normalized residual actor and categorical twin critics, reward scaling, repeated noise.

    Actions are in [-1, 1]. ``cfg`` defaults to FlashSAC's MuJoCo setting; a config of another agent is refused.
    """

    discrete = False
    acts_in_update = True
    # The first-call check's tolerance. Measured at FlashSAC's sizes (HalfCheetah, batch 512, one update, gradients
    # from Adam's first moments against a float64 recomputation, tests/agents/test_flashsac.py's): the eager float32
    # update's critic gradients are up to 1.5% off float64 in max norm (0.09% in Frobenius norm), the compiled
    # update's 3.8% (0.29%), and the two differ from each other by 2.9% of a tensor's largest element: 1024-wide
    # ReLU layers behind batch norm over the joint batch turn float32 rounding into gradient rows that flip. Two
    # correct float32 implementations differ by that much; an update that is wrong (a stale statistic, a missing
    # step, a sign) differs by O(1).
    first_call_rtol = 0.1

    def __init__(self, obs_dim: int, action_dim: int, cfg: LearnerConfig | None = None, device="cpu"):
        cfg = LearnerConfig().with_agent("flashsac") if cfg is None else cfg
        if cfg.agent != "flashsac":
            raise ValueError(f"FlashSACLearner: cfg.agent is {cfg.agent!r}; use LearnerConfig(...).with_agent("
                             "'flashsac') or make_learner, which picks the learner from cfg.agent")
        self.action_dim = int(action_dim)
        self.log_std_bounds = (cfg.log_std_min, cfg.log_std_max)
        super().__init__(obs_dim, action_dim, cfg, device)
        self.noise_cdf = zeta_cdf(ZETA_MU, cfg.noise_repeat).to(self.device) if cfg.noise_repeat > 1 else None
        self.held_noise: torch.Tensor | None = None  # (num_envs, action_dim): the noise each env acts with
        self.repeat_left: torch.Tensor | None = None  # (num_envs,) int64: steps it is held for after this one
        self.attach_envs(1)

    def _build_networks(self, n):
        cfg = self.cfg
        actor = FlashActor(self.obs_dim, n, width=cfg.hidden_sizes[0], blocks=len(cfg.hidden_sizes))
        critic = FlashCritic(self.obs_dim + n, width=cfg.critic_widths[0], blocks=len(cfg.critic_widths),
                             num_bins=cfg.critic_bins, v_min=cfg.critic_v_min, v_max=cfg.critic_v_max, members=2)
        return actor, critic

    def _build_entropy(self, n):
        cfg = self.cfg
        target = cfg.target_entropy
        if target is None and cfg.target_entropy_sigma is not None:
            target = gaussian_target_entropy(n, cfg.target_entropy_sigma)
        return EntropyModule(n, initial_alpha=cfg.initial_alpha, lr=cfg.alpha_lr, device=self.device,
                             target_entropy=target, fixed_alpha=cfg.fixed_alpha)

    def _noise_shape(self, batch_size):
        return (2, batch_size, self.action_dim)  # [0]: next-state action (target), [1]: current action (actor)

    # ------------------------------------------------------------------------------------------ the envs' side
    def attach_envs(self, num_envs: int) -> None:
        """Per-env state for ``num_envs`` envs: each env's running return (reward scaling, the base's) and its
        held noise."""
        super().attach_envs(num_envs)
        self._size_noise_state(int(num_envs))

    def _size_noise_state(self, n: int) -> None:
        """Held noise for ``n`` envs; a new size starts every env afresh (its next step draws)."""
        if self.noise_cdf is None or (self.held_noise is not None and self.held_noise.shape[0] == n):
            return
        self.held_noise = torch.zeros(n, self.action_dim, device=self.device)
        self.repeat_left = torch.zeros(n, dtype=torch.int64, device=self.device)

    # ------------------------------------------------------------------------------------------------ acting
    def _act_noise_shape(self, n):
        # with noise repetition, one more normal draw per env: its CDF is the uniform that draws the repeat length
        return (n, self.action_dim + (1 if self.noise_cdf is not None else 0))

    def _draw_act_noise(self, n: int) -> torch.Tensor:
        self._size_noise_state(n)  # outside the compiled update: a new size allocates before it runs
        return super()._draw_act_noise(n)

    def _exploration_noise(self, noise: torch.Tensor) -> torch.Tensor:
        """The noise this step acts with, from fresh draws ``noise`` (``_act_noise_shape``): each env's held noise
        while it has steps left, else a fresh draw held for k ~ Zeta(2) steps (updated in place)."""
        if self.noise_cdf is None:
            return noise
        fresh, uniform = noise[:, :-1], torch.special.ndtr(noise[:, -1])
        renew = self.repeat_left <= 0
        held = torch.where(renew[:, None], fresh, self.held_noise)
        left = torch.where(renew, sample_repeat(self.noise_cdf, uniform), self.repeat_left) - 1
        self.held_noise.copy_(held)
        self.repeat_left.copy_(left)
        return held

    def _sample_actions(self, policy_obs, noise):
        mean, log_std = self.actor(policy_obs, training=False)
        action, _ = ops.squashed_gaussian(mean, log_std, self._exploration_noise(noise),
                                          log_std_bounds=self.log_std_bounds, backend=self.backend)
        return action

    act = SACLearner.act  # deterministic: tanh(mean); stochastic: _sample_actions (the actor in evaluation mode)
    _policy = SACLearner._policy  # the actor's (mean, raw log-std) in acting mode (no autocast: amp is SAC's)

    # ------------------------------------------------------------------------------------------------ update
    def actor_and_alpha_losses(self, obs, next_obs, noise) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(actor_loss, alpha_loss, entropy)``: the actor in training mode over ``[obs; next_obs]`` (batch norm
        over both halves), ``a ~ pi(.|obs)`` from the first half; the critics in evaluation mode;
        ``actor_loss = mean(alpha log pi - min_j Q_j)``; ``alpha_loss = alpha * (H - target)``, H detached."""
        mean, log_std = self.actor(torch.cat([obs, next_obs]), training=True)
        batch = obs.shape[0]
        action, log_prob = ops.squashed_gaussian(mean[:batch], log_std[:batch], noise,
                                                 log_std_bounds=self.log_std_bounds, backend=self.backend)
        q = self.critic.q_values(self.critic(obs, action, training=False)).amin(dim=0)
        actor_loss = (self.alpha * log_prob - q).mean()
        entropy = -log_prob.detach().mean()
        alpha_loss = self.entropy.log_alpha.exp() * (entropy - self.entropy.target_tensor)
        return actor_loss, alpha_loss, entropy

    def target_distribution(self, obs, action, next_obs, next_action) -> torch.Tensor:
        """Per sample, the target critics' distribution (probabilities, (batch, bins)) at ``(next_obs,
        next_action)`` of the member with the smaller expected Q, from one training-mode pass over the joint batch
        (ties: the first member). No gradient."""
        with torch.no_grad():
            logits = self.target_critic(torch.cat([obs, next_obs]), torch.cat([action, next_action]), training=True)
            logits = logits[:, obs.shape[0]:]  # (members, batch, bins): the (s', a') half
            return min_member_distribution(logits, self.target_critic.support)

    def _update(self, obs, action, reward, next_obs, terminated, noise, update_actor: bool,
                act_obs=None, act_noise=None) -> torch.Tensor | None:
        actor_metrics = None
        if update_actor:  # every policy_delay-th update, first (the reference's order)
            actor_metrics = self._actor_and_alpha_step(obs, next_obs, noise[1])
            self.actor.project_()
        with torch.no_grad():  # a' ~ pi(.|s'), the updated actor in evaluation mode
            mean, log_std = self.actor(next_obs, training=False)
            next_action, next_log_prob = ops.squashed_gaussian(
                mean, log_std, noise[0], log_std_bounds=self.log_std_bounds, backend=self.backend)
            target_probs = self.target_distribution(obs, action, next_obs, next_action)
            scaled, not_done = self._rewards_and_mask(reward, terminated)  # r~: divided by the return scale
        logits = self.critic(torch.cat([obs, next_obs]), torch.cat([action, next_action]), training=True)
        logits = logits[:, : obs.shape[0]]  # (members, batch, bins): the (s, a) half
        cfg = self.cfg
        critic_loss = ops.categorical_td_loss(
            logits, target_probs, scaled, not_done, self.alpha * next_log_prob, gamma=cfg.gamma,
            v_min=cfg.critic_v_min, v_max=cfg.critic_v_max, backend=self.backend).mean()
        self.critic_optim.step(self._grads(critic_loss, self.critic_params))
        self.critic.project_()
        self._update_target()
        self._record(critic_loss.detach(), self.critic.q_values(logits.detach()).mean(), actor_metrics)
        return self._actions_after_update(act_obs, act_noise)  # the next env step's actions, when asked for

    # ---- what an update writes -----------------------------------------------------------------------------
    def _acting_state(self) -> list[tuple[str, torch.Tensor]]:
        return [] if self.noise_cdf is None else [("held_noise", self.held_noise), ("repeat_left", self.repeat_left)]

    def _mutable_tensors(self) -> list[torch.Tensor]:
        # beyond the base's: the target critics' batch-norm statistics and the acting state
        return [*super()._mutable_tensors(), *self.target_critic.buffers(), *(t for _, t in self._acting_state())]

    def _compared_tensors(self) -> list[tuple[str, torch.Tensor]]:
        named = [(f"target_critic.{k}", t) for k, t in self.target_critic.named_buffers()]
        return [*super()._compared_tensors(), *named]

    # ------------------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """The base learner's state (the reward scale among it) plus the held noise with the steps each env holds
        it for (None without noise repetition)."""
        state = super().state_dict()
        state["noise_repeat"] = None if self.noise_cdf is None else {
            "held_noise": self.held_noise.detach().clone(), "repeat_left": self.repeat_left.detach().clone()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if (state.get("noise_repeat") is None) != (self.noise_cdf is None):
            raise ValueError(f"{type(self).__name__}.load_state_dict: the state's noise repetition (on or off) "
                             "differs from this learner's (cfg.noise_repeat)")
        super().load_state_dict(state)
        if self.noise_cdf is not None:
            saved = state["noise_repeat"]
            self._size_noise_state(saved["held_noise"].shape[0])
            with torch.no_grad():
                self.held_noise.copy_(saved["held_noise"])
                self.repeat_left.copy_(saved["repeat_left"])
