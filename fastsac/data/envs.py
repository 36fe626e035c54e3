"""Vectorized environments with torch tensors in and out.

``make(env_id, num_envs, seed, backend, device)`` returns a :class:`VecEnv` backed by EnvPool (the default for
every task EnvPool has) or by a gymnasium vector env (everything else, and everywhere EnvPool is not installed).
Both backends give the same contract:

* ``reset() -> obs``: float32 tensor (num_envs, obs_dim) on ``device``. Dict observations (DMC tasks, goal envs)
  are flattened into one vector, keys in sorted order, recursively, each entry flattened C-order.
* ``step(action) -> StepResult``: every row of every result is a real transition ``(obs, action) -> reward,
  final_obs``. ``next_obs`` is what to act on next; for an env whose episode ended this step it is already the
  first observation of the new episode, and ``final_obs`` holds the true last observation of the old one
  (``final_obs`` equals ``next_obs`` for the other rows). A replay buffer stores ``final_obs`` as the next
  observation and ``terminated`` (never ``truncated``) as done.
* Continuous actions are given in [-1, 1] (values outside are clipped) and rescaled to the env's bounds;
  discrete actions are integer tensors of shape (num_envs,) with values in [0, num_actions).

How EnvPool's autoreset is hidden (verified with envpool 1.2.5, see tests/test_envs.py): EnvPool resets in
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

import difflib
import functools
from typing import Any, NamedTuple

import numpy as np
import torch

from fastsac.data.spaces import ActionMap, obs_flattener

__all__ = ["StepResult", "VecEnv", "make", "envpool_available", "envpool_env_ids", "gymnasium_env_ids"]

_BACKENDS = ("auto", "envpool", "gymnasium")


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


def _unknown_id_error(env_id: str, known: list[str], where: str) -> ValueError:
    by_lower: dict[str, str] = {}
    for k in known:
        by_lower.setdefault(k.lower(), k)
    close = difflib.get_close_matches(env_id.lower(), list(by_lower), n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(repr(by_lower[c]) for c in close)}?" if close else ""
    return ValueError(f"unknown env id {env_id!r} ({where}).{hint}")


# ----------------------------------------------------------------------------------------------------------------
# Common wrapper


class VecEnv:
    """A vectorized env taking and returning torch tensors. Create it with :func:`make`.

    Attributes: ``env_id``, ``backend`` ("envpool" or "gymnasium"), ``num_envs``, ``device``, ``obs_dim``,
    ``is_discrete``, ``action_dim`` (continuous; None for discrete), ``num_actions`` (discrete; None for
    continuous), ``action_low``/``action_high`` (float64 numpy arrays of the env's own bounds; None for discrete),
    ``max_episode_steps`` (int or None), ``observation_space``/``action_space`` (single-env gymnasium spaces).
    """

    backend: str

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


_NUMPY_FLOATS_AND_INTS = (torch.float32, torch.float64, torch.int64, torch.int32)
_EMPTY_F64 = np.zeros(0, dtype=np.float64)
_EMPTY_I64 = np.zeros(0, dtype=np.int64)
_EMPTY_F64.flags.writeable = False
_EMPTY_I64.flags.writeable = False


# ----------------------------------------------------------------------------------------------------------------


def make(
    env_id: str,
    num_envs: int = 1,
    seed: int = 0,
    backend: str = "auto",
    device: str | torch.device = "cpu",
) -> VecEnv:
    """Create ``num_envs`` copies of ``env_id`` as one vectorized env with torch tensors in and out.

    Args:
        env_id: an EnvPool task id (e.g. "HalfCheetah-v5", "CheetahRun-v1", "Pendulum-v1") or a gymnasium id.
        num_envs: number of parallel envs (>= 1).
        seed: base seed; with the same backend, the same seed and actions give the same observations (the two
            backends draw different initial states).
        backend: "auto" (EnvPool when installed and it has the task, else gymnasium), "envpool" or "gymnasium".
        device: where observations, rewards and flags are returned. Actions may be on any device.
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

    from fastsac.data.envpool_backend import EnvPoolVecEnv
    from fastsac.data.gymnasium_backend import GymnasiumVecEnv

    if backend == "envpool":
        if not envpool_available():
            raise ImportError(
                "backend='envpool' was requested but envpool is not installed; pip install envpool, or use "
                "backend='gymnasium' (or 'auto')"
            )
        ids = envpool_env_ids()
        if env_id not in ids:
            raise _unknown_id_error(env_id, ids, "not an EnvPool task; backend='gymnasium' serves other ids")
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
        raise _unknown_id_error(env_id, known, where)
    return GymnasiumVecEnv(env_id, num_envs, seed, device)
