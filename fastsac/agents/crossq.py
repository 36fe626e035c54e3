"""CrossQ (Bhatt et al., ICLR 2024, "CrossQ: Batch Normalization in Deep Reinforcement Learning for Greater Sample
Efficiency and Simplicity", openreview.net/forum?id=PczQtTsTIX): continuous SAC without target critics, with
batch renormalization in the critics and the actor, one joint critic pass, wider critics, Adam with beta1 = 0.5
and a delayed actor.

One update, read top to bottom in :meth:`CrossQLearner._update`::

    next action  a' ~ pi(.|s') from the actor in evaluation mode (its running statistics), no gradient
    critic       ONE pass of both critics in training mode over the joint batch [(s, a); (s', a')], then split:
                 batch renorm normalizes with the statistics of both halves and updates its running statistics
                 from them. Target r + gamma * (1 - terminated) * (min_j Q_j(s', a') - alpha log pi(a'|s')) from
                 the detached second half; squared error of the first half (SAC's critic step, no target critics;
                 ``critic='categorical'``: the projected distribution and cross-entropy, ``agents/twin_critics.py``)
    actor        every policy_delay-th update: actor in training mode, critics in evaluation mode,
                 mean(alpha log pi(a|s) - min_j Q_j(s, a)); alpha_loss from the same fused-op call, as SAC;
                 one backward pass and the actor's and log_alpha's Adam steps
    target       none: the critics bootstrap from themselves

Why the joint pass (the paper, section 3): (s, a) from the buffer and (s', a') with a' from the current policy are
differently distributed; normalizing each with its own statistics, or the next-state batch with statistics it
never contributed to, makes one of them out of distribution. One pass over both normalizes them alike, which is
what lets the critics bootstrap from themselves without a target network.

Compilation: the whole step is ONE graph under ``torch.compile(fullgraph=True)`` exactly like SAC's (gradients from
``torch.autograd.grad``, ``ForeachAdam``, the fused op). The batch statistics stay inside the graph: every batch
renorm layer keeps its running mean, variance and step counter as buffers that ``forward`` updates in place
(``fastsac.agents.normalization``), the warm-up switch is a ``where`` on the device-side counter, and the critics'
buffers are stacked by ``EnsembleQ`` and written through the vmapped call. On CUDA the captured graph therefore
replays those in-place updates on fixed addresses; they are among the tensors snapshotted around a capture's
warm-up runs (``Learner._mutable_tensors``), and they are in ``state_dict`` for exact resume.

On a CPU the same update also exists as one C++ call (``fastsac.agents.crossq_native``, for the batch-renormalized
MLPs of ``critic_network="mlp"`` without observation normalization), which ``update='native'`` (and ``auto`` where
it applies) runs instead; elsewhere ``auto`` compiles it.

Defaults: :data:`fastsac.agents.config.CROSSQ_DEFAULTS` (``LearnerConfig().with_agent("crossq")``), the settings
of the paper's reference implementation, with the source there. Deliberate differences from that code: the
critic loss has no factor 1/2 (SAC's here; Adam is invariant to it up to its eps); the policy's log-std is bounded
smoothly to [log_std_min, log_std_max] by the fused op (the reference clips it to [-20, 2]); after the warm-up the
layers apply Ioffe's equations exactly (the reference folds eps into r slightly differently).
"""

from __future__ import annotations

import torch

from fastsac import ops
from fastsac.agents.config import LearnerConfig
from fastsac.agents.crossq_native import NativeCrossQUpdate, config_unsupported
from fastsac.agents.learner import Learner
from fastsac.agents.networks import ContinuousTwinQ
from fastsac.agents.normed_networks import BatchRenormActor, batch_renorm_options, critic_member
from fastsac.agents.sac import SACLearner
from fastsac.agents.twin_critics import ContinuousTwinCritics

__all__ = ["CrossQLearner"]


