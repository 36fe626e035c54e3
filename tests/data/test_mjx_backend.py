"""The MJX backend (fastsac.data.mjx_backend) on a CPU: MJX-Humanoid-v0 through the device env contract, its physics
against MuJoCo's C engine, its reward and episode ends recomputed from the states it returns, and its exact state.

mujoco-mjx and JAX are an optional extra (``pip install "fastsac[mjx]"``), so these tests run in the venv
``scripts/check_mjx.sh`` builds (opt-in, as the README says). Where they are not installed the tests are skipped,
with the reason, unless FASTSAC_REQUIRE_MJX=1 (set by the script), where that fails. The first env of a process
compiles MJX's step for ~1.5 min on this CPU (the script keeps JAX's compilation cache).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

if os.environ.get("FASTSAC_REQUIRE_MJX") != "1":
    pytest.importorskip("mujoco.mjx", reason="mujoco-mjx is not installed: bash scripts/check_mjx.sh runs these tests")
    pytest.importorskip("jax", reason="JAX is not installed: bash scripts/check_mjx.sh runs these tests")

import mujoco

from fastsac.data import envs
from fastsac.data.mjx_backend import MjxHumanoid

TASK, N = "MJX-Humanoid-v0", 4


@pytest.fixture(scope="module")
def env():
    e = envs.make(TASK, num_envs=N, seed=5, backend="mjx", device="cpu")
    e.reset()
    yield e
    e.close()


class _Converged(MjxHumanoid):
    """The task with its constraint solver run to convergence: MJX's float32 and C's float64 then differ by
    rounding only (at the task's 6 iterations the unconverged solvers' paths part by up to ~6e-3 rad in 5 steps)."""

    SOLVER_ITERATIONS = 100


def _c_model(iterations=6):
    from pathlib import Path

    from mujoco import mjx

    model = mujoco.MjModel.from_xml_path(str(Path(mjx.__file__).parent / "test_data" / "humanoid" / "humanoid.xml"))
    model.opt.solver = mujoco.mjtSolver.mjSOL_CG
    model.opt.iterations = model.opt.ls_iterations = iterations
    return model


def _physics(env):
    """Each env's qpos, qvel and solver warm start (float64 host copies of the batched ``mjx.Data``)."""
    data = env._data
    return [np.array(getattr(data, name), dtype=np.float64) for name in ("qpos", "qvel", "qacc_warmstart")]


def test_contract(env):
    assert env.device_native and env.backend == "mjx" and env.state_note is None
    assert (env.obs_dim, env.action_dim, env.max_episode_steps) == (336, 21, 1000)
    assert np.all(env.action_low == -1.0) and np.all(env.action_high == 1.0)
    res = env.step(torch.zeros(N, 21))
    for t, dtype in zip(res[:5], (torch.float32, torch.float32, torch.bool, torch.bool, torch.float32)):
        assert t.dtype == dtype and t.shape[0] == N and t.device.type == "cpu"
    assert res.next_obs.shape == res.final_obs.shape == (N, 336) and res.episode_returns.size == 0
    with pytest.raises(ValueError, match=r"must have shape \(4, 21\)"):
        env.step(torch.zeros(N, 20))


