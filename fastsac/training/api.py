"""The public entry points of training: :func:`train` a new run, :func:`resume` an interrupted one (exactly where it
stopped), and :func:`~fastsac.training.evaluation.evaluate` a run's checkpoint. All three are re-exported by
:mod:`fastsac.training` (``from fastsac.training import train, resume, evaluate``) and by :mod:`fastsac`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from fastsac.training.checkpoint import CheckpointError, check_config
from fastsac.training.config import (
    RESUME_MUTABLE,
    ConfigError,
    TrainConfig,
    config_from_dict,
    config_to_dict,
    default_run_dir,
)
from fastsac.training.resolve import TorchThreads, seed_everything
from fastsac.training.rundir import CHECKPOINT_FILE, CONFIG_FILE, SUMMARY_FILE, check_new_run_dir, load_run, write_json
from fastsac.training.session import RunResult, Session

__all__ = ["resume", "train"]


def train(config: TrainConfig | None = None, **overrides: Any) -> RunResult:
    """Train SAC as described by ``config`` (default: Pendulum-v1) and return a :class:`RunResult`.

    ``overrides`` are TrainConfig fields (``train(total_steps=5000, learner={"actor_lr": 1e-3})``). The run directory
    (``config.out`` or ``runs/<env>-<seed>-<time>``) must not exist or be empty: an existing run is never
    overwritten (resume it instead). Nothing is written before the config, env id and buffer size are checked.
    Raises :class:`TrainingInterrupted` after writing a checkpoint when stopped with Ctrl-C.
    """
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise TypeError(f"train: config must be a TrainConfig, got {type(config).__name__}")
    if overrides:
        config = config_from_dict(overrides, config, where="train() keyword arguments")
    config.validate()
    run_dir = Path(config.out) if config.out else default_run_dir(config)
    check_new_run_dir(run_dir)
    config = dataclasses.replace(config, out=str(run_dir))
    with TorchThreads(config.threads):
        seed_everything(config.seed)
        session = Session(config, run_dir)  # env, learner, buffer: fail here, before anything is written
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / CONFIG_FILE, config_to_dict(config))
        return session.run()


def resume(run_dir: str | os.PathLike, **overrides: Any) -> RunResult:
    """Continue the run in ``run_dir`` from ``checkpoints/latest.pt`` exactly where it stopped.

    ``overrides`` may change only the fields in :data:`fastsac.training.config.RESUME_MUTABLE` (e.g. ``total_steps`` to
    extend a run); any other difference from the checkpoint's configuration raises :class:`CheckpointError`.
    A finished run is extended when ``total_steps`` is raised, otherwise its result is returned unchanged.
    """
    run_dir, ckpt = load_run(run_dir)
    saved = ckpt["config"]
    try:
        config = config_from_dict(saved, where=f"{run_dir / CHECKPOINT_FILE} config")
    except ConfigError as exc:
        raise CheckpointError(f"the checkpoint's configuration is not usable by this fastsac: {exc}") from exc
    if "out" in overrides and Path(overrides["out"]) != run_dir:
        raise ConfigError(f"a resumed run is written into its own directory ({run_dir}); do not pass out/--out")
    # The saved configuration with every field this fastsac has (a checkpoint from before a field existed ran with
    # its default), so that only real differences are reported.
    saved = config_to_dict(config)
    config = config_from_dict(overrides, config, where="resume overrides")
    config = dataclasses.replace(config, out=str(run_dir))
    check_config(saved, config_to_dict(config), RESUME_MUTABLE, source=str(run_dir))
    config.validate()
    step = int(ckpt["step"])
    if step >= config.total_steps:
        summary_path = run_dir / SUMMARY_FILE
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
        if summary.get("finished"):
            return RunResult(
                run_dir=run_dir, total_steps=step, final_eval_return=summary.get("final_eval_return"),
                final_eval_std=summary.get("final_eval_std"), sps=summary.get("sps") or 0.0,
                wall_time=summary.get("wall_time") or 0.0, summary=summary,
            )  # fmt: skip
    # replay: the envs are re-created with the seed the recorded actions start from. reset: new episodes from a seed
    # of their own (not a repeat of the run's first episodes); the action log restarts there, so a later replay
    # resume reproduces the envs from this point on.
    if config.resume_env == "replay":
        env_seed = int(ckpt["env"].get("seed", config.seed))
    else:
        env_seed = (config.seed * 1_000_003 + step + 1) % 2**31
    with TorchThreads(config.threads):
        session = Session(config, run_dir, env_seed=env_seed, compile_decision=ckpt.get("compile_decision"))
        try:
            session.restore(ckpt)
        except BaseException:
            session.env.close()
            raise
        # A resume_env override applies to this resume only; the run keeps its own setting for later resumes.
        session.config = dataclasses.replace(config, resume_env=saved.get("resume_env", config.resume_env))
        write_json(run_dir / CONFIG_FILE, config_to_dict(session.config))
        return session.run(resume_step=step)
