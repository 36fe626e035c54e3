"""The public entry points of training: :func:`train` a new run, :func:`resume` an interrupted one (exactly where it
stopped), and :func:`~fastsac.training.evaluation.evaluate` a run's checkpoint. All three are re-exported by
:mod:`fastsac.training` (``from fastsac.training import train, resume, evaluate``) and by :mod:`fastsac`.

Started by torchrun with several processes, :func:`train` and :func:`resume` run data-parallel
(``fastsac.training.distributed``): rank 0 decides what happens to the run directory and the others follow, and a
step that fails on one rank fails on all. Under torchrun a ``train`` whose ``--out`` already holds a checkpoint of
the same run resumes it, so a job restarted by ``--max-restarts`` (or requeued) continues by itself.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from fastsac.training.checkpoint import check_config
from fastsac.training.checkpoint_format import Checkpoint
from fastsac.training.config import RESUME_MUTABLE, ConfigError, TrainConfig, config_from_dict, config_to_dict, \
    default_run_dir
from fastsac.training.distributed import Launch
from fastsac.training.evaluation import checked_learner
from fastsac.training.resolve import TorchThreads, seed_everything
from fastsac.training.rundir import CHECKPOINT_FILE, CONFIG_FILE, SUMMARY_FILE, check_new_run_dir, write_json
from fastsac.training.run_log import RunResult
from fastsac.training.scope import RunScope, open_scope
from fastsac.training.session import Session

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
    launch = Launch.from_env()
    if launch.elastic and launch.max_restarts and config.out is None:
        raise ConfigError("torchrun --max-restarts needs --out DIR: a restarted job resumes the run in DIR, and "
                          "a default run directory is a new one each time")
    with TorchThreads(config.threads), open_scope(config, launch) as scope:
        # one directory for all ranks (a default name holds the time)
        run_dir = scope.broadcast(Path(config.out) if config.out else default_run_dir(config))
        config = dataclasses.replace(config, out=str(run_dir))
        start = scope.on_main("checking the run directory", lambda: _how_to_start(run_dir, config, launch))
        if start == "resume":
            if scope.is_main:
                print(f"fastsac train: {run_dir} holds a checkpoint of this run: resuming it "
                      f"(torchrun restart {launch.restart_count})", file=sys.stderr)
            return _resume(run_dir, config_to_dict(config), scope)
        seed_everything(scope.rank_seed(config.seed))
        # env, learner, buffer: fail here, before anything is written
        session = _build(scope, "building its envs, learner and buffer", lambda: Session(config, run_dir, scope))
        if scope.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            write_json(run_dir / CONFIG_FILE, config_to_dict(config))
        return session.run(resume_step=0 if start == "restart" else None)


def _how_to_start(run_dir: Path, config: TrainConfig, launch: Launch) -> str:
    """``new`` (an empty or absent directory), ``resume`` (under torchrun: the directory holds a checkpoint; a
    checkpoint of another configuration is refused by resume's check) or ``restart`` (a restarted torchrun
    attempt of this very run that died before its first checkpoint: start it over in place)."""
    if launch.elastic:
        if (run_dir / CHECKPOINT_FILE).exists():
            return "resume"
        if launch.restart_count and _same_config(run_dir, config):
            return "restart"
    check_new_run_dir(run_dir)
    return "new"


def _same_config(run_dir: Path, config: TrainConfig) -> bool:
    try:
        return json.loads((run_dir / CONFIG_FILE).read_text()) == json.loads(json.dumps(config_to_dict(config)))
    except (OSError, ValueError):
        return False


def _build(scope: RunScope, what: str, make: Callable[[], Session],
           restore: Callable[[Session], None] | None = None) -> Session:
    """A session from ``make()``, then ``restore(session)``, its envs closed if that fails. Data parallel: each step
    succeeds on every rank or fails on all; in between the learner becomes a replica (rank 0's state broadcast,
    averaged gradients), and after a restore the replicas are checked to be identical."""
    session = scope.agreed(what, make, cleanup=lambda s: s.env.close())
    scope.make_replica(session.learner)  # before the restore: a replica is made of a fresh learner
    if restore is None:
        return session
    try:
        scope.agreed(what, lambda: restore(session))
    except BaseException:
        session.env.close()
        raise
    session.resume_exact = scope.restored(session.learner, session.resume_exact)
    return session


def resume(run_dir: str | os.PathLike, **overrides: Any) -> RunResult:
    """Continue the run in ``run_dir`` from ``checkpoints/latest.pt`` exactly where it stopped.

    ``overrides`` may change only the fields in :data:`fastsac.training.config.RESUME_MUTABLE` (e.g. ``total_steps`` to
    extend a run); any other difference from the checkpoint's configuration raises :class:`CheckpointError`.
    A finished run is extended when ``total_steps`` is raised, otherwise its result is returned unchanged.
    """
    launch = Launch.from_env()
    context_config = _launch_config(run_dir, overrides) if launch.world_size > 1 else TrainConfig()
    with open_scope(context_config, launch) as scope:
        return _resume(Path(run_dir), overrides, scope)


def _launch_config(run_dir: str | os.PathLike, overrides: dict[str, Any]) -> TrainConfig:
    """What a resume's process group needs before any checkpoint is read (the device and the collective timeout):
    the run's config.json with the overrides applied."""
    try:
        saved = json.loads((Path(run_dir) / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        saved = {}
    values = {**saved, **overrides}
    return config_from_dict({k: values[k] for k in ("device", "dist_timeout") if k in values}, where="resume")


def _resume(run_dir: Path, overrides: dict[str, Any], scope: RunScope) -> RunResult:
    ckpt = scope.load_checkpoint(run_dir)  # data parallel: this rank's own checkpoint of the committed set
    config = ckpt.config
    if "out" in overrides and Path(overrides["out"]) != run_dir:
        raise ConfigError(f"a resumed run is written into its own directory ({run_dir}); do not pass out/--out")
    # The saved configuration with every field this fastsac has (a checkpoint from before a field existed ran with
    # its default), so that only real differences are reported.
    saved = config_to_dict(config)
    config = config_from_dict(overrides, config, where="resume overrides")
    config = dataclasses.replace(config, out=str(run_dir))
    check_config(saved, config_to_dict(config), RESUME_MUTABLE, source=str(run_dir))
    config.validate()
    step = ckpt.counters.step
    if step >= config.total_steps:
        summary_path = run_dir / SUMMARY_FILE
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
        if summary.get("finished"):
            _check_finished(ckpt, config)
            return dataclasses.replace(RunResult.from_summary(run_dir, summary), total_steps=step)
    # replay: the envs are re-created with the seed the recorded actions start from. reset: new episodes from a seed
    # of their own (not a repeat of the run's first episodes); the action log restarts there, so a later replay
    # resume reproduces the envs from this point on.
    if config.resume_env == "replay":
        env_seed = ckpt.env.seed
    else:
        env_seed = scope.env_seed((config.seed * 1_000_003 + step + 1) % 2**31, config.num_envs)
    with TorchThreads(config.threads):
        def make() -> Session:
            return Session(config, run_dir, scope, env_seed=env_seed, decisions=ckpt.decisions)

        session = _build(scope, "restoring its checkpoint", make, restore=lambda s: s.restore(ckpt))
        # A resume_env override applies to this resume only; the run keeps its own setting for later resumes.
        session.config = dataclasses.replace(config, resume_env=ckpt.config.resume_env)
        if scope.is_main:
            write_json(run_dir / CONFIG_FILE, config_to_dict(session.config))
        return session.run(resume_step=step)


def _check_finished(ckpt: Checkpoint, config: TrainConfig) -> None:
    """A finished run's result is returned as it is, once its checkpoint was checked as an evaluation checks it (a
    learner on the CPU: a check of shapes, not a run), so that a damaged checkpoint is reported here too."""
    checked_learner(ckpt, dataclasses.replace(config, device="cpu"), torch.device("cpu"))