class CrossQLearner(ContinuousTwinCritics, Learner):
    """CrossQ: tanh-squashed Gaussian actor and twin critics with batch renormalization, no target critics.

    Actions are in [-1, 1]. ``cfg`` defaults to CrossQ's paper setting; a config of another agent is refused.
    """

    discrete = False
    uses_target_critic = False
    acts_in_update = True

    def __init__(self, obs_dim: int, action_dim: int, cfg: LearnerConfig | None = None, device="cpu"):
        cfg = LearnerConfig().with_agent("crossq") if cfg is None else cfg
        if cfg.agent != "crossq":
            raise ValueError(f"CrossQLearner: cfg.agent is {cfg.agent!r}; use LearnerConfig(...).with_agent('crossq') "
                             "or make_learner, which picks the learner from cfg.agent")
        self.action_dim = int(action_dim)
        self.log_std_bounds = (cfg.log_std_min, cfg.log_std_max)
        super().__init__(obs_dim, action_dim, cfg, device)

    def _build_networks(self, n):
        cfg, brn = self.cfg, batch_renorm_options(self.cfg)
        outputs = self.critic_outputs()
        member = critic_member(self.obs_dim + n, outputs, cfg.critic_widths, cfg.critic_network, brn)
        return (BatchRenormActor(self.obs_dim, n, cfg.hidden_sizes, brn),
                ContinuousTwinQ(self.obs_dim, n, cfg.critic_widths, member=member, outputs=outputs))

    # Acting (actor in evaluation mode: its forward's default), the temperature module and the noise layout are
    # continuous SAC's.
    _build_entropy = SACLearner._build_entropy
    _noise_shape = SACLearner._noise_shape
    _act_noise_shape = SACLearner._act_noise_shape
    _sample_actions = SACLearner._sample_actions
    act = SACLearner.act
    _policy = SACLearner._policy  # the actor's (mean, raw log-std) in acting mode (no autocast: amp is SAC's)

    def actor_and_alpha_losses(self, obs, noise) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """As SAC's (one fused-op call for actor loss, alpha loss and entropy), with the actor in training mode
        (batch statistics; its running statistics advance) and the critics in evaluation mode (their running
        statistics, as the reference implementation)."""
        mean, log_std = self.actor(obs, training=True)
        action, log_prob, alpha_loss = ops.squashed_gaussian_with_alpha_loss(
            mean, log_std, noise, self.entropy.log_alpha, self.entropy.target_tensor,
            log_std_bounds=self.log_std_bounds, backend=self.backend)
        q = self.q_values(self.critic(obs, action, training=False))  # critics in evaluation mode
        actor_loss = (self.alpha * log_prob - q.amin(dim=0)).mean()
        return actor_loss, alpha_loss, -log_prob.detach().mean()

    def _update(self, obs, action, reward, next_obs, terminated, noise, update_actor: bool,
                act_obs=None, act_noise=None) -> torch.Tensor | None:
        with torch.no_grad():  # a' ~ pi(.|s'), the actor in evaluation mode
            mean, log_std = self.actor(next_obs, training=False)
            next_action, next_log_prob = ops.squashed_gaussian(
                mean, log_std, noise[0], log_std_bounds=self.log_std_bounds, backend=self.backend)
        # One critic pass in training mode over [(s, a); (s', a')]: batch renorm sees (and records) both halves.
        out_joint = self.critic(torch.cat([obs, next_obs]), torch.cat([action, next_action]), training=True)
        out, next_out = out_joint.chunk(2, dim=1)  # (2, batch) Q values or (2, batch, bins) logits, each
        critic_loss = self.critic_loss(out, next_out.detach(), reward, terminated, next_log_prob)
        self.critic_optim.step(self._grads(critic_loss, self.critic_params))
        actor_metrics = self._actor_and_alpha_step(obs, noise[1]) if update_actor else None  # every policy_delay-th
        # no target critics to update
        self._record(critic_loss.detach(), self.q_values(out.detach()).mean(), actor_metrics)
        # the next env step's actions, when asked for: the actor in evaluation mode, with the statistics just left
        return self._actions_after_update(act_obs, act_noise)

    @classmethod
    def native_unsupported(cls, cfg, device, *, data_parallel=False):
        if cls is not CrossQLearner:
            return f"the native update is written for CrossQLearner, not {cls.__name__}"
        return config_unsupported(cfg, device, data_parallel=data_parallel)

    def native_update(self):
        return NativeCrossQUpdate(self)
