"""Replay buffer: preallocated device tensors, circular, batched adds, on-device sampling without host syncs.

``add`` writes one row per env (N rows per call) at a host-side write position; ``sample`` draws its indices on
the buffer's device from a 0-dim device tensor holding the current size, so it never reads a device value on the
host: it can run inside ``torch.compile(fullgraph=True)`` and inside a CUDA graph, where each replay sees the
size written by the adds made since capture.

Stored per transition: obs, action, reward, next_obs (the env's ``final_obs``: the real last observation when an
episode ended) and ``terminated`` (true termination only; a time-limit truncation is stored as not done, so the
target bootstraps from next_obs).
"""

from __future__ import annotations

import math
import os
from typing import Any, NamedTuple

import torch

__all__ = ["Batch", "ReplayBuffer", "available_memory_bytes"]

# Indices are drawn as uniform 62-bit integers reduced modulo the size: exact, never out of range, and biased
# by at most size / 2**62 (float `rand() * size` goes out of range or skips rows once size exceeds 2**24).
_RAND_HIGH = 2**62


class Batch(NamedTuple):
    """A sampled minibatch. ``obs``/``next_obs`` are float32 whatever the storage dtype; ``terminated`` is float32
    0/1; ``action`` is float32 (batch, *action_shape), or int64 (batch,) for a discrete buffer."""

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor


