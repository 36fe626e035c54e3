"""fastsac.data.envs: both backends, episode boundaries, rescaling, seeding, errors.

The boundary tests re-derive every transition from the known physics (Pendulum-v1, CartPole-v1): a fake
transition (EnvPool's NEXT_STEP reset step: reward 0, action ignored) or a wrong final/next observation at an
episode boundary fails them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fastsac.data import envs

HAS_ENVPOOL = envs.envpool_available()
needs_envpool = pytest.mark.skipif(not HAS_ENVPOOL, reason="envpool is not importable (pip install envpool)")
BACKENDS = [pytest.param("envpool", marks=needs_envpool), "gymnasium"]


@pytest.fixture(autouse=True)
def _run_in_tmp_path(tmp_path, monkeypatch):
    """MuJoCo appends model-compiler warnings (e.g. the cheetahs' 'settotalmass') to ./MUJOCO_LOG.TXT."""
    monkeypatch.chdir(tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# Reference physics (gymnasium's classic-control equations; EnvPool implements the same ones)


def pendulum_step(obs: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """obs (N, 3) = [cos th, sin th, thdot], torque u (N,) -> (reward (N,), next obs (N, 3))."""
    obs = obs.astype(np.float64)
    th, thdot = np.arctan2(obs[:, 1], obs[:, 0]), obs[:, 2]
    u = np.clip(u.astype(np.float64), -2.0, 2.0)
    norm_th = ((th + np.pi) % (2 * np.pi)) - np.pi
    reward = -(norm_th**2 + 0.1 * thdot**2 + 0.001 * u**2)
    new_thdot = np.clip(thdot + (3 * 10.0 / 2 * np.sin(th) + 3.0 * u) * 0.05, -8.0, 8.0)
    new_th = th + new_thdot * 0.05
    return reward, np.stack([np.cos(new_th), np.sin(new_th), new_thdot], axis=1)


def cartpole_step(obs: np.ndarray, action: np.ndarray) -> np.ndarray:
    x, x_dot, theta, theta_dot = (obs[:, i].astype(np.float64) for i in range(4))
    force = np.where(action == 1, 10.0, -10.0)
    cos, sin = np.cos(theta), np.sin(theta)
    temp = (force + 0.05 * theta_dot**2 * sin) / 1.1
    thetaacc = (9.8 * sin - cos * temp) / (0.5 * (4.0 / 3.0 - 0.1 * cos**2 / 1.1))
    xacc = temp - 0.05 * thetaacc * cos / 1.1
    return np.stack(
        [x + 0.02 * x_dot, x_dot + 0.02 * xacc, theta + 0.02 * theta_dot, theta_dot + 0.02 * thetaacc], axis=1
    )


def check_result_shapes(env: envs.VecEnv, r: envs.StepResult) -> None:
    n, d = env.num_envs, env.obs_dim
    assert r.next_obs.shape == (n, d) and r.next_obs.dtype == torch.float32
    assert r.final_obs.shape == (n, d) and r.final_obs.dtype == torch.float32
    assert r.reward.shape == (n,) and r.reward.dtype == torch.float32
    assert r.terminated.shape == (n,) and r.terminated.dtype == torch.bool
    assert r.truncated.shape == (n,) and r.truncated.dtype == torch.bool
    k = int((r.terminated | r.truncated).sum())
    assert r.episode_returns.shape == (k,) and r.episode_returns.dtype == np.float64
    assert r.episode_lengths.shape == (k,) and r.episode_lengths.dtype == np.int64


# ---------------------------------------------------------------------------------------------------------------
# Episode boundaries


@pytest.mark.parametrize("backend", BACKENDS)
def test_pendulum_truncation_every_transition_is_real(backend):
    n = 3
    env = envs.make("Pendulum-v1", num_envs=n, seed=0, backend=backend)
    assert env.backend == backend and env.max_episode_steps == 200
    g = torch.Generator().manual_seed(0)
    obs = env.reset()
    ep_reward = np.zeros(n)
    boundaries = 0
    for t in range(1, 403):  # two truncations (t = 200, 400) and the steps right after them
        a = torch.rand(n, 1, generator=g) * 2 - 1
        r = env.step(a)
        check_result_shapes(env, r)
        want_reward, want_final = pendulum_step(obs.numpy(), 2.0 * a[:, 0].numpy())  # [-1, 1] -> [-2, 2]
        np.testing.assert_allclose(r.reward.numpy(), want_reward, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(r.final_obs.numpy(), want_final, rtol=0, atol=1e-4)
        ep_reward += r.reward.numpy()
        assert not r.terminated.any()
        if t % 200 == 0:
            boundaries += 1
            assert r.truncated.all()
            # next_obs is a fresh episode: |thdot| <= 1 at reset, unrelated to the final obs
            assert (r.next_obs[:, 2].abs() <= 1.0).all()
            assert not torch.allclose(r.next_obs, r.final_obs)
            np.testing.assert_array_equal(r.episode_lengths, [200] * n)
            np.testing.assert_allclose(r.episode_returns, ep_reward, rtol=1e-5)
            ep_reward[:] = 0
        else:
            assert not r.truncated.any()
            assert torch.equal(r.next_obs, r.final_obs)
            assert len(r.episode_returns) == 0
        obs = r.next_obs
    assert boundaries == 2
    env.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_cartpole_termination_every_transition_is_real(backend):
    n = 4
    env = envs.make("CartPole-v1", num_envs=n, seed=1, backend=backend)
    assert env.is_discrete and env.num_actions == 2 and env.action_dim is None
    g = torch.Generator().manual_seed(1)
    obs = env.reset()
    length = np.zeros(n, dtype=np.int64)
    ended_total = 0
    for _ in range(150):
        a = (torch.rand(n, generator=g) < 0.8).long()  # mostly push right: episodes end within tens of steps
        r = env.step(a)
        check_result_shapes(env, r)
        np.testing.assert_allclose(r.final_obs.numpy(), cartpole_step(obs.numpy(), a.numpy()), atol=1e-4)
        np.testing.assert_array_equal(r.reward.numpy(), np.ones(n, dtype=np.float32))
        length += 1
        term = r.terminated.numpy()
        assert not r.truncated.any()
        if term.any():
            ended_total += int(term.sum())
            fin, nxt = r.final_obs[term].numpy(), r.next_obs[term].numpy()
            assert np.all((np.abs(fin[:, 0]) > 2.4) | (np.abs(fin[:, 2]) > 12 * 2 * math.pi / 360))
            assert np.all(np.abs(nxt) <= 0.05)  # reset state is uniform in [-0.05, 0.05]
            np.testing.assert_array_equal(r.episode_lengths, length[term])
            np.testing.assert_array_equal(r.episode_returns, length[term].astype(np.float64))
            length[term] = 0
        keep = ~term
        assert torch.equal(r.next_obs[keep], r.final_obs[keep])
        obs = r.next_obs
    assert ended_total >= n  # every env ended at least once on average
    env.close()


@needs_envpool
@pytest.mark.filterwarnings("ignore:.*precision lowered by casting")
def test_envpool_raw_autoreset_is_next_step():
    """The fact the wrapper relies on: raw EnvPool 1.2.5 returns a fake reset step after an episode ends, and
    ``reset(env_ids)`` of a subset cancels it for those envs only."""
    import envpool

    env = envpool.make("Pendulum-v1", env_type="gymnasium", num_envs=3, seed=0)
    assert env.metadata["autoreset_mode"].name == "NEXT_STEP"
    env.reset()
    zero = np.zeros((3, 1), np.float32)
    for _ in range(200):
        _, _, _, trunc, info = env.step(zero)
    assert trunc.all() and (info["elapsed_step"] == 200).all()
    reset_obs, reset_info = env.reset(np.array([2, 0], np.int32))
    assert sorted(reset_info["env_id"].tolist()) == [0, 2] and (reset_info["elapsed_step"] == 0).all()
    obs, reward, _, _, info = env.step(zero)
    order = np.argsort(info["env_id"])
    reward, elapsed = reward[order], info["elapsed_step"][order]
    assert elapsed.tolist() == [1, 0, 1]  # envs 0, 2 stepped from the reset obs; env 1 did the fake reset step
    assert reward[1] == 0.0 and reward[0] != 0.0 and reward[2] != 0.0
    env.close()


# ---------------------------------------------------------------------------------------------------------------
# Actions and observations


class _EchoEnv:
    """A gymnasium env whose observation is the action it received (to see the rescaling exactly)."""

    @staticmethod
    def make():
        import gymnasium as gym
        from gymnasium import spaces

        class Echo(gym.Env):
            def __init__(self):
                self.action_space = spaces.Box(np.array([-3.0, 0.0, 10.0]), np.array([1.0, 4.0, 20.0]), dtype=np.float64)
                self.observation_space = spaces.Box(-np.inf, np.inf, (3,), np.float64)

            def reset(self, *, seed=None, options=None):
                super().reset(seed=seed)
                return np.zeros(3), {}

            def step(self, action):
                return np.asarray(action, np.float64), 0.0, False, False, {}

        return Echo()


class _DictObsEnv:
    @staticmethod
    def make():
        import gymnasium as gym
        from gymnasium import spaces

        class DictObs(gym.Env):
            def __init__(self):
                box = lambda *s: spaces.Box(-np.inf, np.inf, s, np.float64)  # noqa: E731
                self.observation_space = spaces.Dict(
                    {"b": box(2), "a": box(), "c": spaces.Dict({"z": box(1), "y": box(2, 1)})}
                )
                self.action_space = spaces.Discrete(3, start=5)
                self.t = 0

            def _obs(self, v):
                return {"b": np.array([v, v + 1]), "a": np.array(v + 2.0), "c": {"z": np.array([v + 3]),
                        "y": np.array([[v + 4], [v + 5]])}}  # fmt: skip

            def reset(self, *, seed=None, options=None):
                super().reset(seed=seed)
                self.t = 0
                return self._obs(0.0), {}

            def step(self, action):
                assert 5 <= int(action) < 8  # Discrete(start=5): the wrapper adds the offset
                self.t += 1
                return self._obs(10.0 * int(action)), 1.0, False, self.t >= 2, {}

        return DictObs()


@pytest.fixture(scope="module")
def test_env_ids():
    import gymnasium as gym

    ids = {"echo": "FastsacTest/Echo-v0", "dict": "FastsacTest/DictObs-v0"}
    gym.register(ids["echo"], entry_point=_EchoEnv.make)
    gym.register(ids["dict"], entry_point=_DictObsEnv.make)
    yield ids
    for i in ids.values():
        gym.envs.registry.pop(i, None)


def test_continuous_actions_are_rescaled_and_clipped(test_env_ids):
    env = envs.make(test_env_ids["echo"], num_envs=4, backend="gymnasium")
    np.testing.assert_array_equal(env.action_low, [-3.0, 0.0, 10.0])
    np.testing.assert_array_equal(env.action_high, [1.0, 4.0, 20.0])
    env.reset()
    a = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0], [0.0, 0.5, -0.5], [-7.0, 1.5, 0.25]])
    r = env.step(a)
    want = [[-3.0, 0.0, 10.0], [1.0, 4.0, 20.0], [-1.0, 3.0, 12.5], [-3.0, 4.0, 16.25]]  # last row clipped
    np.testing.assert_allclose(r.next_obs.numpy(), want, rtol=1e-6)
    r = env.step(a.to(torch.bfloat16))  # all these values are exact in bfloat16
    np.testing.assert_allclose(r.next_obs.numpy(), want, rtol=1e-6)
    env.close()


def test_dict_observations_flatten_in_sorted_key_order_and_discrete_start(test_env_ids):
    env = envs.make(test_env_ids["dict"], num_envs=2, backend="gymnasium")
    assert env.obs_dim == 6 and env.is_discrete and env.num_actions == 3
    np.testing.assert_array_equal(env.reset().numpy(), [[2, 0, 1, 4, 5, 3]] * 2)  # a, b, c.y, c.z
    env.step(torch.tensor([0, 2]))
    r = env.step(torch.tensor([1, 0]))  # truncates at t = 2: final_obs from info["final_obs"] (dicts)
    assert r.truncated.all()
    v = np.array([60.0, 50.0])[:, None]
    np.testing.assert_array_equal(r.final_obs.numpy(), v + np.array([2, 0, 1, 4, 5, 3]))
    np.testing.assert_array_equal(r.next_obs.numpy(), [[2, 0, 1, 4, 5, 3]] * 2)
    env.close()


@needs_envpool
def test_envpool_dmc_dict_observation_is_flattened_in_sorted_key_order():
    import envpool

    env = envs.make("CheetahRun-v1", num_envs=2, seed=5)
    assert env.backend == "envpool" and env.obs_dim == 17 and env.action_dim == 6
    raw = envpool.make("CheetahRun-v1", env_type="gymnasium", num_envs=2, seed=5)
    raw_obs, _ = raw.reset()
    want = np.concatenate([raw_obs["position"], raw_obs["velocity"]], axis=1).astype(np.float32)
    np.testing.assert_array_equal(env.reset().numpy(), want)
    env.close()
    raw.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_attributes_halfcheetah(backend):
    env = envs.make("HalfCheetah-v5", num_envs=2, seed=0, backend=backend)
    assert (env.env_id, env.backend, env.num_envs, env.obs_dim) == ("HalfCheetah-v5", backend, 2, 17)
    assert not env.is_discrete and env.action_dim == 6 and env.num_actions is None
    assert env.max_episode_steps == 1000
    np.testing.assert_array_equal(env.action_low, -np.ones(6))
    np.testing.assert_array_equal(env.action_high, np.ones(6))
    assert env.reset().dtype == torch.float32  # MuJoCo observations come as float64
    env.close()


@needs_envpool
def test_auto_prefers_envpool():
    env = envs.make("Pendulum-v1")
    assert env.backend == "envpool"
    env.close()


def test_auto_falls_back_to_gymnasium_without_envpool(monkeypatch):
    monkeypatch.setattr(envs, "envpool_available", lambda: False)
    monkeypatch.setattr(envs, "envpool_env_ids", lambda: [])
    env = envs.make("Pendulum-v1", num_envs=2)
    assert env.backend == "gymnasium"
    env.close()
    with pytest.raises(ImportError, match="envpool is not installed"):
        envs.make("Pendulum-v1", backend="envpool")


@pytest.mark.parametrize("backend", BACKENDS)
def test_seeding_is_reproducible(backend):
    def rollout(seed):
        env = envs.make("Pendulum-v1", num_envs=2, seed=seed, backend=backend)
        g = torch.Generator().manual_seed(7)
        out = [env.reset()]
        for _ in range(205):  # crosses the boundary: the partial reset is seeded too
            r = env.step(torch.rand(2, 1, generator=g) * 2 - 1)
            out += [r.next_obs, r.final_obs, r.reward]
        env.close()
        return out

    a, b, c = rollout(3), rollout(3), rollout(4)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])
    assert not torch.equal(a[0][0], a[0][1])  # the envs of one pool differ from each other


