"""What the native updates (``sac_native.py``, ``crossq_native.py``) share: where they apply as far as a config
tells, and how a learner's tensors are handed to the C++ call.

Each native update is one function of the C++ extension (``fastsac._C``) that writes the learner's tensors in
place; the C++ side checks every tensor it is given before it writes any. This module holds the Python side they
have in common: the extension's entry point, the config-level conditions, the optimizer state as the C++ side reads
it, and the batch as contiguous float32 CPU tensors.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import torch

from fastsac import ops
from fastsac.agents.optim import ForeachAdam
from fastsac.ops import extension

__all__ = ["adam_args", "batch_args", "config_unsupported", "entry_point", "optimizers_unsupported"]


def entry_point(name: str) -> Any | None:
    """The loaded C++ extension's function ``name`` (on CPU tensors), or None where it is not built."""
    module: ModuleType | None = extension.module_for("cpu")
    return getattr(module, name, None) if module is not None else None


def config_unsupported(cfg: Any, device: torch.device, *, entry: str, critic: str,
                       data_parallel: bool = False) -> str | None:
    """Why a learner built from ``cfg`` on ``device`` would not run the native update ``entry`` (a sentence), or
    None when it would, as far as the config tells. ``critic``: the critic members the update is written for (its
    ``critic_network="mlp"``, in words); ``data_parallel``: the learner will get a ``grad_reducer``."""
    if device.type != "cpu":
        return f"it runs on a CPU, the learner is on {device}"
    backend = ops.resolve_backend(torch.empty(1, device=device), backend=cfg.backend)
    if backend != "cpp":
        return f"the fused ops run on the {backend!r} backend, not the C++ extension ('cpp')"
    if entry_point(entry) is None:
        return f"the C++ extension with {entry} is not built"
    if cfg.uses_obs_norm:
        return "observation normalization is on"
    if cfg.critic != "scalar":
        return f"the critics are categorical (critic={cfg.critic!r}); it is written for scalar critics"
    if cfg.reward_norm:
        return "reward normalization is on (reward_norm)"
    if cfg.critic_network != "mlp":
        return f"the critic members are not {critic} (critic_network={cfg.critic_network!r})"
    if cfg.activation != "relu" or cfg.actor_network != "mlp":
        return (f"it is written for ReLU MLP networks (actor_network={cfg.actor_network!r}, "
                f"activation={cfg.activation!r})")
    if data_parallel:
        return "data-parallel training averages the gradients in a grad_reducer hook, which it has no place for"
    return None


def optimizers_unsupported(learner: Any) -> str | None:
    """Why the built ``learner``'s optimizers do not fit a native update (which has no weight decay), or None."""
    optimizers = [o for o in (learner.actor_optim, learner.critic_optim, learner.alpha_optim) if o is not None]
    if any(o.weight_decay != 0.0 for o in optimizers):
        return "an optimizer has weight decay"
    return None


def adam_args(opt: ForeachAdam | None):
    """``opt``'s state as the C++ side reads it (``AdamRef``), or None without an optimizer (fixed alpha)."""
    if opt is None:
        return None
    return (opt.exp_avg, opt.exp_avg_sq,
            [opt.step_count, opt.beta_pows, opt._betas, opt.step_size, opt.bias_correction2_sqrt],
            [opt.lr, opt.betas[0], opt.betas[1], opt.eps])


def _cpu_float(what: str, name: str, t: torch.Tensor) -> torch.Tensor:
    """``t`` as a contiguous float32 tensor, or a ValueError when it is not on the CPU (its shape is checked by
    ``Learner.update`` and again by the C++ call)."""
    if t.device.type != "cpu":
        raise ValueError(f"{what}: {name} must be on the CPU, with the learner, got {t.device}")
    return t.to(torch.float32).contiguous()


def batch_args(what: str, learner: Any, obs, action, reward, next_obs, terminated, noise, act_obs=None,
               act_noise=None) -> tuple[list[torch.Tensor], torch.Tensor | None, torch.Tensor | None]:
    """The update's inputs as the C++ side reads them: ``([obs, action, reward, next_obs, terminated, noise],
    act_obs, act_noise)``, contiguous float32 CPU tensors. ``what`` names the update in errors. A learner that has a
    data-parallel ``grad_reducer`` (set behind the learner's back: its setter refuses one) is an error: the native
    update has no hook for it."""
    if learner.grad_reducer is not None:
        raise RuntimeError(f"{what}: the learner has a data-parallel grad_reducer, which this update has no hook for")
    named = (("obs", obs), ("action", action), ("reward", reward.reshape(-1)), ("next_obs", next_obs),
             ("terminated", terminated.reshape(-1)), ("noise", noise))
    batch = [_cpu_float(what, name, t) for name, t in named]
    if act_obs is not None:
        act_obs, act_noise = _cpu_float(what, "act_obs", act_obs), _cpu_float(what, "act_noise", act_noise)
    return batch, act_obs, act_noise
