"""The device env contract: a vectorized env that lives on one torch device and never crosses to the host while it
steps. GPU simulators (mjlab on MuJoCo Warp, ``torch_envs.py``'s own torch tasks) meet it; the session, replay
buffer and learner serve it as they serve the host envs of ``vec_env.py``.

A :class:`DeviceVecEnv` has the public attributes of :class:`~fastsac.data.vec_env.VecEnv` (``env_id``,
``backend``, ``num_envs``, ``device``, ``obs_dim``, ``is_discrete``, ``action_dim``, ``action_low``/``action_high``,
``max_episode_steps``) and ``device_native = True`` (host envs have ``False``). Its calls:

* ``reset() -> obs``: float32 (num_envs, obs_dim) on ``device``.
* ``step(action) -> StepResult``: ``action`` a float tensor (num_envs, action_dim) in [-1, 1] (outside values are
  clipped; another device is moved over), rescaled on the device to the env's bounds. The result's tensors are on
  ``device`` with the meaning :class:`~fastsac.data.vec_env.StepResult` gives them: ``next_obs`` the observation
  to act on (reset observations where an episode ended), ``final_obs`` the real last observation where it ended,
  ``terminated``/``truncated`` the two ways an episode ends. ``final_obs`` is always its own tensor: knowing that
  no episode ended would take a sync. ``episode_returns``/``episode_lengths`` are always empty: the episodes that
  end are tallied on the device (:class:`EpisodeTally`) and read with :meth:`DeviceVecEnv.drain_episodes`, which is
  the one call that synchronizes (the session makes it where it writes a log row).
* ``policy_obs_dim``: None, or with privileged critic observations (``make(..., privileged_critic=True)``, an
  asymmetric actor-critic): each observation is the policy's observation followed by the critics', and the policy
  reads its first ``policy_obs_dim`` features while the critics read all ``obs_dim``.
* ``state_dict()`` / ``load_state_dict(state)``: the whole env (simulator state, its random stream, the episode
  tally) where the simulator exposes it; ``state_dict()`` returns None where it does not, and ``state_note`` says
  why. A checkpoint keeps the state, and a resume restores it exactly; without it a resume starts fresh episodes
  and says so (``resume_exact: false`` in summary.json).

A simulator subclasses :class:`DeviceVecEnv` and implements ``_reset``, ``_step`` (actions already in the env's
bounds), ``close`` and, where it can, ``_sim_state``/``_load_sim_state``. docs/envs.md describes the protocol.
"""

from __future__ import annotations

import contextlib
import random
from typing import Any, Iterator, NamedTuple

import numpy as np
import torch

from fastsac.data.vec_env import _EMPTY_F64, _EMPTY_I64, StepResult

__all__ = ["DeviceVecEnv", "EpisodeTally", "EpisodeWindow", "global_generators_kept", "load_tensor"]

RECENT = 20  #: how many of the last episode returns the tally keeps (the session's recent-returns window)


@contextlib.contextmanager
def global_generators_kept(device: torch.device) -> Iterator[None]:
    """Python's, NumPy's and torch's global generators (CPU, and ``device``'s where it is a GPU) as they were before:
    for simulators that seed them on creation (mjlab) or draw from them as they step (mjlab's reset noise), around
    what must not disturb a training run's streams (creating envs, evaluating)."""
    device = torch.device(device)
    py, npy, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    gpu = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)
        torch.set_rng_state(cpu)
        if gpu is not None:
            torch.cuda.set_rng_state(gpu, device)


def load_tensor(dst: torch.Tensor, src: Any, name: str) -> None:
    """Copy a saved tensor into ``dst`` in place; a value of another shape or dtype is a ValueError (``copy_`` would
    broadcast it silently)."""
    if not isinstance(src, torch.Tensor) or src.shape != dst.shape or src.dtype != dst.dtype:
        got = f"shape {tuple(src.shape)}, {src.dtype}" if isinstance(src, torch.Tensor) else type(src).__name__
        raise ValueError(f"{name} must be a tensor of shape {tuple(dst.shape)}, {dst.dtype}; got {got}")
    dst.copy_(src)