def test_one_step_matches_mujocos_c_engine_and_the_reward_formula():
    """From the env's state, MuJoCo's C engine (float64, the same solver settings, both run to convergence) takes
    the same 5 physics steps with the same controls: MJX's float32 state agrees to float32 precision, and the reward
    is 1.25 x the centre of mass's forward velocity + 5 - 0.1 |a|^2 computed from C's states."""
    model = _c_model(iterations=100)
    env = _Converged(N, 7, torch.device("cpu"))
    env.reset()
    env.step(torch.zeros(N, 21))  # a step in, so the warm start is not zero
    qpos0, qvel0, warm0 = _physics(env)
    action = torch.rand(N, 21, generator=torch.Generator().manual_seed(0)) * 2 - 1
    res = env.step(action)
    qpos1 = _physics(env)[0]
    data = mujoco.MjData(model)
    for i in range(N):
        data.qpos[:], data.qvel[:], data.ctrl[:] = qpos0[i], qvel0[i], action[i].double().numpy()
        data.qacc_warmstart[:] = warm0[i]
        mujoco.mj_forward(model, data)
        com_before = data.subtree_com[1, 0]
        for _ in range(5):
            mujoco.mj_step(model, data)
        np.testing.assert_allclose(qpos1[i], data.qpos, atol=1e-4)
        velocity = (data.subtree_com[1, 0] - com_before) / (5 * model.opt.timestep)
        expected = 1.25 * velocity + 5.0 - 0.1 * float((action[i].double() ** 2).sum())
        assert abs(float(res.reward[i]) - expected) < 1e-2, (i, float(res.reward[i]), expected)
        assert not bool(res.terminated[i]) and 1.0 < data.qpos[2] < 2.0  # the first step stands


def test_falls_and_time_limits_end_episodes_and_reset_those_envs(env):
    """An env whose torso leaves (1, 2) terminates, one at 1000 steps truncates; both restart from a fresh
    perturbed pose (``next_obs``) while ``final_obs`` keeps the last observation; the tally counts them."""
    env.reset()
    env.drain_episodes()
    state = env.state_dict()
    steps = state["sim"]["steps"].clone()
    steps[1] = 999  # env 1 is at its time limit
    state["sim"]["steps"] = steps
    env.load_state_dict(state)
    gen = torch.Generator().manual_seed(1)
    ended_total = 0
    res = env.step(torch.zeros(N, 21))
    assert bool(res.truncated[1]) and not bool(res.terminated[1])
    ended_total += int((res.terminated | res.truncated).sum())
    assert not torch.equal(res.next_obs[1], res.final_obs[1])
    assert abs(float(res.next_obs[1, 0]) - 1.282) < 0.011  # a fresh pose: the torso's height near qpos0's
    fell = False
    for _ in range(200):  # random torques: the humanoid falls within ~20 steps
        res = env.step(torch.rand(N, 21, generator=gen) * 2 - 1)
        ended = res.terminated | res.truncated
        ended_total += int(ended.sum())
        if bool(res.terminated.any()):
            i = int(res.terminated.nonzero()[0])
            height = float(res.final_obs[i, 0])
            assert not 1.0 < height < 2.0 and 1.0 < float(res.next_obs[i, 0]) < 2.0
            fell = True
    assert fell
    assert env.drain_episodes().count == ended_total


def test_state_round_trip_is_exact_and_damaged_states_are_refused(env):
    env.reset()
    gen = torch.Generator().manual_seed(2)
    for _ in range(3):
        env.step(torch.rand(N, 21, generator=gen) * 2 - 1)
    state = env.state_dict()
    actions = [torch.rand(N, 21, generator=gen) * 2 - 1 for _ in range(30)]  # episodes end and restart in these
    first = [env.step(a) for a in actions]
    env.load_state_dict(state)
    again = [env.step(a) for a in actions]
    for a, b in zip(first, again):
        for x, y in zip(a[:5], b[:5]):
            assert torch.equal(x, y)
    short = {**state, "sim": {**state["sim"], "data": state["sim"]["data"][:-1]}}
    count = len(state["sim"]["data"])
    with pytest.raises(ValueError, match=f"saved simulator state has {count - 1} arrays, this env {count}"):
        env.load_state_dict(short)
    wrong = {**state, "sim": {**state["sim"], "steps": torch.zeros(N + 1, dtype=torch.int32)}}
    with pytest.raises(ValueError, match="steps must be a tensor of shape"):
        env.load_state_dict(wrong)


def test_unknown_tasks_are_clear_errors():
    with pytest.raises(ValueError, match="not a task of backend='mjx'.*MJX-Humanoid-v0"):
        envs.make("MJX-Humanoid-v1", num_envs=2, backend="mjx")
    assert isinstance(envs.make(TASK, num_envs=1, backend="mjx"), MjxHumanoid)
