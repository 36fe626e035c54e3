"""Tasks simulated in torch on any device (``backend="torch"`` of :func:`fastsac.data.envs.make`): device envs
(``device_env.py``) that need no simulator package, so the device path of the trainer runs anywhere torch does,
thousands of envs at once on a GPU.

* ``Pendulum-v1`` (:class:`TorchPendulum`): gymnasium 1.4's ``PendulumEnv`` and its 200-step time limit, step for
  step: the same dynamics, reward, observation, initial-state distribution and clipping, in float64 bit for bit
  where gymnasium computes in float64 (tests/data/test_torch_envs.py steps both from the same states and actions);
  the default float32 state differs from it by rounding only. Initial states come from a ``torch.Generator`` on the
  device, not from gymnasium's NumPy stream, so the two backends draw different episodes from one seed. With
  ``privileged=True`` (``make(..., privileged_critic=True)``) the critics also see what the policy does not: the
  angle itself (wrapped to [-pi, pi), over pi) and the fraction of the episode's 200 steps left, after the policy's
  three features (``policy_obs_dim`` 3 of ``obs_dim`` 5).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from fastsac.data.device_env import DeviceVecEnv, load_tensor

__all__ = ["TORCH_TASKS", "TorchPendulum"]


class TorchPendulum(DeviceVecEnv):
    """Pendulum-v1 (swing up and balance a pendulum; action: one torque in [-2, 2]; observation: cos, sin and
    angular velocity) for ``num_envs`` envs on ``device``; never terminates, truncated after 200 steps."""

    backend = "torch"
    MAX_SPEED, MAX_TORQUE, DT, G, M, L = 8.0, 2.0, 0.05, 10.0, 1.0, 1.0
    INIT_HIGH = (math.pi, 1.0)  #: initial angle and angular velocity are uniform in [-high, high]
    TIME_LIMIT = 200

    def __init__(self, env_id: str, num_envs: int, seed: int, device: torch.device, dtype=torch.float32, *,
                 privileged: bool = False):
        super().__init__(env_id, num_envs, seed, device, obs_dim=5 if privileged else 3,
                         action_low=[-self.MAX_TORQUE], action_high=[self.MAX_TORQUE],
                         max_episode_steps=self.TIME_LIMIT, policy_obs_dim=3 if privileged else None)  # fmt: skip
        self.dtype, self.privileged = dtype, privileged
        self._gen = torch.Generator(self.device)
        self._gen.manual_seed(seed)
        self.th = torch.zeros(num_envs, dtype=dtype, device=self.device)
        self.thdot = torch.zeros_like(self.th)
        self.elapsed = torch.zeros(num_envs, dtype=torch.int64, device=self.device)
        self._high = torch.tensor(self.INIT_HIGH, dtype=torch.float64, device=self.device)

    def _initial_states(self) -> tuple[torch.Tensor, torch.Tensor]:
        u = torch.rand(self.num_envs, 2, dtype=torch.float64, device=self.device, generator=self._gen)
        state = ((u * 2.0 - 1.0) * self._high).to(self.dtype)
        return state[:, 0], state[:, 1]

    def _obs(self, th: torch.Tensor, thdot: torch.Tensor, elapsed: torch.Tensor) -> torch.Tensor:
        features = [torch.cos(th), torch.sin(th), thdot]
        if self.privileged:  # the critics' extra features: the angle, and the share of the time limit left
            wrapped = torch.remainder(th + math.pi, 2 * math.pi) - math.pi
            features += [wrapped / math.pi, 1.0 - elapsed.to(th.dtype) / self.TIME_LIMIT]
        return torch.stack(features, dim=1).to(torch.float32)

    def _reset(self) -> torch.Tensor:
        th, thdot = self._initial_states()
        self.th.copy_(th)
        self.thdot.copy_(thdot)
        self.elapsed.zero_()
        return self._obs(self.th, self.thdot, self.elapsed)

    def _step(self, action: torch.Tensor):
        u = action[:, 0].clamp(-self.MAX_TORQUE, self.MAX_TORQUE)  # float32, as gymnasium's Box action
        th, thdot = self.th, self.thdot
        normalized = torch.remainder(th + math.pi, 2 * math.pi) - math.pi
        costs = normalized**2 + 0.1 * thdot**2 + 0.001 * (u**2)
        g, m, l, dt = self.G, self.M, self.L, self.DT
        new_thdot = thdot + (3 * g / (2 * l) * torch.sin(th) + 3.0 / (m * l**2) * u) * dt
        new_thdot = new_thdot.clamp(-self.MAX_SPEED, self.MAX_SPEED)
        new_th = th + new_thdot * dt
        self.elapsed += 1
        truncated = self.elapsed >= self.TIME_LIMIT
        final_obs = self._obs(new_th, new_thdot, self.elapsed)
        # Fresh states for every env (a fixed amount of randomness per step, so no sync), kept where one ended.
        init_th, init_thdot = self._initial_states()
        self.th.copy_(torch.where(truncated, init_th, new_th))
        self.thdot.copy_(torch.where(truncated, init_thdot, new_thdot))
        self.elapsed.masked_fill_(truncated, 0)
        reward = (-costs).to(torch.float32)
        terminated = torch.zeros_like(truncated)
        return self._obs(self.th, self.thdot, self.elapsed), reward, terminated, truncated, final_obs

    def _sim_state(self) -> dict[str, Any]:
        return {"th": self.th.cpu(), "thdot": self.thdot.cpu(), "elapsed": self.elapsed.cpu(),
                "generator": self._gen.get_state()}  # fmt: skip

    def _load_sim_state(self, state: dict[str, Any]) -> None:
        for name in ("th", "thdot", "elapsed"):
            load_tensor(getattr(self, name), state[name], f"{self.env_id}'s {name}")
        self._gen.set_state(state["generator"])

    def close(self) -> None:
        pass


#: env id -> the torch task that simulates it
TORCH_TASKS: dict[str, type[DeviceVecEnv]] = {"Pendulum-v1": TorchPendulum}
