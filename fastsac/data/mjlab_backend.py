"""The mjlab backend of :func:`fastsac.data.envs.make` (``backend="mjlab"``): mjlab's manager-based tasks on MuJoCo
Warp (``Mjlab-Cartpole-Balance``, ``Mjlab-Velocity-Flat-Unitree-G1``, ...) as a
:class:`~fastsac.data.device_env.DeviceVecEnv`, torch tensors in and out on the training device.

How mjlab is used (mjlab 1.6; ``pip install "fastsac[mjlab]"``):

* The env is ``mjlab.envs.ManagerBasedRlEnv`` built from the task's registered config (``load_env_cfg``) with
  ``scene.num_envs``, ``seed`` and ``auto_reset=False``: mjlab's own autoreset returns the reset observation and
  drops the last one, so the adapter resets the ended envs itself (``reset(env_ids=...)``) after keeping their
  final observation for ``final_obs``. Finding the ended envs is one ``nonzero``, a sync on a GPU, as in mjlab's
  own step (which computes its reset ids the same way every step).
* Observations: the ``actor`` group (the policy's observation terms, concatenated by mjlab). With
  ``privileged=True`` (``--privileged-critic``; tasks with a ``critic`` group, e.g. the velocity tasks), each
  observation is the ``actor`` group followed by the ``critic`` group (mjlab's privileged terms, for an asymmetric
  actor-critic), and ``policy_obs_dim`` is the actor group's size.
* Actions: mjlab's action terms scale and offset the policy's output themselves (joint position targets around the
  default pose, motor commands), and its action space is unbounded; fastsac's policies act in [-1, 1], passed
  through unchanged.
* ``reward``, ``terminated`` and ``truncated`` are mjlab's buffers, overwritten by the next step: cloned.
* mjlab seeds Python's, NumPy's and torch's global generators when an env is created; the adapter restores them
  afterwards, so creating evaluation envs never disturbs the training run's streams. The env's own randomness
  (reset noise, events) draws from torch's global generator of its device while it steps.
* State: mjlab has no API to save an env (its managers keep commands, action history, curricula), so
  ``state_dict()`` is None: a resume starts fresh episodes and says so.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np
import torch

from fastsac.data.device_env import DeviceVecEnv, global_generators_kept
from fastsac.data.vec_env import unknown_id_error

__all__ = ["MjlabVecEnv", "make_mjlab_env"]

INSTALL = 'pip install "fastsac[mjlab]"'


def _import_mjlab():
    try:
        import mjlab  # noqa: F401  (configures Warp)
        import mjlab.tasks  # noqa: F401  (registers every task)
        import warp
    except ImportError as exc:
        raise ImportError(f"env backend 'mjlab' needs mjlab, which is not installed here ({exc}); install it with "
                          f"{INSTALL} (it pins mujoco ~=3.11, mujoco-warp and warp-lang)") from exc  # fmt: skip
    if os.environ.get("FASTSAC_WARP_VERBOSE") != "1":
        warp.config.log_level = warp.LOG_WARNING  # Warp's kernel-module log, one line per module and step
    from mjlab.envs import ManagerBasedRlEnv
    from mjlab.tasks.registry import list_tasks, load_env_cfg

    return ManagerBasedRlEnv, list_tasks, load_env_cfg


def make_mjlab_env(env_id: str, num_envs: int, seed: int, device: torch.device, *,
                   privileged: bool = False) -> MjlabVecEnv:
    env_cls, list_tasks, load_env_cfg = _import_mjlab()
    tasks = list(list_tasks())
    if env_id not in tasks:
        raise unknown_id_error(env_id, tasks, "not an mjlab task")
    cfg = load_env_cfg(env_id)
    cfg.scene.num_envs = num_envs
    cfg.seed = seed
    cfg.auto_reset = False
    with global_generators_kept(device), open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        env = env_cls(cfg=cfg, device=str(device), render_mode=None)  # prints config tables and its seed
    return MjlabVecEnv(env_id, env, seed, device, privileged=privileged)


class MjlabVecEnv(DeviceVecEnv):
    """One mjlab ``ManagerBasedRlEnv`` as a device env (the module docstring says how it is used)."""

    backend = "mjlab"
    state_note = "mjlab has no API to save an env's state (its managers keep commands, action history, curricula)"

    def __init__(self, env_id: str, env, seed: int, device: torch.device, *, privileged: bool = False):
        self._env = env
        obs_space = env.single_observation_space
        spaces = obs_space.spaces if hasattr(obs_space, "spaces") else {"actor": obs_space}
        groups = ["actor", "critic"] if privileged else ["actor"]
        problem = None
        if privileged and "critic" not in spaces:
            problem = f"has no privileged critic observations (observation groups: {', '.join(spaces)})"
        elif any(len(spaces[g].shape) != 1 for g in groups):
            problem = (f"has observations of shape {[tuple(spaces[g].shape) for g in groups]}; fastsac needs flat "
                       "vectors (image observations are not supported)")
        if problem is not None:
            env.close()
            raise ValueError(f"{env_id} {problem}")
        sizes = [int(spaces[g].shape[0]) for g in groups]
        self._groups = groups
        action_dim = int(np.prod(env.single_action_space.shape))
        super().__init__(env_id, env.num_envs, seed, device, obs_dim=sum(sizes),
                         action_low=[-1.0] * action_dim, action_high=[1.0] * action_dim,
                         max_episode_steps=int(env.max_episode_length),
                         policy_obs_dim=sizes[0] if privileged else None)  # fmt: skip

    def _observation(self, obs) -> torch.Tensor:
        """The observation fastsac trains on: the ``actor`` group, followed by the ``critic`` group when
        privileged."""
        if not (isinstance(obs, dict) or hasattr(obs, "keys")):
            return obs
        return obs["actor"] if len(self._groups) == 1 else torch.cat([obs[g] for g in self._groups], dim=-1)

    def _reset(self) -> torch.Tensor:
        obs, _ = self._env.reset()
        return self._observation(obs).to(torch.float32).clone()

    def _step(self, action: torch.Tensor):
        obs, reward, terminated, truncated, _ = self._env.step(action)
        final_obs = self._observation(obs).to(torch.float32).clone()
        reward, terminated, truncated = reward.to(torch.float32).clone(), terminated.clone(), truncated.clone()
        ended = terminated | truncated
        ids = ended.nonzero().squeeze(-1)
        if ids.numel():
            reset_obs, _ = self._env.reset(env_ids=ids)
            next_obs = torch.where(ended[:, None], self._observation(reset_obs).to(torch.float32), final_obs)
        else:
            next_obs = final_obs
        return next_obs, reward, terminated, truncated, final_obs

    def close(self) -> None:
        self._env.close()
