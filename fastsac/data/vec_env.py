"""The VecEnv contract that both backends fill in: :class:`VecEnv` (torch tensors in and out, episode bookkeeping)
and :class:`StepResult` (one vectorized step). Create one with :func:`fastsac.data.envs.make`.

* ``reset() -> obs``: float32 tensor (num_envs, obs_dim) on ``device``. Dict observations (DMC tasks, goal envs)
  are flattened into one vector, keys in sorted order, recursively, each entry flattened C-order.
* ``step(action) -> StepResult``: every row of every result is a real transition ``(obs, action) -> reward,
  final_obs``. ``next_obs`` is what to act on next; for an env whose episode ended this step it is already the
  first observation of the new episode, and ``final_obs`` holds the true last observation of the old one
  (``final_obs`` equals ``next_obs`` for the other rows). A replay buffer stores ``final_obs`` as the next
  observation and ``terminated`` (never ``truncated``) as done.
* Continuous actions are given in [-1, 1] (values outside are clipped) and rescaled to the env's bounds;
  discrete actions are integer tensors of shape (num_envs,) with values in [0, num_actions).

A backend (``envpool_backend.py``, ``gymnasium_backend.py``) subclasses :class:`VecEnv` and implements
``_reset_np``, ``_step_np`` and ``close``. This module imports neither backend nor ``envs.py``: imports run
``envs -> backends -> vec_env``.
"""

from __future__ import annotations

import difflib
from typing import Any, NamedTuple

import numpy as np
import torch

from fastsac.data.spaces import ActionMap, obs_flattener

__all__ = ["StepResult", "VecEnv", "unknown_id_error"]


class StepResult(NamedTuple):
    """One vectorized step; every row is a valid transition.

    Tensors are on the env's ``device``. ``episode_returns``/``episode_lengths`` are host-side numpy arrays
    (float64 / int64) with one entry per episode that ended this step, in env order; they are empty on most
    steps and cost no device synchronisation to log.
    """

    next_obs: torch.Tensor  #: (num_envs, obs_dim) float32: the observation to act on next
    reward: torch.Tensor  #: (num_envs,) float32
    terminated: torch.Tensor  #: (num_envs,) bool: true termination (no bootstrapping)
    truncated: torch.Tensor  #: (num_envs,) bool: time limit (bootstrap from final_obs)
    final_obs: torch.Tensor  #: (num_envs, obs_dim) float32: real last obs where an episode ended, else next_obs
    #: (the very same tensor object as next_obs on steps where no episode ended)
    episode_returns: np.ndarray  #: (k,) float64: undiscounted returns of the k episodes that ended
    episode_lengths: np.ndarray  #: (k,) int64: their lengths in steps



