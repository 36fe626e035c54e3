"""Vectorized environments with torch tensors in and out.

``make(env_id, num_envs, seed, backend, device)`` returns a :class:`VecEnv` backed by EnvPool (the default for
every task EnvPool has) or by a gymnasium vector env (everything else, and everywhere EnvPool is not installed), or,
asked for by name, a device env (:class:`~fastsac.data.device_env.DeviceVecEnv`: ``torch_envs.py``,
``mjlab_backend.py``, ``mjx_backend.py``) that steps on the training device and never crosses to the host.
Both backends give the same contract, :class:`~fastsac.data.vec_env.VecEnv` and
:class:`~fastsac.data.vec_env.StepResult` (``vec_env.py``; both importable from here and from ``fastsac.data``):
every row of every step is a real transition, ``final_obs`` holding the true last observation where an episode
ended. Imports run one way: ``envs -> {envpool_backend, gymnasium_backend} -> vec_env``.

How EnvPool's autoreset is hidden (verified with envpool 1.2.5, see tests/data/test_envs.py): EnvPool resets in
NEXT_STEP mode. The step that ends an episode returns the final observation with ``terminated``/``truncated``
set; left alone, the *next* ``step`` of that env would return the reset observation with reward 0 and
``elapsed_step == 0`` and ignore its action, a fake transition. ``EnvPool.reset(env_ids)`` resets a subset of
envs in sync mode (``batch_size == num_envs``) and clears the pending autoreset: the following ``step`` of those
envs is a normal step from the returned reset observation (``elapsed_step == 1``, nonzero reward). So
:class:`~fastsac.data.envpool_backend.EnvPoolVecEnv` calls ``reset(ended_ids)`` right after any step in which episodes ended and splices the
reset observations into ``next_obs``. The reset results come back in completion order, not in the requested
order (observed: request [2, 0] -> env_id [2, 0]), so rows are placed by ``info["env_id"]``. Cost: one extra
round trip (~60-75 us measured here for Pendulum-v1 and HalfCheetah-v5, 1 of 16 envs) per step in which an
episode ends, i.e. once per 200 steps for Pendulum and once per 1000 for the MuJoCo tasks.

Gymnasium vector envs are created with ``autoreset_mode=SAME_STEP`` (gymnasium >= 1.1), which already returns
the reset observation together with ``info["final_obs"]``.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from fastsac.data.device_env import DeviceVecEnv
from fastsac.data.envpool_backend import EnvPoolVecEnv
from fastsac.data.gymnasium_backend import GymnasiumVecEnv
from fastsac.data.torch_envs import TORCH_TASKS
from fastsac.data.vec_env import StepResult, VecEnv, unknown_id_error  # the contract, re-exported here

__all__ = ["DeviceVecEnv", "StepResult", "VecEnv", "make", "envpool_available", "envpool_env_ids", "gymnasium_env_ids"]

#: the host backends ("auto" picks between EnvPool and gymnasium), then the device backends ("auto" never picks them)
_BACKENDS = ("auto", "envpool", "gymnasium", "torch", "mjlab", "mjx")


@functools.lru_cache(maxsize=None)
def envpool_available() -> bool:
    """Whether ``envpool`` imports (a broken install, e.g. missing shared libraries, counts as absent)."""
    try:
        import envpool  # noqa: F401
    except Exception:  # ImportError, OSError from its native libraries, ...
        return False
    return True


def envpool_env_ids() -> list[str]:
    """Task ids registered in EnvPool (empty when EnvPool is not installed)."""
    if not envpool_available():
        return []
    import envpool

    return list(envpool.list_all_envs())


def gymnasium_env_ids() -> list[str]:
    """Env ids registered in gymnasium."""
    import gymnasium

    return list(gymnasium.envs.registry.keys())


# ----------------------------------------------------------------------------------------------------------------


def make(
    env_id: str,
    num_envs: int = 1,
    seed: int = 0,
    backend: str = "auto",
    device: str | torch.device = "cpu",
    privileged_critic: bool = False,
) -> VecEnv | DeviceVecEnv:
    """Create ``num_envs`` copies of ``env_id`` as one vectorized env with torch tensors in and out.

    Args:
        env_id: an EnvPool task id (e.g. "HalfCheetah-v5", "CheetahRun-v1", "Pendulum-v1") or a gymnasium id.
        num_envs: number of parallel envs (>= 1).
        seed: base seed; with the same backend, the same seed and actions give the same observations (the two
            backends draw different initial states).
        backend: "auto" (EnvPool when installed and it has the task, else gymnasium), "envpool" or "gymnasium"
            (host simulators: a :class:`VecEnv`), or a device env (:class:`DeviceVecEnv`, simulating on
            ``device``): "torch" (fastsac's torch tasks, ``torch_envs.TORCH_TASKS``) or "mjlab" (mjlab's tasks,
            e.g. "Mjlab-Cartpole-Balance"; ``pip install "fastsac[mjlab]"``) or "mjx" (MuJoCo models on MJX, JAX:
            ``mjx_backend.MJX_TASKS``, e.g. "MJX-Humanoid-v0"; ``pip install "fastsac[mjx]"``).
        device: where observations, rewards and flags are returned (and where a device env simulates). Actions may
            be on any device.
        privileged_critic: a device env whose task has privileged observations for the critics (an asymmetric
            actor-critic): each observation is the policy's followed by the critics', ``env.policy_obs_dim`` the
            policy's part. A task without them, and a host env, refuse it.
    """
    if not isinstance(env_id, str):
        raise TypeError(f"env_id must be a string such as 'HalfCheetah-v5', got {type(env_id).__name__}")
    if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)):
        raise TypeError(f"num_envs must be an int, got {type(num_envs).__name__}")
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    device = torch.device(device)
    num_envs, seed = int(num_envs), int(seed)

    if backend == "torch":
        if env_id not in TORCH_TASKS:
            raise unknown_id_error(env_id, sorted(TORCH_TASKS), "not a task of backend='torch', which has "
                                    f"{', '.join(sorted(TORCH_TASKS))}")  # fmt: skip
        return TORCH_TASKS[env_id](env_id, num_envs, seed, device, privileged=privileged_critic)
    if backend == "mjlab":
        from fastsac.data.mjlab_backend import make_mjlab_env

        return make_mjlab_env(env_id, num_envs, seed, device, privileged=privileged_critic)
    if backend == "mjx":
        from fastsac.data.mjx_backend import make_mjx_env

        return make_mjx_env(env_id, num_envs, seed, device, privileged=privileged_critic)
    if privileged_critic:
        raise ValueError(f"privileged critic observations come from a device env's task (backend 'torch', 'mjlab'); "
                         f"backend {backend!r} steps {env_id!r} on the host with one observation for the policy and "
                         "the critics (leave privileged_critic off, --privileged-critic)")
    if backend == "envpool":
        if not envpool_available():
            raise ImportError(
                "backend='envpool' was requested but envpool is not installed; pip install envpool, or use "
                "backend='gymnasium' (or 'auto')"
            )
        ids = envpool_env_ids()
        if env_id not in ids:
            raise unknown_id_error(env_id, ids, "not an EnvPool task; backend='gymnasium' serves other ids")
        return EnvPoolVecEnv(env_id, num_envs, seed, device)
    if backend == "auto" and env_id in set(envpool_env_ids()):
        return EnvPoolVecEnv(env_id, num_envs, seed, device)
    gym_ids = gymnasium_env_ids()
    if env_id not in gym_ids and ":" not in env_id:  # "module:Env-v0" registers itself on import
        known = sorted(set(gym_ids) | set(envpool_env_ids() if backend == "auto" else []))
        if backend == "gymnasium":
            where = "not in the gymnasium registry"
        elif envpool_available():
            where = "in neither EnvPool nor gymnasium"
        else:
            where = "not in the gymnasium registry, and EnvPool (which has the DMC tasks) is not installed"
        raise unknown_id_error(env_id, known, where)
    return GymnasiumVecEnv(env_id, num_envs, seed, device)
