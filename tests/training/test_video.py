"""Videos of a policy (fastsac.training.video): the camera follows the agent, and errors say what is wrong.

moviepy (the ``video`` extra) is part of the ``test`` extra that scripts/setup.sh installs, so nothing here skips
for its absence; only a machine without a working OpenGL backend skips the rendering checks."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from fastsac.agents import SACLearner
from fastsac.training.video import make_rendering_env, record_video

# Every locomotion task with a shipped preset that gymnasium can render (the DMC presets are EnvPool-only).
LOCOMOTION = ["HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5", "Humanoid-v5"]
MOVED = 20.0  # metres along x: about where a HalfCheetah with return ~5800 is 4 s into its episode


def _agent_fraction(env) -> float:
    """The share of the frame the agent's pixels cover: the frame against the same frame with every geom of the
    agent (all but the world body's: floor, walls) made transparent."""
    model = env.unwrapped.model
    with_agent = env.render().astype(np.int32)
    rgba = model.geom_rgba.copy()
    model.geom_rgba[model.geom_bodyid != 0, 3] = 0.0
    try:
        without = env.render().astype(np.int32)
    finally:
        model.geom_rgba[:] = rgba
    return float((np.abs(with_agent - without).sum(-1) > 30).mean())


def _rendered_after_moving(env) -> float:
    import mujoco

    env.reset(seed=0)
    env.unwrapped.data.qpos[0] += MOVED  # every one of these models has its root's x position first
    mujoco.mj_forward(env.unwrapped.model, env.unwrapped.data)
    return _agent_fraction(env)


def _renderer_or_skip(env_id):
    try:
        env = make_rendering_env(env_id)
        env.reset(seed=0)
        env.render()
    except RuntimeError as exc:  # the translated "no working OpenGL backend" error
        pytest.skip(f"no working OpenGL backend here: {exc}")
    return env


@pytest.mark.parametrize("env_id", LOCOMOTION)
def test_the_camera_follows_the_agent(env_id):
    """Late in an episode (the agent 20 m from where it began) the agent is still in the frame."""
    env = _renderer_or_skip(env_id)
    try:
        start = _agent_fraction(env)
        late = _rendered_after_moving(env)
    finally:
        env.close()
    assert start > 0.01, f"{env_id}: the agent covers only {start:.2%} of the first frame"
    assert late > 0.5 * start, f"{env_id}: {MOVED} m on, the agent covers {late:.2%} of the frame (start {start:.2%})"


def test_the_check_sees_an_agent_leave_gymnasiums_default_camera():
    """The same measurement on gymnasium's default free camera: the agent has left the frame (the defect the
    tracking camera fixes), so the test above can fail."""
    import gymnasium

    _renderer_or_skip("HalfCheetah-v5").close()
    env = gymnasium.make("HalfCheetah-v5", render_mode="rgb_array")
    try:
        env.reset(seed=0)
        assert _agent_fraction(env) > 0.01
        assert _rendered_after_moving(env) < 0.001
    finally:
        env.close()


def test_video_errors_blame_rendering_only_for_the_envs_calls(tmp_path):
    """A policy that fails inside the episode loop raises its own error, not the OpenGL advice (that advice once
    wrapped the whole loop); a missing renderer package is an ImportError saying what to install."""
    wrong_obs_dim = SACLearner(3, 6)  # HalfCheetah observations have 17 entries
    try:
        record_video(wrong_obs_dim, "HalfCheetah-v5", 1, 0, tmp_path / "v1", "cpu")
    except RuntimeError as exc:
        policy_error = "shapes cannot be multiplied" in str(exc)
        if not policy_error:  # the env itself could not render here: nothing to check about the policy's error
            pytest.skip(f"no working OpenGL backend here: {exc}")
        assert "OpenGL" not in str(exc), f"the policy's own error was reported as a rendering error: {exc}"
    else:
        pytest.fail("a policy with the wrong input size must fail")
    if importlib.util.find_spec("pygame") is None:
        with pytest.raises(ImportError, match="pygame"):
            record_video(SACLearner(3, 1), "Pendulum-v1", 1, 0, tmp_path / "v2", "cpu")


def test_record_video_encodes_one_file_per_episode(tmp_path):
    """The whole path with moviepy: an untrained policy drops InvertedPendulum's pole within a short episode, and
    the episode is written as an mp4 that holds frames."""
    _renderer_or_skip("InvertedPendulum-v5").close()
    returns, lengths = record_video(SACLearner(4, 1), "InvertedPendulum-v5", 1, 0, tmp_path / "videos", "cpu")
    assert len(returns) == len(lengths) == 1 and 0 < lengths[0] <= 1000
    (video,) = (tmp_path / "videos").glob("*.mp4")
    assert video.stat().st_size > 1000, f"{video} holds {video.stat().st_size} bytes"
