"""The MJX backend of :func:`fastsac.data.envs.make` (``backend="mjx"``): MuJoCo models simulated by MJX (MuJoCo
XLA, on JAX) on the training device, as a :class:`~fastsac.data.device_env.DeviceVecEnv`. Tensors cross between
torch and JAX through DLPack, without copies and without the host.

Tasks (:data:`MJX_TASKS`):

* ``MJX-Humanoid-v0``: run forward with MuJoCo's 21-actuator humanoid (``mujoco/mjx/test_data/humanoid/
  humanoid.xml``, shipped in the mujoco-mjx wheel), the locomotion task of MJX's tutorial (mujoco's
  ``mjx/tutorial.ipynb``, Apache 2.0) after gymnasium's Humanoid: CG solver with 6 iterations and 6 line-search
  iterations, 5 physics steps of 5 ms per env step; reward ``1.25 * (forward velocity of the centre of mass) + 5
  (alive) - 0.1 * |action|^2``; terminated when the torso's height leaves (1, 2); truncated after 1000 steps;
  observation (336) ``qpos[2:]``, ``qvel``, the bodies' ``cinert`` and ``cvel`` (world body left out) and
  ``qfrc_actuator``; initial ``qpos`` and ``qvel`` perturbed by U(-0.01, 0.01) per coordinate.

How MJX is used (``pip install "fastsac[mjx]"``: mujoco-mjx and JAX; on a GPU, JAX's CUDA plugin):

* All envs are one batched ``mjx.Data`` (``jax.vmap``); one env step is one jitted function: the physics steps,
  reward and episode ends, and the reset of the envs that ended (a ``where`` over every field, so no host sync).
* JAX runs on the device that matches the torch device (``cpu``, or ``cuda:i`` -> JAX's GPU ``i``). Importing JAX
  here sets ``XLA_PYTHON_CLIENT_PREALLOCATE=false`` unless it is set: JAX's default of taking 75% of the GPU's
  memory would starve torch.
* Randomness: a JAX PRNG key seeded from the env's seed, split at every step.
* State: the batched ``mjx.Data``, the step counters and the key are the whole env, so ``state_dict`` saves them and
  a resume is exact.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fastsac.data.device_env import DeviceVecEnv, load_tensor
from fastsac.data.vec_env import unknown_id_error

__all__ = ["MJX_TASKS", "MjxHumanoid", "make_mjx_env"]

INSTALL = 'pip install "fastsac[mjx]"'


def _import_mjx():
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # before JAX initialises a GPU
    try:
        import jax
        import mujoco
        from mujoco import mjx
    except ImportError as exc:
        raise ImportError(f"env backend 'mjx' needs mujoco-mjx and JAX, which are not installed here ({exc}); "
                          f"install them with {INSTALL}") from exc  # fmt: skip
    return jax, mujoco, mjx


def _jax_device(jax, device: torch.device):
    """JAX's device for the torch ``device`` (the CPU, or the GPU of the same index)."""
    if device.type == "cpu":
        return jax.devices("cpu")[0]
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        try:
            return jax.devices("gpu")[index]
        except RuntimeError as exc:
            raise RuntimeError(f"env backend 'mjx' on {device}: JAX sees no GPU ({exc}); install JAX's CUDA plugin "
                               "(pip install 'jax[cuda12]') or train on the CPU") from exc  # fmt: skip
    raise ValueError(f"env backend 'mjx' runs on a CPU or a CUDA device, not {device}")


def make_mjx_env(env_id: str, num_envs: int, seed: int, device: torch.device, *,
                 privileged: bool = False) -> DeviceVecEnv:
    if privileged:
        raise ValueError(f"{env_id} has no privileged critic observations (the policy and the critics see one "
                         "observation); leave privileged_critic off")
    if env_id not in MJX_TASKS:
        raise unknown_id_error(env_id, sorted(MJX_TASKS), f"not a task of backend='mjx', which has "
                               f"{', '.join(sorted(MJX_TASKS))}")
    return MJX_TASKS[env_id](num_envs, seed, torch.device(device))


