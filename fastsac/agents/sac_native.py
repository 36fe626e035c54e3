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

from fastsac import ops
from fastsac.agents.networks import Actor, ContinuousTwinQ
from fastsac.agents.optim import ForeachAdam
from fastsac.ops import extension

__all__ = ["NativeSACUpdate", "config_unsupported"]


def _extension():
    """The loaded C++ extension module with the native update, or None."""
    module = extension.module_for("cpu")
    return module if module is not None and hasattr(module, "sac_update_cpu") else None


def config_unsupported(cfg: Any, device: torch.device, *, data_parallel: bool = False) -> str | None:
    """Why an SAC learner built from ``cfg`` on ``device`` would not run the native update (a sentence), or None
    when it would, as far as the config tells. ``data_parallel``: the learner will get a ``grad_reducer``."""
    if device.type != "cpu":
        return f"it runs on a CPU, the learner is on {device}"
    backend = ops.resolve_backend(torch.empty(1, device=device), backend=cfg.backend)
    if backend != "cpp":
        return f"the fused ops run on the {backend!r} backend, not the C++ extension ('cpp')"
    if _extension() is None:
        return "the C++ extension with sac_update_cpu is not built"
    if cfg.uses_obs_norm:
        return "observation normalization is on"
    if cfg.critic_network != "mlp":
        return f"the critic members are not plain MLPs (critic_network={cfg.critic_network!r})"
    if data_parallel:
        return "data-parallel training averages the gradients in a grad_reducer hook, which it has no place for"
    return None


def _learner_unsupported(learner: Any) -> str | None:
    """Why the built ``learner`` does not fit the native update (its networks, dtypes, optimizers), or None."""
    if type(learner.actor) is not Actor or type(learner.critic) is not ContinuousTwinQ:
        return "the networks are not the default actor and twin critics"
    if learner.critic._layers is None or learner.critic._buffer_names:
        return "the critic members are not plain MLPs"
    tensors = [*learner.actor_params, *learner.critic_params, *learner.target_params, learner.entropy.log_alpha]
    if any(t.dtype != torch.float32 or not t.is_contiguous() for t in tensors):
        return "a network parameter is not a contiguous float32 tensor"
    optimizers = [o for o in (learner.actor_optim, learner.critic_optim, learner.alpha_optim) if o is not None]
    if any(o.weight_decay != 0.0 for o in optimizers):
        return "an optimizer has weight decay"
    return None


def _adam(opt: ForeachAdam):
    return (opt.exp_avg, opt.exp_avg_sq,
            [opt.step_count, opt.beta_pows, opt._betas, opt.step_size, opt.bias_correction2_sqrt],
            [opt.lr, opt.betas[0], opt.betas[1], opt.eps])


def _cpu_float(name: str, t: torch.Tensor) -> torch.Tensor:
    """``t`` as a contiguous float32 tensor, or a ValueError when it is not on the CPU (its shape is checked by
    ``Learner.update`` and again by the C++ call)."""
    if t.device.type != "cpu":
        raise ValueError(f"native SAC update: {name} must be on the CPU, with the learner, got {t.device}")
    return t.to(torch.float32).contiguous()


class NativeSACUpdate:
    """``SACLearner._update``'s signature and effect, as one call of the C++ extension's ``sac_update_cpu``."""

    source = "csrc/sac_update_cpu.cpp"

    def __init__(self, learner: Any):
        reason = config_unsupported(learner.cfg, learner.device,
                                    data_parallel=learner.grad_reducer is not None) or _learner_unsupported(learner)
        if reason is not None:
            raise ValueError(f"native SAC update: not for this learner: {reason}")
        self._learner = learner
        self._fn = _extension().sac_update_cpu

    def __call__(self, obs, action, reward, next_obs, terminated, noise, update_actor: bool,
                 act_obs=None, act_noise=None):
        lr = self._learner
        if lr.grad_reducer is not None:
            raise RuntimeError("native SAC update: the learner has a data-parallel grad_reducer, which this update "
                               "has no hook for")
        named = (("obs", obs), ("action", action), ("reward", reward.reshape(-1)), ("next_obs", next_obs),
                 ("terminated", terminated.reshape(-1)), ("noise", noise))
        batch = [_cpu_float(name, t) for name, t in named]
        if act_obs is not None:
            act_obs, act_noise = _cpu_float("act_obs", act_obs), _cpu_float("act_noise", act_noise)
        entropy = lr.entropy
        return self._fn(lr.actor_params, lr.critic_params, lr.target_params, entropy.log_alpha,
                        entropy.target_tensor, lr._metric_sums, _adam(lr.actor_optim), _adam(lr.critic_optim),
                        None if lr.alpha_optim is None else _adam(lr.alpha_optim), batch, bool(update_actor),
                        float(lr.cfg.gamma), float(lr.cfg.tau), float(lr.log_std_bounds[0]),
                        float(lr.log_std_bounds[1]), act_obs, act_noise)