class EpisodeWindow(NamedTuple):
    """The episodes that ended since the last :meth:`EpisodeTally.drain`."""

    count: int
    return_sum: float
    length_sum: int
    recent: list[float]  #: the returns of the last ``min(count, RECENT)`` of them, oldest first


class EpisodeTally:
    """Running returns and lengths of ``num_envs`` envs, and the sums over the episodes that ended, all on the
    device: :meth:`update` launches a few small kernels and never synchronizes."""

    def __init__(self, num_envs: int, device: torch.device):
        f64 = torch.float64
        self.ep_return = torch.zeros(num_envs, dtype=f64, device=device)
        self.ep_length = torch.zeros(num_envs, dtype=torch.int64, device=device)
        self.sums = torch.zeros(3, dtype=f64, device=device)  # episodes ended, their return sum, their length sum
        self.recent = torch.zeros(RECENT + 1, dtype=f64, device=device)  # a ring; slot RECENT takes the discards
        self.ended_total = torch.zeros((), dtype=torch.int64, device=device)  # episodes ever ended (ring position)
        self._drained_total = 0  # ended_total at the last drain (host side)

    def update(self, reward: torch.Tensor, ended: torch.Tensor) -> None:
        """Add one step's rewards; close the episodes of ``ended`` (bool (num_envs,))."""
        self.ep_return += reward
        self.ep_length += 1
        done = ended.to(torch.float64)
        self.sums += torch.stack([done.sum(), (self.ep_return * done).sum(), (self.ep_length * done).sum()])
        # The last RECENT episodes of this step go to the ring, in env order; the others to the discard slot.
        rank = ended.to(torch.int64).cumsum(0)
        count = rank[-1]
        slot = torch.where(ended & (count - rank < RECENT), (self.ended_total + rank - 1) % RECENT, RECENT)
        self.recent.scatter_(0, slot, self.ep_return)
        self.ended_total += count
        self.ep_return.masked_fill_(ended, 0.0)
        self.ep_length.masked_fill_(ended, 0)

    def drain(self) -> EpisodeWindow:
        """The episodes ended since the last drain (one device-to-host read); the sums start again from zero."""
        count, return_sum, length_sum = self.sums.tolist()
        total, ring = int(self.ended_total), self.recent[:RECENT].tolist()
        new = min(total - self._drained_total, RECENT)
        recent = [ring[i % RECENT] for i in range(total - new, total)]
        self.sums.zero_()
        self._drained_total = total
        return EpisodeWindow(int(count), return_sum, int(length_sum), recent)

    def state_dict(self) -> dict[str, Any]:
        return {"ep_return": self.ep_return.cpu(), "ep_length": self.ep_length.cpu(), "sums": self.sums.cpu(),
                "recent": self.recent.cpu(), "ended_total": int(self.ended_total),
                "drained_total": self._drained_total}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in ("ep_return", "ep_length", "sums", "recent"):
            load_tensor(getattr(self, name), state[name], f"the episode tally's {name}")
        self.ended_total.fill_(int(state["ended_total"]))
        self._drained_total = int(state["drained_total"])