# ---------------------------------------------------------------------------------------------------------------
# Errors


def test_unknown_env_id_lists_close_matches():
    with pytest.raises(ValueError, match=r"unknown env id 'HalfCheetah-v9'.*'HalfCheetah-v5'"):
        envs.make("HalfCheetah-v9")
    with pytest.raises(ValueError, match=r"'Pendulum-v1'"):
        envs.make("pendulum-v1", backend="gymnasium")
    with pytest.raises(ValueError, match="unknown env id 'NoSuchThing-v0'"):
        envs.make("NoSuchThing-v0")


@needs_envpool
def test_envpool_backend_rejects_gymnasium_only_id(test_env_ids):
    with pytest.raises(ValueError, match="not an EnvPool task"):
        envs.make(test_env_ids["echo"], backend="envpool")


def test_bad_make_arguments():
    with pytest.raises(ValueError, match="num_envs must be >= 1"):
        envs.make("Pendulum-v1", num_envs=0)
    with pytest.raises(TypeError, match="num_envs must be an int"):
        envs.make("Pendulum-v1", num_envs=2.0)
    with pytest.raises(ValueError, match="backend must be one of"):
        envs.make("Pendulum-v1", backend="brax")
    with pytest.raises(TypeError, match="env_id must be a string"):
        envs.make(3)