def available_memory_bytes(device: torch.device) -> int | None:
    """Free memory for new allocations on ``device``: ``torch.cuda.mem_get_info`` on CUDA, MemAvailable from
    /proc/meminfo on CPU (the available physical pages elsewhere). None when unknown (then nothing is checked)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "cpu":
        try:
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        try:
            return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            return None
    return None


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


class ReplayBuffer:
    """Circular replay buffer on ``device``.

    Args:
        capacity: number of transitions kept; the oldest are overwritten once full.
        obs_dim: flattened observation size.
        action_shape_or_dim: continuous: the action dimension (int) or shape (tuple); discrete: the number of
            actions (actions are then stored as int64 indices of shape ()).
        device: where the storage lives and where ``sample`` returns batches (the training device).
        obs_dtype: storage dtype of obs and next_obs: float32, or float16/bfloat16 to halve their memory
            (values are rounded to nearest on ``add``; ``sample`` returns float32).
        discrete: whether actions are discrete indices.

    Raises ValueError before allocating anything when the storage would not fit in the device's free memory.
    """

    def __init__(
        self,
        capacity: int,
        obs_dim: int,
        action_shape_or_dim: int | tuple[int, ...],
        *,
        device: str | torch.device,
        obs_dtype: torch.dtype = torch.float32,
        discrete: bool = False,
    ):
        self.capacity = _positive_int("capacity", capacity)
        self.obs_dim = _positive_int("obs_dim", obs_dim)
        self.discrete = bool(discrete)
        if self.discrete:
            self.num_actions: int | None = _positive_int("action_shape_or_dim (number of actions)", action_shape_or_dim)
            self.action_shape: tuple[int, ...] = ()
            action_dtype = torch.int64
        else:
            self.num_actions = None
            if isinstance(action_shape_or_dim, (tuple, list, torch.Size)):
                shape = tuple(action_shape_or_dim)
                for d in shape:
                    _positive_int("each entry of action_shape_or_dim", d)
                if not shape:
                    raise ValueError("action_shape_or_dim must not be an empty shape for a continuous buffer")
                self.action_shape = shape
            else:
                self.action_shape = (_positive_int("action_shape_or_dim", action_shape_or_dim),)
            action_dtype = torch.float32
        if not isinstance(obs_dtype, torch.dtype) or not obs_dtype.is_floating_point:
            raise TypeError(f"obs_dtype must be a floating torch dtype (float32, float16, bfloat16), got {obs_dtype}")
        self.obs_dtype = obs_dtype
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())

        self.nbytes = self.bytes_needed(capacity, obs_dim, self.action_shape, obs_dtype, discrete)
        free = available_memory_bytes(self.device)
        if free is not None and self.nbytes > free:
            raise ValueError(
                f"ReplayBuffer(capacity={capacity:,}, obs_dim={obs_dim}, obs_dtype={obs_dtype}) needs "
                f"{self.nbytes / 2**30:.2f} GiB on {self.device} but only {free / 2**30:.2f} GiB is available; "
                "lower the capacity or store observations as torch.bfloat16/float16"
            )

        c, dev = self.capacity, self.device
        self.obs = torch.empty(c, obs_dim, dtype=obs_dtype, device=dev)
        self.next_obs = torch.empty(c, obs_dim, dtype=obs_dtype, device=dev)
        self.action = torch.empty(c, *self.action_shape, dtype=action_dtype, device=dev)
        self.reward = torch.empty(c, dtype=torch.float32, device=dev)
        self.terminated = torch.empty(c, dtype=torch.float32, device=dev)
        self._pos = 0  # next row to write (host side: adds come from the host loop)
        self._size = 0  # host copy of the size, for logging and checks
        self._size_t = torch.zeros((), dtype=torch.int64, device=dev)  # device copy, read by sample()

    @staticmethod
    def bytes_needed(
        capacity: int,
        obs_dim: int,
        action_shape: tuple[int, ...],
        obs_dtype: torch.dtype = torch.float32,
        discrete: bool = False,
    ) -> int:
        """Bytes of storage for a buffer of this configuration."""
        obs_item = obs_dtype.itemsize
        act_bytes = 8 if discrete else 4 * math.prod(action_shape)
        return capacity * (2 * obs_dim * obs_item + act_bytes + 4 + 4)

    # ---------------------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._size

    @property
    def size(self) -> int:
        """Number of stored transitions (host int; no device sync)."""
        return self._size

    @property
    def pos(self) -> int:
        """Row the next add writes first."""
        return self._pos

    @property
    def size_tensor(self) -> torch.Tensor:
        """The size as a 0-dim int64 tensor on ``device`` (what ``sample`` reads)."""
        return self._size_t

    def __repr__(self) -> str:
        act = f"num_actions={self.num_actions}" if self.discrete else f"action_shape={self.action_shape}"
        return (
            f"ReplayBuffer(capacity={self.capacity}, size={self._size}, obs_dim={self.obs_dim}, {act}, "
            f"obs_dtype={self.obs_dtype}, device={self.device})"
        )

    # ---------------------------------------------------------------------------------------------------------
    def _check(self, name: str, x: Any, shape: tuple[int, ...], kind: str) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, got {tuple(x.shape)}")
        if kind == "float":
            ok = x.is_floating_point()
        elif kind == "int":
            ok = not x.is_floating_point() and not x.is_complex() and x.dtype != torch.bool
        else:  # "flag"
            ok = x.dtype == torch.bool or x.is_floating_point()
        if not ok:
            want = {"float": "a floating dtype", "int": "an integer dtype", "flag": "bool (or float 0/1)"}[kind]
            raise TypeError(f"{name} must have {want}, got {x.dtype}")
        return x

    def add(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        reward: torch.Tensor,
        next_obs: torch.Tensor,
        terminated: torch.Tensor,
    ) -> None:
        """Store N transitions (one per env): obs (N, obs_dim), action (N, *action_shape) float or (N,) integer
        for a discrete buffer, reward (N,), next_obs (N, obs_dim) (pass the env's ``final_obs``), terminated (N,)
        bool (true termination only, never truncation). Inputs on another device are copied over; a copy from
        the host into a CUDA buffer is asynchronous (do not modify a pinned input in place right after ``add``).
        """
        if not isinstance(obs, torch.Tensor):
            raise TypeError(f"obs must be a torch.Tensor, got {type(obs).__name__}")
        if obs.dim() != 2:
            raise ValueError(f"obs must have shape (N, {self.obs_dim}), got {tuple(obs.shape)}")
        n = obs.shape[0]
        if n > self.capacity:
            raise ValueError(f"cannot add {n} transitions at once to a buffer of capacity {self.capacity}")
        self._check("obs", obs, (n, self.obs_dim), "float")
        self._check("next_obs", next_obs, (n, self.obs_dim), "float")
        self._check("action", action, (n, *self.action_shape), "int" if self.discrete else "float")
        self._check("reward", reward, (n,), "float")
        self._check("terminated", terminated, (n,), "flag")
        if self.discrete and action.device.type == "cpu" and n > 0:
            lo, hi = int(action.min()), int(action.max())  # free on the host; skipped on CUDA (would sync)
            if lo < 0 or hi >= self.num_actions:
                raise ValueError(f"discrete actions must lie in [0, {self.num_actions}), got values in [{lo}, {hi}]")
        if n == 0:
            return

        p, c = self._pos, self.capacity
        first = min(n, c - p)  # rows before the wrap
        to_cuda = self.device.type == "cuda"
        for dst, src in (
            (self.obs, obs),
            (self.next_obs, next_obs),
            (self.action, action),
            (self.reward, reward),
            (self.terminated, terminated),
        ):
            if to_cuda and src.device.type == "cpu":
                # Convert on the host, then stage in pinned memory: a pageable host source would make the host
                # wait for all queued GPU work before copying.
                src = src.to(dst.dtype)
                if not src.is_pinned():
                    src = src.pin_memory()
            # copy_ converts dtype and device; non_blocking only towards CUDA (host destinations must be complete)
            dst[p : p + first].copy_(src[:first], non_blocking=to_cuda)
            if first < n:
                dst[: n - first].copy_(src[first:], non_blocking=to_cuda)
        self._pos = (p + n) % c
        self._size = min(self._size + n, c)
        self._size_t.fill_(self._size)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Batch:
        """Draw ``batch_size`` transitions uniformly (with replacement) from the filled part, on ``device``.

        No host sync: the indices come from the device-side size. ``generator`` must live on ``device``; None
        uses torch's default generator for that device (so ``torch.manual_seed`` makes sampling reproducible).
        """
        if not torch.compiler.is_compiling():  # host-side checks, skipped while tracing (no guards on them)
            _positive_int("batch_size", batch_size)
            if self._size == 0:
                raise ValueError("cannot sample from an empty ReplayBuffer; add transitions first")
        idx = torch.randint(_RAND_HIGH, (batch_size,), device=self.device, generator=generator) % self._size_t
        rows = lambda t: t.index_select(0, idx)  # noqa: E731  (what t[idx] does, at half its cost a call on a CPU)
        return Batch(
            obs=rows(self.obs).float(),
            action=rows(self.action),
            reward=rows(self.reward),
            next_obs=rows(self.next_obs).float(),
            terminated=rows(self.terminated),
        )

    # ---------------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The filled rows (copied to the CPU) plus position and size, for checkpoints."""
        s = self._size

        def rows(t: torch.Tensor) -> torch.Tensor:
            return t[:s].to("cpu", copy=True)

        return {
            "capacity": self.capacity,
            "obs_dim": self.obs_dim,
            "action_shape": self.action_shape,
            "discrete": self.discrete,
            "num_actions": self.num_actions,
            "obs_dtype": str(self.obs_dtype),
            "pos": self._pos,
            "size": s,
            "obs": rows(self.obs),
            "action": rows(self.action),
            "reward": rows(self.reward),
            "next_obs": rows(self.next_obs),
            "terminated": rows(self.terminated),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`. Capacity, obs_dim and the action layout must match; observations are
        converted to this buffer's obs_dtype."""
        for key in ("capacity", "obs_dim", "discrete", "num_actions"):
            if state[key] != getattr(self, key):
                raise ValueError(
                    f"cannot load a ReplayBuffer state with {key}={state[key]} into a buffer with "
                    f"{key}={getattr(self, key)}; create the buffer with the saved configuration"
                )
        if tuple(state["action_shape"]) != self.action_shape:
            raise ValueError(
                f"cannot load a ReplayBuffer state with action_shape={tuple(state['action_shape'])} into a buffer "
                f"with action_shape={self.action_shape}"
            )
        s, p = int(state["size"]), int(state["pos"])
        if not (0 <= s <= self.capacity and 0 <= p < self.capacity and (s == self.capacity or p == s)):
            raise ValueError(f"inconsistent ReplayBuffer state: size={s}, pos={p}, capacity={self.capacity}")
        for key in ("obs", "action", "reward", "next_obs", "terminated"):
            src = state[key]
            dst = getattr(self, key)
            if tuple(src.shape) != (s, *dst.shape[1:]):
                raise ValueError(f"ReplayBuffer state entry {key!r} has shape {tuple(src.shape)}, expected "
                                 f"{(s, *dst.shape[1:])}")  # fmt: skip
            dst[:s].copy_(src)
        self._pos, self._size = p, s
        self._size_t.fill_(s)