class DeviceVecEnv:
    """A vectorized env on one torch device (the module docstring gives the contract). Continuous actions only."""

    backend: str
    device_native = True
    is_discrete = False
    num_actions = None
    #: why ``state_dict()`` is None for this env (set by simulators that cannot save their state)
    state_note: str | None = None

    def __init__(self, env_id: str, num_envs: int, seed: int, device: torch.device, *, obs_dim: int,
                 action_low: Any, action_high: Any, max_episode_steps: int | None,
                 policy_obs_dim: int | None = None):  # fmt: skip
        self.env_id, self.num_envs, self.seed, self.device = env_id, num_envs, seed, torch.device(device)
        self.obs_dim = int(obs_dim)
        if policy_obs_dim is not None and not 0 < policy_obs_dim < obs_dim:
            raise ValueError(f"{env_id}: policy_obs_dim must be in (0, obs_dim={obs_dim}), got {policy_obs_dim}")
        #: with privileged critic observations: the policy's part of each observation (its first policy_obs_dim
        #: features; the critics see all obs_dim); None: one observation for both
        self.policy_obs_dim = None if policy_obs_dim is None else int(policy_obs_dim)
        low = np.asarray(action_low, dtype=np.float64).reshape(-1)
        high = np.asarray(action_high, dtype=np.float64).reshape(-1)
        if low.shape != high.shape or not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise ValueError(f"{env_id}: action bounds must be finite and of one shape, got {low} and {high}")
        self.action_dim = int(low.size)
        self.action_low, self.action_high = low, high
        self.max_episode_steps = max_episode_steps
        self._scale = torch.tensor((high - low) / 2.0, dtype=torch.float32, device=self.device)
        self._bias = torch.tensor((high + low) / 2.0, dtype=torch.float32, device=self.device)
        self.tally = EpisodeTally(num_envs, self.device)
        self._needs_reset = True

    # simulator hooks -----------------------------------------------------------------------------------------
    def _reset(self) -> torch.Tensor:
        """Reset every env; float32 (num_envs, obs_dim) on the device."""
        raise NotImplementedError

    def _step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                                   torch.Tensor]:  # fmt: skip
        """Step with actions in the env's bounds; return (next_obs, reward, terminated, truncated, final_obs)."""
        raise NotImplementedError

    def _sim_state(self) -> dict[str, Any] | None:
        """The simulator's state and random stream as CPU tensors and plain values, or None (``state_note``)."""
        return None

    def _load_sim_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # public API --------------------------------------------------------------------------------------------
    def reset(self) -> torch.Tensor:
        """Reset every env and the episode tally's running episodes; returns the first observations."""
        obs = self._reset()
        self.tally.ep_return.zero_()
        self.tally.ep_length.zero_()
        self._needs_reset = False
        return obs

    def step(self, action: torch.Tensor) -> StepResult:
        """Step every env once; see the module docstring."""
        if self._needs_reset:
            raise RuntimeError(f"{self.env_id}: call reset() before step()")
        next_obs, reward, terminated, truncated, final_obs = self._step(self._env_action(action))
        self.tally.update(reward, terminated | truncated)
        return StepResult(next_obs=next_obs, reward=reward, terminated=terminated, truncated=truncated,
                          final_obs=final_obs, episode_returns=_EMPTY_F64, episode_lengths=_EMPTY_I64)  # fmt: skip

    def drain_episodes(self) -> EpisodeWindow:
        """The training episodes ended since the last call (reads the device: call it where a sync is fine)."""
        return self.tally.drain()

    def state_dict(self) -> dict[str, Any] | None:
        """The env's whole state (CPU tensors and plain values), or None where the simulator cannot save it."""
        sim = self._sim_state()
        return None if sim is None else {"sim": sim, "tally": self.tally.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (of an env with the same id, number of envs and device type)."""
        self._load_sim_state(state["sim"])
        self.tally.load_state_dict(state["tally"])
        self._needs_reset = False

    def _env_action(self, action: torch.Tensor) -> torch.Tensor:
        if not isinstance(action, torch.Tensor):
            raise TypeError(f"{self.env_id}: actions must be a torch.Tensor, got {type(action).__name__}")
        if not action.is_floating_point():
            raise TypeError(f"{self.env_id}: continuous actions must be a float tensor, got dtype {action.dtype}")
        if tuple(action.shape) != (self.num_envs, self.action_dim):
            raise ValueError(f"{self.env_id}: continuous actions must have shape ({self.num_envs}, "
                             f"{self.action_dim}) with values in [-1, 1], got {tuple(action.shape)}")  # fmt: skip
        a = action.detach().to(device=self.device, dtype=torch.float32).clamp(-1.0, 1.0)
        return torch.addcmul(self._bias, a, self._scale)

    def __enter__(self) -> DeviceVecEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(env_id={self.env_id!r}, backend={self.backend!r}, num_envs={self.num_envs}, "
                f"obs_dim={self.obs_dim}, action_dim={self.action_dim}, device={self.device})")  # fmt: skip
