"""Discrete SAC's update as one C++ call on a CPU (``csrc/discrete_sac_update_cpu.cpp``): the native update.

``DiscreteSACLearner._update`` written out for its networks (an MLP actor with one logit per action, MLP critic
members with one value per action), in the same step order: the target as an exact expectation over the actions,
the critics' squared error at the taken actions and their Adam step, every ``policy_delay``-th update the actor's and
log_alpha's steps through the updated critics, the Polyak lerp of the target critics, the metric sums. It makes the
same matrix products as the eager and compiled updates (ATen's, feature-major critics as
``EnsembleQ._forward_mlp``); the policy's expectations come from the fused categorical op's own C++ kernels; bias and
ReLU, the loss, ForeachAdam's arithmetic and the lerp are a few vectorized loops, with no Python in between and
nothing to compile (``csrc/mlp_cpu.cpp`` holds the MLP pieces SAC's native update shares).

It writes the same tensors in place as the eager update: parameters, optimizer moments and step factors, the metric
sums. It draws no random numbers (discrete SAC's update draws none). The C++ side checks every tensor it is given
(device, dtype, shape, contiguity) and every action index before it writes any.

It runs where :func:`config_unsupported` is None and the built learner fits (:class:`NativeDiscreteSACUpdate`
checks): on a CPU, with the fused ops on the C++ extension (backend ``cpp``), the default networks, float32, no
observation normalization, no reward normalization, no weight decay, no data-parallel ``grad_reducer``.
``DiscreteSACLearner.native_unsupported`` and ``DiscreteSACLearner.native_update`` hand it to the update runner
(``fastsac.agents.runners``), which checks its first call against the eager update and falls back loudly.
"""

from __future__ import annotations

from typing import Any

import torch

from fastsac.agents import native_call
from fastsac.agents.networks import DiscreteActor, DiscreteTwinQ

__all__ = ["NativeDiscreteSACUpdate", "config_unsupported"]

ENTRY = "discrete_sac_update_cpu"  #: the extension's function


def config_unsupported(cfg: Any, device: torch.device, *, data_parallel: bool = False) -> str | None:
    """Why a discrete SAC learner built from ``cfg`` on ``device`` would not run the native update (a sentence), or
    None when it would, as far as the config tells. ``data_parallel``: the learner will get a ``grad_reducer``."""
    return native_call.config_unsupported(cfg, device, entry=ENTRY, critic="plain MLPs", data_parallel=data_parallel)


def _learner_unsupported(learner: Any) -> str | None:
    """Why the built ``learner`` does not fit the native update (its networks, dtypes, optimizers), or None."""
    if type(learner.actor) is not DiscreteActor or type(learner.critic) is not DiscreteTwinQ:
        return "the networks are not the default discrete actor and twin critics"
    if learner.critic._layers is None or learner.critic._buffer_names:
        return "the critic members are not plain MLPs"
    tensors = [*learner.actor_params, *learner.critic_params, *learner.target_params, learner.entropy.log_alpha]
    if any(t.dtype != torch.float32 or not t.is_contiguous() for t in tensors):
        return "a network parameter is not a contiguous float32 tensor"
    return native_call.optimizers_unsupported(learner)


class NativeDiscreteSACUpdate:
    """``DiscreteSACLearner._update``'s signature and effect, as one call of the extension's
    ``discrete_sac_update_cpu``."""

    source = "csrc/discrete_sac_update_cpu.cpp"

    def __init__(self, learner: Any):
        reason = config_unsupported(learner.cfg, learner.device,
                                    data_parallel=learner.grad_reducer is not None) or _learner_unsupported(learner)
        if reason is not None:
            raise ValueError(f"native discrete SAC update: not for this learner: {reason}")
        self._learner = learner
        self._fn = native_call.entry_point(ENTRY)

    def __call__(self, obs, action, reward, next_obs, terminated, noise, update_actor: bool):
        lr = self._learner
        batch, _, _ = native_call.batch_args("native discrete SAC update", lr, obs, action, reward, next_obs,
                                             terminated, noise)
        adam = native_call.adam_args
        self._fn(lr.actor_params, lr.critic_params, lr.target_params, lr.entropy.log_alpha, lr.entropy.target_tensor,
                 lr._metric_sums, adam(lr.actor_optim), adam(lr.critic_optim), adam(lr.alpha_optim), batch[:5],
                 bool(update_actor), float(lr.cfg.gamma), float(lr.cfg.tau))
