"""Continuous SAC's update as one C++ call on a CPU (``csrc/sac_update_cpu.cpp``): the native update.

It makes the same matrix products as the eager and compiled updates (ATen's, in the layouts of
``EnsembleQ._forward_mlp``); everything else is a few vectorized loops over the learner's own tensors, with no
Python in between and nothing to compile:

- bias and ReLU in place, the ReLU's backward read from its output;
- the 1-output layer's backward as an outer product;
- ForeachAdam's arithmetic in one pass per tensor;
- the Polyak lerp.

It is ``SACLearner._update`` written out for the default networks, in the same step order. It writes the same
tensors in place: parameters, optimizer moments and step factors, the metric sums. It draws no random numbers:
the learner passes the noise it drew. The C++ side checks every tensor it is given (device, dtype, shape,
contiguity) before it writes any.

It runs where :func:`config_unsupported` is None and the built learner fits (:class:`NativeSACUpdate` checks):

- on a CPU, with the fused ops on the C++ extension (backend ``cpp``);
- the default networks (an MLP actor with mean and log-std heads, MLP critic members);
- float32; no observation normalization, no weight decay, no data-parallel ``grad_reducer``.

``SACLearner.native_unsupported`` and ``SACLearner.native_update`` hand it to the update runner
(``fastsac.agents.runners``), which checks its first call against the eager update and falls back loudly.
"""

from __future__ import annotations

from typing import Any

import torch

from fastsac.agents import native_call
from fastsac.agents.networks import Actor, ContinuousTwinQ

__all__ = ["NativeSACUpdate", "config_unsupported"]

ENTRY = "sac_update_cpu"  #: the extension's function


def config_unsupported(cfg: Any, device: torch.device, *, data_parallel: bool = False) -> str | None:
    """Why an SAC learner built from ``cfg`` on ``device`` would not run the native update (a sentence), or None
    when it would, as far as the config tells. ``data_parallel``: the learner will get a ``grad_reducer``."""
    return native_call.config_unsupported(cfg, device, entry=ENTRY, critic="plain MLPs", data_parallel=data_parallel)


def _learner_unsupported(learner: Any) -> str | None:
    """Why the built ``learner`` does not fit the native update (its networks, dtypes, optimizers), or None."""
    if type(learner.actor) is not Actor or type(learner.critic) is not ContinuousTwinQ:
        return "the networks are not the default actor and twin critics"
    if learner.critic._layers is None or learner.critic._buffer_names:
        return "the critic members are not plain MLPs"
    if learner.policy_obs_dim is not None:
        return "the critics see privileged observations the policy does not (asymmetric critics)"
    tensors = [*learner.actor_params, *learner.critic_params, *learner.target_params, learner.entropy.log_alpha]
    if any(t.dtype != torch.float32 or not t.is_contiguous() for t in tensors):
        return "a network parameter is not a contiguous float32 tensor"
    return native_call.optimizers_unsupported(learner)


class NativeSACUpdate:
    """``SACLearner._update``'s signature and effect, as one call of the C++ extension's ``sac_update_cpu``."""

    source = "csrc/sac_update_cpu.cpp"

    def __init__(self, learner: Any):
        reason = config_unsupported(learner.cfg, learner.device,
                                    data_parallel=learner.grad_reducer is not None) or _learner_unsupported(learner)
        if reason is not None:
            raise ValueError(f"native SAC update: not for this learner: {reason}")
        self._learner = learner
        self._fn = native_call.entry_point(ENTRY)

    def __call__(self, obs, action, reward, next_obs, terminated, noise, update_actor: bool,
                 act_obs=None, act_noise=None):
        lr = self._learner
        batch, act_obs, act_noise = native_call.batch_args("native SAC update", lr, obs, action, reward, next_obs,
                                                           terminated, noise, act_obs, act_noise)
        adam = native_call.adam_args
        return self._fn(lr.actor_params, lr.critic_params, lr.target_params, lr.entropy.log_alpha,
                        lr.entropy.target_tensor, lr._metric_sums, adam(lr.actor_optim), adam(lr.critic_optim),
                        adam(lr.alpha_optim), batch, bool(update_actor), float(lr.cfg.gamma), float(lr.cfg.tau),
                        float(lr.log_std_bounds[0]), float(lr.log_std_bounds[1]), act_obs, act_noise)
