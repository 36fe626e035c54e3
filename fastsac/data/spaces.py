"""The mapping between gymnasium spaces and the flat tensors a learner uses, for every env path (vectorized
training envs and the single rendering env of ``fastsac eval --video``).

- :func:`obs_flattener`: Box observations are flattened C-order; Dict observations (DMC tasks, goal envs) are
  concatenated, keys in sorted order, recursively. Always into a fresh float32 array.
- :class:`ActionMap`: policy actions to env actions. Continuous actions in [-1, 1] (values outside are clipped)
  are rescaled to the Box's bounds; discrete actions in [0, n) are shifted by the space's ``start``.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

__all__ = ["ActionMap", "obs_flattener"]


def obs_flattener(space: Any) -> tuple[int, Callable[[Any, int], np.ndarray]]:
    """Return (obs_dim, flatten) for a single-env observation space.

    ``flatten(obs, n)`` maps a batch of n observations (array or dict of arrays) to a fresh float32 array
    (n, obs_dim); it always copies, because EnvPool may reuse its output memory.
    """
    from gymnasium import spaces

    if isinstance(space, spaces.Box):
        dim = int(np.prod(space.shape, dtype=np.int64))

        def flat_box(obs: Any, n: int) -> np.ndarray:
            return np.array(obs, dtype=np.float32, copy=True).reshape(n, dim)

        return dim, flat_box
    if isinstance(space, spaces.Dict):
        parts = [(key, *obs_flattener(space.spaces[key])) for key in sorted(space.spaces)]
        dim = sum(d for _, d, _ in parts)

        def flat_dict(obs: Any, n: int) -> np.ndarray:
            return np.concatenate([f(obs[key], n) for key, _, f in parts], axis=1)

        return dim, flat_dict
    raise TypeError(
        f"observation space {space} is not supported: fastsac handles Box observations and Dict observations "
        "whose entries are Box (they are flattened). Wrap the env to produce a Box observation."
    )


class ActionMap:
    """Policy actions -> actions of one env's action space (a gymnasium ``Box`` or ``Discrete``).

    Attributes: ``is_discrete``; ``num_actions`` (discrete) or ``action_dim``, ``low``, ``high`` (float64 bounds;
    continuous), the others None. :meth:`__call__` maps a batch and checks its values.
    """

    def __init__(self, space: Any, env_id: str):
        from gymnasium import spaces

        self.env_id = env_id
        if isinstance(space, spaces.Discrete):
            self.is_discrete = True
            self.num_actions: int | None = int(space.n)
            self.action_dim: int | None = None
            self.start = int(space.start)
            self.low = self.high = None
        elif isinstance(space, spaces.Box):
            low = np.asarray(space.low, dtype=np.float64).reshape(-1)
            high = np.asarray(space.high, dtype=np.float64).reshape(-1)
            if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
                raise ValueError(
                    f"{env_id}: action space {space} has infinite bounds, so actions in [-1, 1] cannot be "
                    "rescaled to it; wrap the env with finite bounds (e.g. gymnasium.wrappers.ClipAction)."
                )
            self.is_discrete = False
            self.num_actions = None
            self.action_dim = int(low.size)
            self.low, self.high = low, high
            self.shape = tuple(space.shape)
            self.dtype = space.dtype
            self._scale = (high - low) / 2.0
            self._bias = (high + low) / 2.0
            self._identity = bool(np.all(self._scale == 1.0) and np.all(self._bias == 0.0))  # bounds [-1, 1]
        else:
            raise TypeError(
                f"{env_id}: action space {space} is not supported; fastsac handles Box (continuous) and "
                "Discrete action spaces."
            )

    def __call__(self, a: np.ndarray, n: int) -> np.ndarray:
        """``n`` actions: discrete (n,) integers in [0, num_actions), or continuous (n, action_dim) (or (n, *shape))
        floats in [-1, 1] -> the env's actions (discrete int64 (n,); continuous (n, *shape) in the Box's dtype)."""
        if self.is_discrete:
            if not np.issubdtype(a.dtype, np.integer):
                raise TypeError(f"{self.env_id}: discrete actions must be an integer tensor, got dtype {a.dtype}")
            if a.shape != (n,):
                raise ValueError(f"{self.env_id}: discrete actions must have shape ({n},), got {tuple(a.shape)}")
            lo, hi = a.min(), a.max()
            if lo < 0 or hi >= self.num_actions:
                raise ValueError(
                    f"{self.env_id}: discrete actions must lie in [0, {self.num_actions}), got values in [{lo}, {hi}]"
                )
            return (a.astype(np.int64) + self.start) if self.start else a.astype(np.int64)
        if not np.issubdtype(a.dtype, np.floating):
            raise TypeError(f"{self.env_id}: continuous actions must be a float tensor, got dtype {a.dtype}")
        if a.shape != (n, self.action_dim) and a.shape != (n, *self.shape):
            raise ValueError(
                f"{self.env_id}: continuous actions must have shape ({n}, {self.action_dim}) with values in "
                f"[-1, 1], got {tuple(a.shape)}"
            )
        # np.minimum/np.maximum: np.clip costs ~15 us of dispatch on arrays this small. The clipping is exact in any
        # float dtype; the rescaling runs in float64 (a float32 input is promoted exactly).
        a = np.minimum(np.maximum(a.reshape(n, self.action_dim), -1.0), 1.0)
        scaled = a if self._identity else a * self._scale + self._bias
        return scaled.reshape(n, *self.shape).astype(self.dtype, copy=False)