class VecEnv:
    """A vectorized env taking and returning torch tensors. Create it with :func:`make`.

    Attributes: ``env_id``, ``backend`` ("envpool" or "gymnasium"), ``num_envs``, ``device``, ``obs_dim``,
    ``is_discrete``, ``action_dim`` (continuous; None for discrete), ``num_actions`` (discrete; None for
    continuous), ``action_low``/``action_high`` (float64 numpy arrays of the env's own bounds; None for discrete),
    ``max_episode_steps`` (int or None), ``observation_space``/``action_space`` (single-env gymnasium spaces).
    """

    backend: str
    device_native = False  #: steps on the host (device envs: ``device_env.py``)
    #: host envs have no privileged critic observations: the policy and the critics see the whole observation
    policy_obs_dim = None

    def __init__(self, env_id: str, num_envs: int, seed: int, device: torch.device, obs_space: Any, act_space: Any):
        self.env_id = env_id
        self.num_envs = num_envs
        self.seed = seed
        self.device = device
        self.observation_space = obs_space
        self.action_space = act_space
        self.obs_dim, self._flatten = obs_flattener(obs_space)
        self._actions = ActionMap(act_space, env_id)
        self.is_discrete = self._actions.is_discrete
        self.num_actions: int | None = self._actions.num_actions
        self.action_dim: int | None = self._actions.action_dim
        self.action_low, self.action_high = self._actions.low, self._actions.high
        self._ep_return = np.zeros(num_envs, dtype=np.float64)
        self._ep_length = np.zeros(num_envs, dtype=np.int64)
        self._needs_reset = True

    # backend hooks -----------------------------------------------------------------------------------------
    def _reset_np(self) -> np.ndarray:  # (N, obs_dim) float32
        raise NotImplementedError

    def _step_np(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Return (next_obs, reward, terminated, truncated, final_obs) as numpy, env order."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # public API --------------------------------------------------------------------------------------------
    def reset(self) -> torch.Tensor:
        """Reset every env; returns float32 observations (num_envs, obs_dim) on ``device``.

        Seeds are fixed by :func:`make`; a second ``reset()`` continues the seeded random stream.
        """
        obs = self._reset_np()
        self._ep_return[:] = 0.0
        self._ep_length[:] = 0
        self._needs_reset = False
        return self._to_device(obs)

    def _to_device(self, a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(a)
        if self.device.type == "cuda":
            # A copy from pageable memory makes the host wait for all queued GPU work (the learner's update);
            # staging in pinned memory keeps it asynchronous, and the caching host allocator keeps the pinned
            # block alive until the copy has run.
            return t.pin_memory().to(self.device, non_blocking=True)
        return t if self.device.type == "cpu" else t.to(self.device)

    def step(self, action: torch.Tensor | np.ndarray) -> StepResult:
        """Step every env once. See :class:`StepResult` and the module docstring for the semantics."""
        if self._needs_reset:
            raise RuntimeError(f"{self.env_id}: call reset() before step()")
        act = self._env_action(action)
        next_obs, reward, terminated, truncated, final_obs = self._step_np(act)
        self._ep_return += reward
        self._ep_length += 1
        ended = terminated | truncated
        if ended.any():
            returns = self._ep_return[ended].copy()
            lengths = self._ep_length[ended].copy()
            self._ep_return[ended] = 0.0
            self._ep_length[ended] = 0
        else:
            returns, lengths = _EMPTY_F64, _EMPTY_I64
        to = self._to_device
        next_t = to(next_obs)
        final_t = next_t if final_obs is next_obs else to(final_obs)
        return StepResult(
            next_obs=next_t,
            reward=to(reward.astype(np.float32)),
            terminated=to(terminated),
            truncated=to(truncated),
            final_obs=final_t,
            episode_returns=returns,
            episode_lengths=lengths,
        )

    def _env_action(self, action: torch.Tensor | np.ndarray) -> np.ndarray:
        if isinstance(action, torch.Tensor):
            action = action.detach()
            if action.device.type != "cpu" or action.dtype not in _NUMPY_FLOATS_AND_INTS:
                # float64 on the host (also covers bfloat16, which numpy lacks)
                action = action.to(device="cpu", dtype=torch.float64 if action.is_floating_point() else None)
            a = action.numpy()
        elif isinstance(action, np.ndarray):
            a = action
        else:
            raise TypeError(f"action must be a torch.Tensor or numpy array, got {type(action).__name__}")
        return self._actions(a, self.num_envs)

    def __enter__(self) -> "VecEnv":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        act = f"num_actions={self.num_actions}" if self.is_discrete else f"action_dim={self.action_dim}"
        return (
            f"{type(self).__name__}(env_id={self.env_id!r}, backend={self.backend!r}, num_envs={self.num_envs}, "
            f"obs_dim={self.obs_dim}, {act}, device={self.device})"
        )


def unknown_id_error(env_id: str, known: list[str], where: str) -> ValueError:
    """A ValueError for an env id that ``known`` lacks (``where``: which registry), naming close matches."""
    by_lower: dict[str, str] = {}
    for k in known:
        by_lower.setdefault(k.lower(), k)
    close = difflib.get_close_matches(env_id.lower(), list(by_lower), n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(repr(by_lower[c]) for c in close)}?" if close else ""
    return ValueError(f"unknown env id {env_id!r} ({where}).{hint}")


_NUMPY_FLOATS_AND_INTS = (torch.float32, torch.float64, torch.int64, torch.int32)
_EMPTY_F64 = np.zeros(0, dtype=np.float64)
_EMPTY_I64 = np.zeros(0, dtype=np.int64)
_EMPTY_F64.flags.writeable = False
_EMPTY_I64.flags.writeable = False
