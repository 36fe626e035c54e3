"""The gymnasium backend of :func:`fastsac.data.envs.make`: :class:`GymnasiumVecEnv`, a synchronous gymnasium vector
env in SAME_STEP autoreset mode (gymnasium >= 1.1), which returns the reset observation together with
``info["final_obs"]``."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fastsac.data.vec_env import VecEnv

__all__ = ["GymnasiumVecEnv"]


class GymnasiumVecEnv(VecEnv):
    backend = "gymnasium"

    def __init__(self, env_id: str, num_envs: int, seed: int, device: torch.device):
        import gymnasium

        try:
            from gymnasium.vector import AutoresetMode
        except ImportError as e:  # gymnasium 1.0
            raise ImportError(
                f"the gymnasium backend needs gymnasium >= 1.1 (for autoreset_mode=SAME_STEP); found "
                f"{gymnasium.__version__}. Upgrade with: pip install -U 'gymnasium>=1.1'"
            ) from e
        self._env = gymnasium.make_vec(
            env_id,
            num_envs=num_envs,
            vectorization_mode="sync",
            vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
        )
        mode = self._env.metadata.get("autoreset_mode")
        if mode != AutoresetMode.SAME_STEP:
            self._env.close()
            raise RuntimeError(f"{env_id}: gymnasium vector env reports autoreset_mode={mode}, expected SAME_STEP")
        try:
            super().__init__(
                env_id, num_envs, seed, device, self._env.single_observation_space, self._env.single_action_space
            )
        except Exception:
            self._env.close()
            raise
        spec = self._env.spec
        self.max_episode_steps = spec.max_episode_steps if spec is not None else None
        self._seeded = False

    def _reset_np(self) -> np.ndarray:
        # Seed once (env i gets seed + i); later resets continue the seeded stream, as EnvPool does.
        obs, _ = self._env.reset(seed=None if self._seeded else self.seed)
        self._seeded = True
        return self._flatten(obs, self.num_envs)

    def _step_np(self, action: np.ndarray):
        obs, reward, terminated, truncated, info = self._env.step(action)
        next_obs = self._flatten(obs, self.num_envs)
        reward = np.asarray(reward, dtype=np.float64)
        terminated = np.asarray(terminated, dtype=bool)
        truncated = np.asarray(truncated, dtype=bool)
        ended = terminated | truncated
        if not ended.any():
            return next_obs, reward, terminated, truncated, next_obs
        final = next_obs.copy()
        final_obs, has_final = info["final_obs"], info["_final_obs"]
        for i in np.flatnonzero(ended):
            if not has_final[i]:
                raise RuntimeError(f"{self.env_id}: env {i} ended but gymnasium gave no final_obs")
            final[i] = self._flatten(_add_batch_dim(final_obs[i]), 1)[0]
        return next_obs, reward, terminated, truncated, final

    def close(self) -> None:
        self._env.close()


def _add_batch_dim(obs: Any) -> Any:
    if isinstance(obs, dict):
        return {k: _add_batch_dim(v) for k, v in obs.items()}
    return np.asarray(obs)[None]