@pytest.mark.parametrize("backend", [*BACKENDS, "torch"])  # torch: the device env (tests/data/test_device_env.py)
def test_bad_actions(backend):
    env = envs.make("Pendulum-v1", num_envs=2, backend=backend)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(torch.zeros(2, 1))
    env.reset()
    with pytest.raises(ValueError, match=r"shape \(2, 1\)"):
        env.step(torch.zeros(3, 1))
    with pytest.raises(TypeError, match="float"):
        env.step(torch.zeros(2, 1, dtype=torch.long))
    with pytest.raises(TypeError, match="must be a torch.Tensor" if backend == "torch" else "torch.Tensor or numpy"):
        env.step([[0.0], [0.0]])
    env.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_discrete_actions(backend):
    env = envs.make("CartPole-v1", num_envs=2, backend=backend)
    env.reset()
    with pytest.raises(TypeError, match="integer"):
        env.step(torch.zeros(2))
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        env.step(torch.tensor([0, 2]))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        env.step(torch.zeros(2, 1, dtype=torch.long))
    env.close()


@pytest.mark.gpu
@pytest.mark.parametrize("backend", BACKENDS)
def test_outputs_on_cuda(backend):
    env = envs.make("Pendulum-v1", num_envs=2, backend=backend, device="cuda")
    obs = env.reset()
    assert obs.is_cuda
    r = env.step(torch.zeros(2, 1, device="cuda"))
    assert all(t.is_cuda for t in (r.next_obs, r.reward, r.terminated, r.truncated, r.final_obs))
    env.close()


def test_unsupported_spaces_are_rejected():
    with pytest.raises(TypeError, match="observation space Discrete.*not supported"):
        envs.make("FrozenLake-v1", backend="gymnasium")  # Discrete observations