def _impl(data, name: str):
    """A field of ``mjx.Data`` that MJX keeps in its implementation part (``data._impl`` since MJX 3.3; on
    ``data`` itself before)."""
    impl = getattr(data, "_impl", None)
    return getattr(impl if impl is not None and hasattr(impl, name) else data, name)


class MjxHumanoid(DeviceVecEnv):
    """``MJX-Humanoid-v0`` (the module docstring): ``num_envs`` humanoids stepping on ``device``."""

    backend = "mjx"
    FRAMES, MAX_STEPS, NOISE, SOLVER_ITERATIONS = 5, 1000, 1e-2, 6
    FORWARD, ALIVE, CTRL_COST, HEALTHY_Z = 1.25, 5.0, 0.1, (1.0, 2.0)

    def __init__(self, num_envs: int, seed: int, device: torch.device):
        jax, mujoco, mjx = _import_mjx()
        self._jax = jax
        path = Path(mjx.__file__).parent / "test_data" / "humanoid" / "humanoid.xml"
        model = mujoco.MjModel.from_xml_path(str(path))
        model.opt.solver = mujoco.mjtSolver.mjSOL_CG
        model.opt.iterations = model.opt.ls_iterations = self.SOLVER_ITERATIONS
        self._jdev = _jax_device(jax, device)
        self._model = mjx.put_model(model, device=self._jdev)
        self._dt = float(model.opt.timestep) * self.FRAMES
        ctrl = model.actuator_ctrlrange
        super().__init__("MJX-Humanoid-v0", num_envs, seed, device, obs_dim=self._obs_size(model),
                         action_low=ctrl[:, 0], action_high=ctrl[:, 1], max_episode_steps=self.MAX_STEPS)
        self._build(jax, mjx, model)
        self._key = jax.device_put(jax.random.key_data(jax.random.key(seed)), self._jdev)
        self._data = self._steps = None

    @staticmethod
    def _obs_size(model) -> int:
        return (model.nq - 2) + model.nv + (model.nbody - 1) * 16 + model.nv

    def _build(self, jax, mjx, model) -> None:
        jnp = jax.numpy
        mx, num, frames, noise = self._model, self.num_envs, self.FRAMES, self.NOISE
        qpos0 = jnp.asarray(model.qpos0, dtype=jnp.float32)
        low_z, high_z = self.HEALTHY_Z

        def initial(key):  # one env's perturbed initial state
            k1, k2 = jax.random.split(key)
            qpos = qpos0 + jax.random.uniform(k1, (model.nq,), minval=-noise, maxval=noise)
            qvel = jax.random.uniform(k2, (model.nv,), minval=-noise, maxval=noise)
            return mjx.forward(mx, mjx.make_data(mx).replace(qpos=qpos, qvel=qvel))

        def observe(d):
            return jnp.concatenate([d.qpos[2:], d.qvel, _impl(d, "cinert")[1:].ravel(), _impl(d, "cvel")[1:].ravel(),
                                    d.qfrc_actuator])  # fmt: skip

        def one_step(d, action):
            before = _impl(d, "subtree_com")[1, 0]
            d = jax.lax.fori_loop(0, frames, lambda _, x: mjx.step(mx, x), d.replace(ctrl=action))
            velocity = (_impl(d, "subtree_com")[1, 0] - before) / self._dt
            healthy = (d.qpos[2] > low_z) & (d.qpos[2] < high_z)
            reward = self.FORWARD * velocity + self.ALIVE - self.CTRL_COST * jnp.sum(action * action)
            return d, observe(d), reward, ~healthy

        def reset_all(key_data):
            keys = jax.random.split(jax.random.wrap_key_data(key_data), num + 1)
            data = jax.vmap(initial)(keys[1:])
            return data, jax.vmap(observe)(data), jnp.zeros(num, jnp.int32), jax.random.key_data(keys[0])

        def step(data, steps, key_data, action):
            data, final_obs, reward, terminated = jax.vmap(one_step)(data, action)
            steps = steps + 1
            truncated = (steps >= self.MAX_STEPS) & ~terminated
            ended = terminated | truncated
            keys = jax.random.split(jax.random.wrap_key_data(key_data), num + 1)
            fresh = jax.vmap(initial)(keys[1:])  # every env's candidate restart; kept where its episode ended
            data = jax.tree_util.tree_map(
                lambda new, old: jnp.where(ended.reshape((-1,) + (1,) * (old.ndim - 1)), new, old), fresh, data)
            next_obs = jnp.where(ended[:, None], jax.vmap(observe)(fresh), final_obs)
            steps = jnp.where(ended, 0, steps)
            return data, steps, jax.random.key_data(keys[0]), next_obs, reward, terminated, truncated, final_obs

        self._reset_fn = jax.jit(reset_all)
        self._step_fn = jax.jit(step, donate_argnums=(0,) if self.device.type != "cpu" else ())

    # DLPack crossings ----------------------------------------------------------------------------------------
    def _to_torch(self, x) -> torch.Tensor:
        return torch.from_dlpack(x)

    def _to_jax(self, t: torch.Tensor):
        return self._jax.dlpack.from_dlpack(t.contiguous())

    # simulator hooks -----------------------------------------------------------------------------------------
    def _reset(self) -> torch.Tensor:
        self._data, obs, self._steps, self._key = self._reset_fn(self._key)
        return self._to_torch(obs).clone()

    def _step(self, action: torch.Tensor):
        out = self._step_fn(self._data, self._steps, self._key, self._to_jax(action))
        self._data, self._steps, self._key = out[:3]
        next_obs, reward, terminated, truncated, final_obs = (self._to_torch(x) for x in out[3:])
        return next_obs, reward.clone(), terminated.clone(), truncated.clone(), final_obs

    def _sim_state(self) -> dict[str, Any]:
        data, steps = self._data, self._steps
        if data is None:  # not reset yet: the state a reset would start from, the env itself untouched
            data, _, steps, _ = self._reset_fn(self._key)
        leaves = self._jax.tree_util.tree_leaves(data)
        return {"data": [torch.from_numpy(np.array(x)) for x in leaves],
                "steps": torch.from_numpy(np.array(steps)), "key": torch.from_numpy(np.array(self._key))}

    def _load_sim_state(self, state: dict[str, Any]) -> None:
        jax = self._jax
        if self._data is None:
            self._reset()
        leaves, treedef = jax.tree_util.tree_flatten(self._data)
        saved = state["data"]
        if not isinstance(saved, list) or len(saved) != len(leaves):
            raise ValueError(f"{self.env_id}: the saved simulator state has {len(saved)} arrays, this env "
                             f"{len(leaves)} (saved by another mujoco-mjx version, or damaged)")  # fmt: skip
        restored = []
        for i, (leaf, value) in enumerate(zip(leaves, saved)):
            dst = torch.from_numpy(np.array(leaf))  # a host copy to check against (shape and dtype)
            load_tensor(dst, value, f"{self.env_id}'s simulator array {i}")
            restored.append(jax.device_put(dst.numpy(), self._jdev))
        self._data = jax.tree_util.tree_unflatten(treedef, restored)
        for name in ("steps", "key"):
            dst = torch.from_numpy(np.array(getattr(self, f"_{name}")))
            load_tensor(dst, state[name], f"{self.env_id}'s {name}")
            setattr(self, f"_{name}", jax.device_put(dst.numpy(), self._jdev))

    def close(self) -> None:
        self._data = self._steps = None


#: the tasks of backend "mjx", by id
MJX_TASKS = {"MJX-Humanoid-v0": MjxHumanoid}
