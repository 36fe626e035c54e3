"""Videos of the deterministic policy (``fastsac eval RUN --video``): gymnasium envs rendered to ``rgb_array`` and
encoded by ``gymnasium.wrappers.RecordVideo`` (which needs moviepy: ``pip install "fastsac[video]"``).

The camera follows the agent. gymnasium's MuJoCo locomotion envs render from a free camera that stays where the
episode began (a running HalfCheetah leaves the frame after about a second), although every one of their models
(HalfCheetah, Hopper, Walker2d, Ant, Humanoid) defines a camera named ``track`` in ``trackcom`` mode, which moves
with the agent's centre of mass. :func:`make_rendering_env` renders from that camera wherever the model has it.

Observations are flattened and actions mapped by the same code as the training envs (``fastsac.data.spaces``).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch

from fastsac.data.spaces import ActionMap, obs_flattener

__all__ = ["TRACKING_CAMERA", "make_rendering_env", "record_video"]

TRACKING_CAMERA = "track"
MOVIEPY_HINT = (
    'pip install "fastsac[video]" (moviepy); classic-control envs also need pygame: '
    'pip install "gymnasium[classic-control]"'
)


def _is_mujoco(env_id: str) -> bool:
    import gymnasium

    return "mujoco" in str(gymnasium.spec(env_id).entry_point)


@contextlib.contextmanager
def _rendering_errors(env_id: str, is_mujoco: bool):
    """Around an env's own calls: a missing package or a broken OpenGL backend becomes a clear error (an error
    of the policy, outside these calls, is not a rendering error)."""
    from gymnasium.error import DependencyNotInstalled

    try:
        yield
    except DependencyNotInstalled as exc:
        raise ImportError(f"rendering {env_id} needs a package that is not installed: {exc}") from exc
    except Exception as exc:
        if not is_mujoco:
            raise
        raise RuntimeError(
            f"rendering {env_id} with MUJOCO_GL={os.environ.get('MUJOCO_GL')!r} failed ({type(exc).__name__}: "
            f"{exc}); MuJoCo needs a working OpenGL backend: MUJOCO_GL=egl (GPU or Mesa EGL), or "
            "MUJOCO_GL=osmesa with PYOPENGL_PLATFORM=osmesa (needs libosmesa), or glfw with a display"
        ) from exc


def _has_camera(env, name: str) -> bool:
    import mujoco

    model = getattr(env.unwrapped, "model", None)
    return model is not None and mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, name) >= 0


def make_rendering_env(env_id: str):
    """A gymnasium env of ``env_id`` with ``render_mode="rgb_array"``; MuJoCo envs render from the model's tracking
    camera when it has one. Sets ``MUJOCO_GL=egl`` when no display and no backend are configured."""
    import gymnasium

    if env_id not in gymnasium.envs.registry:
        raise ValueError(
            f"--video renders through gymnasium, which has no env {env_id!r} (an EnvPool-only task); "
            "evaluate without --video"
        )
    is_mujoco = _is_mujoco(env_id)
    if is_mujoco and "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
        os.environ["MUJOCO_GL"] = "egl"  # headless: EGL (GPU or Mesa); GLFW needs a display
    with _rendering_errors(env_id, is_mujoco):
        env = gymnasium.make(env_id, render_mode="rgb_array")
        if is_mujoco and _has_camera(env, TRACKING_CAMERA):
            env.close()
            env = gymnasium.make(env_id, render_mode="rgb_array", camera_name=TRACKING_CAMERA)
    return env


def record_video(learner, env_id: str, episodes: int, seed: int, video_dir: Path, device) -> tuple[list, list]:
    """Play ``episodes`` episodes one after another (seeds ``seed``, ``seed + 1``, ...) with the deterministic
    policy and write one video each into ``video_dir``. Returns (returns, lengths)."""
    try:
        import moviepy  # noqa: F401  (RecordVideo's encoder)
    except ImportError as exc:
        raise ImportError(f"--video needs moviepy to encode the videos: {MOVIEPY_HINT}") from exc
    import gymnasium

    env = make_rendering_env(env_id)
    is_mujoco = _is_mujoco(env_id)
    env = gymnasium.wrappers.RecordVideo(
        env, str(video_dir), episode_trigger=lambda _: True, name_prefix="eval", disable_logger=True
    )
    _, flatten = obs_flattener(env.observation_space)
    to_env = ActionMap(env.action_space, env_id)
    returns, lengths = [], []
    try:
        for i in range(episodes):
            with _rendering_errors(env_id, is_mujoco):
                obs, _ = env.reset(seed=seed + i)
            total, length, ended = 0.0, 0, False
            while not ended:
                o = torch.from_numpy(flatten(obs, 1)).to(device)
                a = to_env(learner.act(o, deterministic=True).cpu().numpy(), 1)[0]
                with _rendering_errors(env_id, is_mujoco):
                    obs, reward, terminated, truncated, _ = env.step(int(a) if to_env.is_discrete else a)
                total += float(reward)
                length += 1
                ended = terminated or truncated
            returns.append(total)
            lengths.append(length)
    finally:
        try:
            env.close()
        except Exception:  # a renderer that failed to start can fail again on close; the first error matters
            pass
    return returns, lengths
