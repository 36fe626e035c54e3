"""The device env contract (fastsac.data.device_env) and its torch tasks (fastsac.data.torch_envs): Pendulum-v1
simulated in torch against gymnasium's own env, the on-device episode tally against a host recount, the state
round trip, and the errors."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
import torch

from fastsac.data import envs
from fastsac.data.device_env import RECENT, DeviceVecEnv, EpisodeTally
from fastsac.data.torch_envs import TorchPendulum


def gym_pendulums(env: TorchPendulum) -> list:
    """One gymnasium Pendulum-v1 per env of ``env``, set to its current state."""
    out = []
    for i in range(env.num_envs):
        g = gymnasium.make("Pendulum-v1")
        g.reset(seed=i)
        g.unwrapped.state = np.array([float(env.th[i]), float(env.thdot[i])])
        out.append(g)
    return out


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_torch_pendulum_steps_as_gymnasium(dtype):
    """From the same states and actions (clipped and rescaled from [-1, 1] as the host envs do), observations,
    rewards and time limits match gymnasium's Pendulum-v1: over 2.5 episodes bit for bit with a float64 state; with
    the default float32 state each step to float32 rounding (gymnasium restarted from the torch env's state after
    every step, since the rounding grows along a chaotic swing)."""
    n = 6
    env = TorchPendulum("Pendulum-v1", n, seed=3, device=torch.device("cpu"), dtype=dtype)
    env.reset()
    gyms = gym_pendulums(env)
    rng = np.random.default_rng(0)
    worst_obs = worst_reward = 0.0
    ends = 0
    for t in range(500):
        action = torch.tensor(rng.uniform(-1.3, 1.3, (n, 1)), dtype=torch.float32)
        res = env.step(action)
        for i, g in enumerate(gyms):
            obs, reward, terminated, truncated, _ = g.step((np.clip(action[i].numpy(), -1, 1) * 2.0))
            assert not terminated and not bool(res.terminated[i])
            assert truncated == bool(res.truncated[i]), (t, i)
            worst_obs = max(worst_obs, float(np.abs(obs - res.final_obs[i].numpy()).max()))
            worst_reward = max(worst_reward, abs(float(np.float32(reward)) - float(res.reward[i])))
            if truncated:  # carry the torch env's fresh state over to the gymnasium env
                ends += 1
                g.reset()
                assert not torch.equal(res.final_obs[i], res.next_obs[i])
            else:
                assert torch.equal(res.final_obs[i], res.next_obs[i])
            if truncated or dtype == torch.float32:
                g.unwrapped.state = np.array([float(env.th[i]), float(env.thdot[i])])
    assert ends == 2 * n
    if dtype == torch.float64:
        assert worst_obs == 0.0 and worst_reward == 0.0
    else:
        # a few float32 ulps of the largest values: |angular velocity| <= 8, the cost terms <= 16.3
        assert 0.0 < worst_obs <= 4 * np.spacing(np.float32(8)) and worst_reward <= 4 * np.spacing(np.float32(16))


def test_torch_pendulum_initial_states_and_seeds():
    env = envs.make("Pendulum-v1", num_envs=4096, seed=5, backend="torch")
    assert isinstance(env, TorchPendulum) and env.device_native and env.backend == "torch"
    obs = env.reset()
    assert obs.shape == (4096, 3) and obs.dtype == torch.float32
    th, thdot = env.th.double(), env.thdot.double()
    assert th.abs().max() <= np.pi and thdot.abs().max() <= 1.0
    assert th.min() < -3.0 and th.max() > 3.0 and thdot.min() < -0.99 and thdot.max() > 0.99  # uniform on the box
    torch.testing.assert_close(obs[:, 0], torch.cos(env.th), rtol=0, atol=0)
    same = envs.make("Pendulum-v1", num_envs=4096, seed=5, backend="torch").reset()
    other = envs.make("Pendulum-v1", num_envs=4096, seed=6, backend="torch").reset()
    assert torch.equal(obs, same) and not torch.equal(obs, other)


def host_tally(rewards: np.ndarray, ended: np.ndarray):
    """The ended episodes' returns and lengths recounted on the host, in the order they ended (env order within a
    step)."""
    ret = np.zeros(rewards.shape[1])
    length = np.zeros(rewards.shape[1], dtype=np.int64)
    returns, lengths = [], []
    for r, e in zip(rewards, ended):
        ret += r
        length += 1
        returns += ret[e].tolist()
        lengths += length[e].tolist()
        ret[e], length[e] = 0.0, 0
    return returns, lengths


@pytest.mark.parametrize("num_envs", [3, 50])  # 50: more episodes end in one step than the ring keeps
def test_episode_tally_matches_a_host_recount(num_envs):
    gen = np.random.default_rng(num_envs)
    steps = 40
    rewards = gen.normal(size=(steps, num_envs))
    ended = gen.random((steps, num_envs)) < 0.3
    ended[17] = True  # every env at once
    tally = EpisodeTally(num_envs, torch.device("cpu"))
    drained = []
    for t in range(steps):
        tally.update(torch.tensor(rewards[t], dtype=torch.float32), torch.tensor(ended[t]))
        if t in (10, 17, steps - 1):
            drained.append(tally.drain())
    returns, lengths = host_tally(rewards.astype(np.float32).astype(np.float64), ended)
    counts = [int(ended[:11].sum()), int(ended[11:18].sum()), int(ended[18:].sum())]
    assert [w.count for w in drained] == counts
    starts = np.cumsum([0] + counts)
    for w, a, b in zip(drained, starts[:-1], starts[1:]):
        np.testing.assert_allclose(w.return_sum, sum(returns[a:b]), rtol=1e-12)
        assert w.length_sum == sum(lengths[a:b])
        assert w.recent == pytest.approx(returns[max(a, b - RECENT):b], rel=1e-12)
    empty = tally.drain()
    assert (empty.count, empty.return_sum, empty.length_sum, empty.recent) == (0, 0.0, 0, [])


def test_state_round_trip_continues_bit_for_bit():
    a = envs.make("Pendulum-v1", num_envs=5, seed=1, backend="torch")
    a.reset()
    gen = torch.Generator().manual_seed(0)
    actions = [torch.rand(5, 1, generator=gen) * 2 - 1 for _ in range(400)]
    for act in actions[:250]:
        a.step(act)
    state = a.state_dict()
    b = envs.make("Pendulum-v1", num_envs=5, seed=99, backend="torch")
    b.load_state_dict(state)  # no reset needed: the state is a whole env
    for act in actions[250:]:
        ra, rb = a.step(act), b.step(act)
        for x, y in zip(ra[:5], rb[:5]):
            assert torch.equal(x, y)
    wa, wb = a.drain_episodes(), b.drain_episodes()
    assert wa == wb and wa.count == 10


def test_contract_errors():
    """(Bad actions: tests/data/test_envs.py's test_bad_actions, run on this backend too.)"""
    env = envs.make("Pendulum-v1", num_envs=2, seed=0, backend="torch")
    env.reset()
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        env.step(np.zeros((2, 1), dtype=np.float32))  # a device env takes tensors only
    res = env.step(torch.full((2, 1), 7.0))  # clipped, not refused
    assert res.reward.shape == (2,) and res.reward.dtype == torch.float32
    with pytest.raises(ValueError, match="not a task of backend='torch'"):
        envs.make("HalfCheetah-v5", backend="torch")
    with pytest.raises(ValueError, match="Did you mean: 'Pendulum-v1'"):
        envs.make("Pendulum-v0", backend="torch")
    with pytest.raises(ValueError, match="finite"):
        DeviceVecEnv("X", 1, 0, torch.device("cpu"), obs_dim=1, action_low=[-np.inf], action_high=[1.0],
                     max_episode_steps=None)  # fmt: skip


def test_actions_rescale_on_the_device_like_the_host_map():
    """[-1, 1] -> the env's bounds, clipped, as ``spaces.ActionMap`` does for host envs."""
    env = envs.make("Pendulum-v1", num_envs=4, seed=0, backend="torch")
    a = torch.tensor([[-3.0], [-0.5], [0.25], [1.5]])
    torch.testing.assert_close(env._env_action(a), torch.tensor([[-2.0], [-1.0], [0.5], [2.0]]), rtol=0, atol=0)


def test_privileged_pendulum_observations_are_the_policys_then_the_critics():
    """``privileged_critic=True``: the policy's three features, as without it, then the wrapped angle over pi and
    the share of the 200 steps left (0 in the final observation of a truncated episode); a host env refuses it."""
    plain = envs.make("Pendulum-v1", num_envs=3, seed=4, backend="torch")
    priv = envs.make("Pendulum-v1", num_envs=3, seed=4, backend="torch", privileged_critic=True)
    assert (plain.obs_dim, plain.policy_obs_dim, priv.obs_dim, priv.policy_obs_dim) == (3, None, 5, 3)
    obs, pobs = plain.reset(), priv.reset()
    torch.testing.assert_close(pobs[:, :3], obs, rtol=0, atol=0)
    angle = torch.atan2(pobs[:, 1].double(), pobs[:, 0].double()) / np.pi
    torch.testing.assert_close(pobs[:, 3].double(), angle, rtol=0, atol=1e-6)
    assert torch.equal(pobs[:, 4], torch.ones(3))
    gen = torch.Generator().manual_seed(0)
    for step in range(1, 201):
        action = torch.rand(3, 1, generator=gen) * 2 - 1
        res, pres = plain.step(action), priv.step(action)
        torch.testing.assert_close(pres.next_obs[:, :3], res.next_obs, rtol=0, atol=0)
        torch.testing.assert_close(pres.final_obs[:, :3], res.final_obs, rtol=0, atol=0)
        if step < 200:
            torch.testing.assert_close(pres.next_obs[:, 4], torch.full((3,), 1 - step / 200), rtol=0, atol=1e-6)
    assert bool(pres.truncated.all()) and torch.equal(pres.final_obs[:, 4], torch.zeros(3))
    assert torch.equal(pres.next_obs[:, 4], torch.ones(3))  # the next episodes start with all their time left
    with pytest.raises(ValueError, match="privileged critic observations come from a device env"):
        envs.make("Pendulum-v1", num_envs=1, backend="gymnasium", privileged_critic=True)
