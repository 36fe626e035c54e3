"""The mjlab backend (fastsac.data.mjlab_backend) on a CPU: Mjlab-Cartpole-Balance through the device env contract.

mjlab is an optional extra that pins its own mujoco (~=3.11) and brings MuJoCo Warp, so these tests run in the venv
``scripts/check_mjlab.sh`` builds (opt-in, as the README says; run it before every landing). Where mjlab is not
installed they are skipped, with the reason, unless FASTSAC_REQUIRE_MJLAB=1 (set by the script), where that fails.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

if os.environ.get("FASTSAC_REQUIRE_MJLAB") != "1":
    pytest.importorskip("mjlab", reason="mjlab is not installed: bash scripts/check_mjlab.sh runs these tests")

from fastsac.data import envs
from fastsac.data.mjlab_backend import MjlabVecEnv

TASK = "Mjlab-Cartpole-Balance"


def short_episodes(env: MjlabVecEnv, seconds: float) -> int:
    """Shorten the task's time limit (mjlab derives ``max_episode_length`` from ``episode_length_s``)."""
    env._env.cfg.episode_length_s = seconds
    return int(env._env.max_episode_length)


@pytest.fixture(scope="module")
def env():
    e = envs.make(TASK, num_envs=6, seed=3, backend="mjlab", device="cpu")
    yield e
    e.close()


def test_contract(env):
    assert env.device_native and env.backend == "mjlab" and env.state_dict() is None and env.state_note
    assert (env.obs_dim, env.action_dim, env.max_episode_steps) == (5, 1, 1000)
    obs = env.reset()
    assert obs.shape == (6, 5) and obs.dtype == torch.float32 and obs.device.type == "cpu"
    res = env.step(torch.zeros(6, 1))
    for t, dtype in zip(res[:5], (torch.float32, torch.float32, torch.bool, torch.bool, torch.float32)):
        assert t.dtype == dtype and t.shape[0] == 6
    first_reward = res.reward.clone()
    res2 = env.step(torch.ones(6, 1))
    assert torch.equal(res.reward, first_reward), "the reward must be a copy, not mjlab's buffer"
    assert not torch.equal(res2.reward, first_reward)
    assert res.episode_returns.size == 0  # tallied on the device instead


def test_episode_ends_final_obs_and_tally(env):
    """With 10-step episodes: every env truncates together, ``final_obs`` is the last observation (mjlab's terminal
    state), ``next_obs`` the reset one, and the tally's returns are the rewards summed over each episode."""
    limit = short_episodes(env, 0.5)
    assert limit == 10
    env.reset()
    env.drain_episodes()
    gen = torch.Generator().manual_seed(0)
    rewards = []
    for t in range(25):
        res = env.step(torch.rand(6, 1, generator=gen) * 2 - 1)
        rewards.append(res.reward.double())
        ended = (t + 1) % limit == 0
        assert res.truncated.tolist() == [ended] * 6 and not res.terminated.any()
        if ended:
            assert not torch.equal(res.final_obs, res.next_obs)
            torch.testing.assert_close(res.next_obs, env._env.obs_buf["actor"])
        else:
            assert torch.equal(res.final_obs, res.next_obs)
    window = env.drain_episodes()
    sums = torch.stack(rewards)  # (25, 6)
    expected = torch.cat([sums[:10].sum(0), sums[10:20].sum(0)])
    assert window.count == 12 and window.length_sum == 120
    np.testing.assert_allclose(window.return_sum, float(expected.sum()), rtol=1e-12)
    np.testing.assert_allclose(window.recent, expected.tolist(), rtol=1e-12)


def test_seeded_and_leaves_the_global_generators_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    py, npy = __import__("random").getstate(), np.random.get_state()[1].copy()
    a = envs.make(TASK, num_envs=3, seed=7, backend="mjlab", device="cpu")
    assert torch.equal(torch.get_rng_state(), before) and __import__("random").getstate() == py
    assert np.array_equal(np.random.get_state()[1], npy)
    b = envs.make(TASK, num_envs=3, seed=7, backend="mjlab", device="cpu")
    try:
        torch.manual_seed(0)
        oa = a.reset()
        torch.manual_seed(0)
        ob = b.reset()
        assert torch.equal(oa, ob)
        for _ in range(5):
            act = torch.rand(3, 1) * 2 - 1
            torch.manual_seed(1)
            ra = a.step(act)
            torch.manual_seed(1)
            rb = b.step(act)
            assert torch.equal(ra.next_obs, rb.next_obs) and torch.equal(ra.reward, rb.reward)
    finally:
        a.close()
        b.close()


def test_errors():
    with pytest.raises(ValueError, match="Did you mean: 'Mjlab-Cartpole-Balance'"):
        envs.make("Mjlab-Cartpol-Balance", backend="mjlab")
    e = envs.make(TASK, num_envs=2, seed=0, backend="mjlab", device="cpu")
    try:
        with pytest.raises(RuntimeError, match="call reset"):
            e.step(torch.zeros(2, 1))
        e.reset()
        with pytest.raises(ValueError, match=r"shape \(2, 1\)"):
            e.step(torch.zeros(2, 2))
    finally:
        e.close()
