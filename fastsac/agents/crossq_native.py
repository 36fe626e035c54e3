"""CrossQ's update as one C++ call on a CPU (``csrc/crossq_update_cpu.cpp``): the native update.

``CrossQLearner._update`` written out for the networks CrossQ builds with ``critic_network="mlp"`` (batch renorm
on the input and after every ``Linear -> ReLU``, in the actor and in each stacked critic member), in the same step
order: the next action from the actor in evaluation mode; one critic pass in training mode over the joint batch,
the target from its second half, the squared error of its first, the gradient through the batch statistics, Adam;
every ``policy_delay``-th update the actor's and log_alpha's steps through the updated critics in evaluation mode;
the metric sums; the next actions. It makes the same matrix products as the eager and compiled updates (ATen's,
feature-major as ``EnsembleQ._forward_mlp``); batch renorm (forward, backward, running statistics and step
counters), bias and ReLU, the one-output head's backward and ForeachAdam's arithmetic are a few vectorized loops,
with no Python in between and nothing to compile.

It writes the same tensors in place as the eager update: parameters, batch-renorm running statistics and step
counters, optimizer moments and step factors, the metric sums. It draws no random numbers: the learner passes the
noise it drew. The C++ side checks every tensor it is given (device, dtype, shape, contiguity) before it writes any.

It runs where :func:`config_unsupported` is None and the built learner fits (:class:`NativeCrossQUpdate` checks):
on a CPU, with the fused ops on the C++ extension (backend ``cpp``), ``critic_network="mlp"``, float32, no
observation normalization, no weight decay, no data-parallel ``grad_reducer``. ``CrossQLearner.native_unsupported``
and ``CrossQLearner.native_update`` hand it to the update runner (``fastsac.agents.runners``), which checks its
first call against the eager update and falls back loudly (native -> compile -> eager).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fastsac.agents import native_call
from fastsac.agents.networks import ContinuousTwinQ
from fastsac.agents.normalization import BatchRenorm
from fastsac.agents.normed_networks import BatchRenormActor, Trunk

__all__ = ["NativeCrossQUpdate", "config_unsupported"]

ENTRY = "crossq_update_cpu"  #: the extension's function


def config_unsupported(cfg: Any, device: torch.device, *, data_parallel: bool = False) -> str | None:
    """Why a CrossQ learner built from ``cfg`` on ``device`` would not run the native update (a sentence), or None
    when it would, as far as the config tells. ``data_parallel``: the learner will get a ``grad_reducer``."""
    return native_call.config_unsupported(cfg, device, entry=ENTRY, critic="batch-renormalized MLPs",
                                          data_parallel=data_parallel)


def _brn_mlp(layers: list[nn.Module]) -> bool:
    """``[BatchRenorm, (Linear, ReLU, BatchRenorm)...]``: the trunk the native update is written for."""
    if len(layers) < 4 or (len(layers) - 1) % 3 or not isinstance(layers[0], BatchRenorm):
        return False
    kinds = (nn.Linear, nn.ReLU, BatchRenorm)
    return all(type(layer) is kinds[k % 3] for k, layer in enumerate(layers[1:]))


def _brn_layers(module: nn.Module) -> list[BatchRenorm]:
    return [m for m in module.modules() if isinstance(m, BatchRenorm)]


def _learner_unsupported(learner: Any) -> str | None:
    """Why the built ``learner`` does not fit the native update (its networks, dtypes, optimizers), or None."""
    actor, critic = learner.actor, learner.critic
    if type(actor) is not BatchRenormActor or type(critic) is not ContinuousTwinQ:
        return "the networks are not CrossQ's batch-renorm actor and twin critics"
    template = getattr(critic, "_template", None)
    if (type(template) is not Trunk or not _brn_mlp(list(template.layers)[:-1])
            or not _brn_mlp(list(actor.trunk.layers))):
        return "the networks are not batch-renormalized MLPs (batch renorm on the input and after each Linear-ReLU)"
    if type(template.layers[-1]) is not nn.Linear or template.layers[-1].out_features != 1:
        return "the critic members do not end in a one-output Linear"
    brn = [(b.momentum, b.eps, b.r_max, b.d_max, b.warmup_steps)
           for b in (*_brn_layers(actor), *_brn_layers(template))]
    if len(set(brn)) != 1:
        return "the batch-renorm layers do not all have the same constants"
    tensors = [*learner.actor_params, *learner.critic_params, learner.entropy.log_alpha,
               *(b for b in (*actor.buffers(), *critic.buffers()) if b.dtype != torch.int64)]
    if any(t.dtype != torch.float32 or not t.is_contiguous() for t in tensors):
        return "a network parameter or running statistic is not a contiguous float32 tensor"
    return native_call.optimizers_unsupported(learner)


class NativeCrossQUpdate:
    """``CrossQLearner._update``'s signature and effect, as one call of the C++ extension's ``crossq_update_cpu``."""

    source = "csrc/crossq_update_cpu.cpp"

    def __init__(self, learner: Any):
        reason = config_unsupported(learner.cfg, learner.device,
                                    data_parallel=learner.grad_reducer is not None) or _learner_unsupported(learner)
        if reason is not None:
            raise ValueError(f"native CrossQ update: not for this learner: {reason}")
        self._learner = learner
        self._fn = native_call.entry_point(ENTRY)
        # Parameters in the order the C++ side reads them (the modules' registration order: the input's batch renorm,
        # then Linear and batch renorm per hidden layer, then the heads); statistics as (mean, var, steps) per layer.
        self._actor_stats = list(learner.actor.buffers())
        self._critic_stats = list(learner.critic.buffers())
        b = _brn_layers(learner.actor)[0]
        self._brn = [b.momentum, b.eps, b.r_max, b.d_max, float(b.warmup_steps)]

    def __call__(self, obs, action, reward, next_obs, terminated, noise, update_actor: bool,
                 act_obs=None, act_noise=None):
        lr = self._learner
        batch, act_obs, act_noise = native_call.batch_args("native CrossQ update", lr, obs, action, reward, next_obs,
                                                           terminated, noise, act_obs, act_noise)
        adam = native_call.adam_args
        return self._fn(lr.actor_params, self._actor_stats, lr.critic_params, self._critic_stats, lr.entropy.log_alpha,
                        lr.entropy.target_tensor, lr._metric_sums, adam(lr.actor_optim), adam(lr.critic_optim),
                        adam(lr.alpha_optim), batch, bool(update_actor), float(lr.cfg.gamma),
                        float(lr.log_std_bounds[0]), float(lr.log_std_bounds[1]), self._brn, act_obs, act_noise)
