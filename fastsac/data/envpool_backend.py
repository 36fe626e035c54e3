"""The EnvPool backend of :func:`fastsac.data.envs.make`: :class:`EnvPoolVecEnv`.

EnvPool's NEXT_STEP autoreset is hidden here (see the ``fastsac.data.envs`` docstring for why and how).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from fastsac.data.vec_env import VecEnv

__all__ = ["EnvPoolVecEnv"]


class EnvPoolVecEnv(VecEnv):
    backend = "envpool"

    def __init__(self, env_id: str, num_envs: int, seed: int, device: torch.device):
        import envpool

        # Sync mode (batch_size == num_envs): every step returns all envs, and reset(env_ids) of a subset works.
        self._env = envpool.make(env_id, env_type="gymnasium", num_envs=num_envs, batch_size=num_envs, seed=seed)
        with warnings.catch_warnings():  # EnvPool builds float32 Boxes from float64 bounds; harmless
            warnings.filterwarnings("ignore", message=".*precision lowered by casting")
            obs_space, act_space = self._env.observation_space, self._env.action_space
        mode = getattr(self._env, "metadata", {}).get("autoreset_mode")
        if mode is not None and getattr(mode, "name", str(mode)) != "NEXT_STEP":
            # The reset-after-end logic below assumes NEXT_STEP; any other mode would corrupt final_obs.
            self._env.close()
            raise RuntimeError(
                f"{env_id}: envpool {getattr(envpool, '__version__', '?')} reports autoreset_mode={mode}; "
                "fastsac.data.envs supports EnvPool's NEXT_STEP autoreset only. Use backend='gymnasium'."
            )
        try:
            super().__init__(env_id, num_envs, seed, device, obs_space, act_space)
        except Exception:
            self._env.close()
            raise
        steps = self._env.config.get("max_episode_steps")
        self.max_episode_steps = int(steps) if steps else None
        self._all_ids = np.arange(num_envs)

    def _reset_np(self) -> np.ndarray:
        obs, info = self._env.reset()
        return self._in_env_order(self._flatten(obs, self.num_envs), info["env_id"])

    def _in_env_order(self, rows: np.ndarray, env_ids: np.ndarray) -> np.ndarray:
        if np.array_equal(env_ids, self._all_ids):
            return rows
        out = np.empty_like(rows)
        out[env_ids] = rows
        return out

    def _step_np(self, action: np.ndarray):
        obs, reward, terminated, truncated, info = self._env.step(action)
        env_ids = info["env_id"]
        n = self.num_envs
        final = self._flatten(obs, n)
        reward = np.asarray(reward, dtype=np.float64)
        terminated = np.asarray(terminated, dtype=bool)
        truncated = np.asarray(truncated, dtype=bool)
        if not np.array_equal(env_ids, self._all_ids):
            order = np.argsort(env_ids)
            final, reward, terminated, truncated = final[order], reward[order], terminated[order], truncated[order]
        ended = terminated | truncated
        if not ended.any():
            return final, reward, terminated, truncated, final
        # Hide NEXT_STEP autoreset: reset just the ended envs now (see module docstring).
        ids = np.flatnonzero(ended).astype(np.int32)
        reset_obs, reset_info = self._env.reset(ids)
        next_obs = final.copy()
        next_obs[reset_info["env_id"]] = self._flatten(reset_obs, ids.size)
        return next_obs, reward, terminated, truncated, final

    def close(self) -> None:
        self._env.close()
