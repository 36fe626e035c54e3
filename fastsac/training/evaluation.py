"""Evaluation: the deterministic policy on fresh, separately seeded envs.

:func:`evaluate_policy` is what the training loop calls every ``eval_every`` steps (envs created anew each time and
seeded ``seed + EVAL_SEED_OFFSET``, so evaluation never disturbs training); :func:`evaluate` evaluates a run
directory's latest checkpoint (``fastsac eval RUN``), optionally recording videos (``fastsac.training.video``),
after checking the whole checkpoint against the learner it is loaded into (:func:`checked_learner`, which a resume
of a finished run uses too): a checkpoint that does not fit is a CheckpointError, never a wrong evaluation.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fastsac.agents import make_learner
from fastsac.data import make as make_env
from fastsac.data.device_env import global_generators_kept
from fastsac.training.checkpoint_check import loading
from fastsac.training.checkpoint_format import Checkpoint, read_checkpoint
from fastsac.training.config import TrainConfig
from fastsac.training.decisions import eval_learner_config
from fastsac.training.resolve import TorchThreads, resolve_device
from fastsac.training.rundir import CHECKPOINT_FILE, run_directory

__all__ = ["EVAL_SEED_OFFSET", "EvalResult", "checked_learner", "evaluate", "evaluate_policy"]

EVAL_SEED_OFFSET = 1_000_000


@dataclass
class EvalResult:
    """What :func:`evaluate` returns."""

    mean_return: float
    std_return: float
    returns: list[float]
    lengths: list[int]
    step: int  #: the training step of the evaluated checkpoint
    video_dir: Path | None = None
    device: str = "cpu"  #: where the policy ran


def evaluate_policy(
    learner,
    env_id: str,
    episodes: int,
    seed: int,
    *,
    env_backend: str = "auto",
    device: torch.device | str = "cpu",
    max_steps: int = 100_000,
    privileged_critic: bool = False,
) -> tuple[list[float], list[int]]:
    """Deterministic evaluation: the first episode of each of ``episodes`` parallel envs, deterministic policy.

    Returns (returns, lengths) in env order. The envs are created here (seeded ``seed``) and closed afterwards;
    the global random generators are left as they were.
    """
    with global_generators_kept(device):  # a simulator drawing from them (mjlab's resets) leaves training's alone
        return _evaluate_episodes(learner, env_id, episodes, seed, env_backend, device, max_steps, privileged_critic)


def _evaluate_episodes(learner, env_id, episodes, seed, env_backend, device, max_steps, privileged_critic):
    env = make_env(env_id, num_envs=episodes, seed=seed, backend=env_backend, device=device,
                   privileged_critic=privileged_critic)  # the observations the learner was trained on
    try:
        obs = env.reset()
        returns = np.zeros(episodes, dtype=np.float64)
        lengths = np.zeros(episodes, dtype=np.int64)
        running = np.ones(episodes, dtype=bool)
        for _ in range(max_steps):
            res = env.step(learner.act(obs, deterministic=True))
            reward = res.reward.double().cpu().numpy()
            ended = (res.terminated | res.truncated).cpu().numpy()
            returns[running] += reward[running]
            lengths[running] += 1
            running &= ~ended
            if not running.any():
                break
            obs = res.next_obs
        else:
            raise RuntimeError(
                f"evaluation of {env_id}: {int(running.sum())} episode(s) did not end within {max_steps} steps; "
                "the env needs a time limit"
            )
    finally:
        env.close()
    return returns.tolist(), lengths.tolist()


def evaluate(
    run_dir: str | os.PathLike,
    episodes: int = 10,
    video: bool = False,
    *,
    seed: int | None = None,
    device: str | None = None,
) -> EvalResult:
    """Evaluate the deterministic policy of the run's latest checkpoint for ``episodes`` episodes.

    ``seed`` defaults to the run's evaluation seed (``seed + 1_000_000``), so the result matches the run's own last
    evaluation. With ``video=True`` the episodes are instead played one after another in a gymnasium env with
    ``render_mode="rgb_array"`` and recorded with ``gymnasium.wrappers.RecordVideo`` into ``run_dir/videos`` (needs
    ``moviepy``; MuJoCo rendering needs an OpenGL backend such as ``MUJOCO_GL=egl``).

    A checkpoint from any device evaluates on any other: ``device`` defaults to the run's own, or to the CPU where
    the run trained on CUDA and this machine has none.
    """
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be an int >= 1, got {episodes!r}")
    run_dir = run_directory(run_dir)
    ckpt = read_checkpoint(run_dir / CHECKPOINT_FILE, run_dir)
    config = ckpt.config
    if device is not None:
        config = dataclasses.replace(config, device=device)
    elif config.resolved_device().startswith("cuda") and not torch.cuda.is_available():
        config = dataclasses.replace(config, device="cpu")  # a GPU run evaluated where there is no GPU
    dev = resolve_device(config)
    with TorchThreads(config.threads):
        return _evaluate_run(run_dir, ckpt, config, dev, episodes, video, seed)


def checked_learner(ckpt: Checkpoint, config: TrainConfig, device: torch.device):
    """A learner of the checkpoint's run on ``device`` (eager update) holding the checkpoint's learner part, loaded
    once the whole checkpoint was checked against it (``Checkpoint.check_fits``)."""
    probe = make_env(config.env_id, num_envs=1, seed=0, backend=config.env_backend, device=device,
                     privileged_critic=config.privileged_critic)
    try:
        learner = make_learner(probe.obs_dim, probe, eval_learner_config(config), device,
                               policy_obs_dim=probe.policy_obs_dim)
        ckpt.check_fits(learner.state_dict(), probe)
    finally:
        probe.close()
    with loading(ckpt.path, "learner"):
        learner.load_state_dict(ckpt.learner)
    return learner


def _no_video(config: TrainConfig) -> str | None:
    """Why a run's policy cannot be filmed in a gymnasium env (``--video``), or None."""
    if config.env_backend in ("mjlab", "mjx"):
        return (f"videos are recorded in gymnasium envs, and {config.env_id} is a task of backend "
                f"{config.env_backend!r} (render it with that simulator's own viewer)")
    if config.privileged_critic:
        return ("the run's observations hold privileged critic features (--privileged-critic), which a gymnasium "
                "env does not give")
    return None


def _evaluate_run(run_dir, ckpt: Checkpoint, config, dev, episodes, video, seed) -> EvalResult:
    if video and (reason := _no_video(config)) is not None:
        raise ValueError(f"no video for this run: {reason}; evaluate it without --video")
    learner = checked_learner(ckpt, config, dev)
    eval_seed = config.seed + EVAL_SEED_OFFSET if seed is None else seed
    video_dir = None
    if video:
        from fastsac.training.video import record_video

        video_dir = run_dir / "videos"
        returns, lengths = record_video(learner, config.env_id, episodes, eval_seed, video_dir, dev)
    else:
        returns, lengths = evaluate_policy(
            learner, config.env_id, episodes, eval_seed, env_backend=config.env_backend, device=dev,
            privileged_critic=config.privileged_critic,
        )
    return EvalResult(
        mean_return=float(np.mean(returns)),
        std_return=float(np.std(returns)),
        returns=returns,
        lengths=lengths,
        step=ckpt.counters.step,
        video_dir=video_dir,
        device=str(dev),
    )
