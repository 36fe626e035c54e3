"""Training: configuration and presets, the session loop, exact resume, evaluation and video, checkpoints and logs.

The public API (also re-exported by :mod:`fastsac`)::

    from fastsac.training import train, resume, evaluate, TrainConfig
    result = train(env_id="Pendulum-v1", total_steps=10_000, seed=1)   # RunResult(run_dir, final_eval_return, ...)

Files: ``config.py`` (TrainConfig), ``presets.py`` (+ ``presets/*.toml``), ``api.py`` (train, resume),
``session.py`` (the loop), ``resume.py`` (action log and replay), ``evaluation.py``, ``video.py``,
``checkpoint.py`` (atomic files, validated loading, RNG states), ``metrics_log.py`` (metrics.csv, TensorBoard,
progress), ``rundir.py`` (the run directory's files), ``resolve.py`` (device, threads, compile), ``interrupt.py``,
``distributed.py`` (data-parallel runs under torchrun) and ``checkpoint_set.py`` (their checkpoints).
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
