"""Training: configuration and presets, the session loop, exact resume, evaluation and video, checkpoints and logs.

The public API (also re-exported by :mod:`fastsac`)::

    from fastsac.training import train, resume, evaluate, TrainConfig
    result = train(env_id="Pendulum-v1", total_steps=10_000, seed=1)   # RunResult(run_dir, final_eval_return, ...)

Files: ``config.py`` (TrainConfig), ``presets.py`` (+ ``presets/*.toml``), ``api.py`` (train, resume),
``session.py`` (the loop), ``parts.py`` (the buffer and action layout a run builds), ``decisions.py`` (how the
update runs: the run's side of ``resolve.py``), ``resume.py`` (restoring a session: action log and replay),
``evaluation.py``, ``video.py``, ``checkpoint.py`` (atomic files, the format number, RNG states),
``checkpoint_format.py`` (the checkpoint's parts, read and checked), ``checkpoint_check.py`` (layouts and their
check), ``run_log.py`` (summary.json, metrics rows, progress line), ``metrics_log.py`` (metrics.csv, TensorBoard,
progress bar), ``rundir.py`` (the run directory's files), ``resolve.py`` (device, threads, update), ``interrupt.py``,
``scope.py`` (one process or one rank), ``distributed.py`` (data-parallel runs under torchrun) and
``checkpoint_set.py`` (their checkpoints).
"""

from fastsac.training.api import resume, train
from fastsac.training.checkpoint import CheckpointError
from fastsac.training.config import ConfigError, TrainConfig
from fastsac.training.distributed import DistributedError
from fastsac.training.evaluation import EvalResult, evaluate, evaluate_policy
from fastsac.training.interrupt import TrainingInterrupted
from fastsac.training.presets import resolve_config
from fastsac.training.session import RunResult

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DistributedError",
    "EvalResult",
    "RunResult",
    "TrainConfig",
    "TrainingInterrupted",
    "evaluate",
    "evaluate_policy",
    "resolve_config",
    "resume",
    "train",
]
