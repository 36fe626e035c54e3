"""Training configuration: the :class:`TrainConfig` dataclass and its conversion to and from dicts.

Every field carries ``metadata={"help": ...}``; the command line (:mod:`fastsac.cli`) is generated from these
dataclasses, so the help text lives in one place. The learner's own options are the nested
:class:`fastsac.agents.LearnerConfig` (``config.learner``). Presets and the resolution order (defaults < preset <
flags) are in :mod:`fastsac.training.presets`.

Dicts (presets, overrides, ``config.json``) are checked field by field: unknown keys and wrong types are rejected
with the list of valid keys and the closest match.

The defaults are the Pendulum-v1 setting (``fastsac/training/presets/Pendulum-v1.toml`` holds the same values),
tuned to reach a mean evaluation return of -200 or better in a few minutes on a CPU.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fastsac.agents.config import LearnerConfig

__all__ = [
    "TrainConfig",
    "ConfigError",
    "RESUME_MUTABLE",
    "config_to_dict",
    "config_from_dict",
    "default_run_dir",
    "field_specs",
]

#: LearnerConfig fields that the run sets from its own options (TrainConfig.seed, .update, .backend); they are not
#: separate settings, so presets, overrides and config.json never carry them under ``learner``.
LEARNER_FIELDS_SET_BY_RUN = ("seed", "update", "backend")


class ConfigError(ValueError):
    """A configuration value, preset file or override is not usable; the message says which and why."""


def _help(text: str) -> dict[str, str]:
    return {"help": text}


def pendulum_learner() -> LearnerConfig:
    """The learner part of the defaults (the Pendulum-v1 setting): 2x64 networks, actor and critic lr 1e-3.

    Measured on a 2-core CPU (seeds 0, 1, 2; see docs/training.md): smaller networks than the MuJoCo presets'
    2x256 halve the update time and learn Pendulum just as fast.
    """
    return LearnerConfig(hidden_sizes=(64, 64), actor_lr=1e-3, critic_lr=1e-3)


@dataclass
class TrainConfig:
    """Everything a training run needs. ``train(TrainConfig(...))`` or ``fastsac train --flag value``."""

    env_id: str = field(
        default="Pendulum-v1",
        metadata=_help("environment id: an EnvPool task (HalfCheetah-v5, CheetahRun-v1, ...) or a gymnasium id"),
    )
    env_backend: Literal["auto", "envpool", "gymnasium", "torch", "mjlab", "mjx"] = field(
        default="auto",
        metadata=_help(
            "environment backend: 'auto' uses EnvPool when it has the task, else gymnasium vector envs (both step on "
            "the host); the device envs step on the training device and never copy to the host: 'torch' (fastsac's "
            "torch tasks: Pendulum-v1), 'mjlab' (mjlab's tasks, e.g. Mjlab-Cartpole-Balance; pip install "
            "'fastsac[mjlab]') and 'mjx' (MuJoCo models on MJX: MJX-Humanoid-v0; pip install 'fastsac[mjx]')"
        ),
    )
    privileged_critic: bool = field(
        default=False,
        metadata=_help(
            "asymmetric actor-critic: the critics also see the task's privileged observations, the policy only its "
            "own (a device env whose task has them: --env-backend torch for Pendulum-v1's angle and time left, "
            "mjlab's tasks with a critic observation group; continuous SAC)"
        ),
    )
    num_envs: int = field(default=1, metadata=_help("number of parallel training environments"))
    total_steps: int = field(
        default=10_000,
        metadata=_help("environment steps to train for, summed over all parallel environments"),
    )
    seed: int = field(default=0, metadata=_help("random seed for networks, exploration, replay sampling and envs"))
    device: str = field(
        default="auto",
        metadata=_help("training device: 'auto' (cuda when available, else cpu), 'cpu', 'cuda', 'cuda:1', ..."),
    )
    backend: Literal["auto", "torch", "triton", "cpp"] = field(
        default="auto",
        metadata=_help(
            "fused-op backend for the policy distribution math (see fastsac.ops); 'auto' picks the fastest; 'cpp' is "
            "the C++ extension (CPU and CUDA tensors; formerly named 'cuda')"
        ),
    )
    update: Literal["auto", "eager", "compile", "native"] = field(
        default="auto",
        metadata=_help(
            "how the update runs: eager, compile (torch.compile, one graph; on CUDA also a CUDA graph), native (SAC's "
            "C++ update on a CPU) or auto: on CUDA compile; on a CPU the fast path that applies (native, else "
            "compile) where the run's updates repay its first call, else eager (a rule from measurements, "
            "fastsac.training.resolve); printed at the start of the run and kept in summary.json"
        ),
    )
    out: str | None = field(
        default=None,
        metadata=_help("run directory (config, metrics, TensorBoard, checkpoints); default runs/<env>-<seed>-<time>"),
    )
    batch_size: int = field(default=256, metadata=_help("minibatch size of each gradient update"))
    buffer_size: int = field(
        default=1_000_000,
        metadata=_help("replay buffer capacity in transitions (oldest are overwritten when full)"),
    )
    learning_starts: int = field(
        default=1_000,
        metadata=_help("environment steps taken with uniformly random actions before updates begin"),
    )
    utd: float = field(
        default=1.0,
        metadata=_help(
            "update-to-data ratio: gradient updates per environment step (summed over envs); fractions accumulate, "
            "e.g. 0.25 with 1 env updates every 4th step"
        ),
    )
    eval_every: int = field(
        default=5_000,
        metadata=_help("environment steps between deterministic evaluations (0: evaluate only at the end)"),
    )
    eval_episodes: int = field(default=10, metadata=_help("episodes per evaluation (run in parallel envs)"))
    log_every: int = field(
        default=1_000,
        metadata=_help("environment steps between metrics rows (metrics.csv, TensorBoard, progress bar)"),
    )
    checkpoint_every: int = field(
        default=50_000,
        metadata=_help("environment steps between checkpoints (0: only at the end); always also at the end"),
    )
    save_buffer: bool = field(
        default=False,
        metadata=_help(
            "also store the replay buffer in checkpoints (large); without it, resume rebuilds the buffer by "
            "replaying the recorded actions (see --resume-env)"
        ),
    )
    resume_env: Literal["replay", "reset"] = field(
        default="replay",
        metadata=_help(
            "how a resume restores environment state (given with --resume, for that resume only): 'replay' "
            "re-creates the envs with the same seed and replays "
            "every recorded action (exact for deterministic envs; costs one env step per step trained so far), "
            "'reset' starts fresh episodes (fast, not exact)"
        ),
    )
    obs_dtype: Literal["float32", "bfloat16", "float16"] = field(
        default="float32",
        metadata=_help("dtype of observations stored in the replay buffer (lower precision halves its memory)"),
    )
    threads: int = field(
        default=0,
        metadata=_help(
            "torch CPU threads during the run (0: decided for the run: one for small networks, else the cores this "
            "process may use, shared among local processes; OMP_NUM_THREADS when set)"
        ),
    )
    dist_timeout: float = field(
        default=600.0,
        metadata=_help(
            "data-parallel runs (torchrun): seconds a collective waits for the other ranks before the job stops "
            "with an error naming the silent rank; must exceed the longest time one rank works alone (rank 0's "
            "evaluation, the first call of a compiled update)"
        ),
    )
    progress: bool = field(default=True, metadata=_help("show a tqdm progress bar"))
    tensorboard: bool = field(default=True, metadata=_help("write TensorBoard events to <run dir>/tb"))
    learner: LearnerConfig = field(
        default_factory=pendulum_learner,
        metadata=_help(
            "learner (SAC or CrossQ) hyperparameters; the [learner] table of a preset. Its seed, update and "
            "backend are replaced by this config's seed, update and backend"
        ),
    )

    def validate(self) -> "TrainConfig":
        """Raise :class:`ConfigError` naming every unusable value; returns ``self``."""
        problems: list[str] = []
        for f in dataclasses.fields(self):
            if f.name == "learner":
                continue
            try:
                _coerce(getattr(self, f.name), _hints(TrainConfig)[f.name], f.name)
            except ConfigError as exc:
                problems.append(str(exc))
        if problems:
            raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))

        def positive(name: str, *, allow_zero: bool = False) -> None:
            value = getattr(self, name)
            if value < 0 or (value == 0 and not allow_zero):
                need = ">= 0" if allow_zero else ">= 1"
                problems.append(f"{name} must be {need}, got {value} (--{name.replace('_', '-')})")

        for name in ("num_envs", "total_steps", "batch_size", "buffer_size", "eval_episodes", "log_every"):
            positive(name)
        for name in ("learning_starts", "eval_every", "checkpoint_every", "threads"):
            positive(name, allow_zero=True)
        if not (math.isfinite(self.dist_timeout) and self.dist_timeout > 0):
            problems.append(f"dist_timeout must be a number of seconds > 0, got {self.dist_timeout} (--dist-timeout)")
        if not (math.isfinite(self.utd) and self.utd >= 0):
            problems.append(f"utd must be a finite number >= 0, got {self.utd} (--utd)")
        if not self.env_id:
            problems.append("env_id must not be empty (--env)")
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps|xpu(:\d+)?", self.device):
            problems.append(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r} (--device)")
        if self.buffer_size < self.batch_size:
            problems.append(f"buffer_size ({self.buffer_size}) must be at least batch_size ({self.batch_size})")
        if problems:
            raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
        return self

    def resolved_device(self) -> str:
        """``device`` with 'auto' replaced by 'cuda' or 'cpu'."""
        if self.device == "auto":
            import torch

            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device


# Fields a resumed run may change (everything else must match the checkpoint).
RESUME_MUTABLE = {
    "total_steps",
    "eval_every",
    "eval_episodes",
    "log_every",
    "checkpoint_every",
    "save_buffer",
    "progress",
    "tensorboard",
    "device",
    "update",
    "backend",
    "out",
    "resume_env",
    "threads",
    "dist_timeout",
}


# ------------------------------------------------------------------------------------------------------------
# Types and coercion


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is tuple:
        return "a list of " + _describe(typing.get_args(tp)[0])
    if tp is type(None):
        return "none"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, name: str) -> Any:
    """``value`` converted to the annotated type ``tp`` (lists to tuples, ints to floats), or a ConfigError."""
    origin = typing.get_origin(tp)
    bad = ConfigError(f"{name} must be {_describe(tp)}, got {type(value).__name__} {value!r}")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, name)
            except ConfigError:
                pass
        raise bad
    if origin is Literal:
        if value in typing.get_args(tp) and not isinstance(value, bool):
            return value
        raise bad
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise bad
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{name}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{name} must have {len(args)} entries, got {len(value)}: {value!r}")
        return tuple(_coerce(v, a, f"{name}[{i}]") for i, (v, a) in enumerate(zip(args, value)))
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if tp is int:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():  # 1e6 in TOML/JSON
            return int(value)
        raise bad
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        raise bad
    if isinstance(value, tp):
        return value
    raise bad


# ------------------------------------------------------------------------------------------------------------
# Dicts


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """A JSON-ready nested dict of every field (tuples become lists; ``learner`` is a nested dict)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            out[f.name] = {
                g.name: _plain(getattr(value, g.name))
                for g in dataclasses.fields(value)
                if not (isinstance(value, LearnerConfig) and g.name in LEARNER_FIELDS_SET_BY_RUN)
            }
        else:
            out[f.name] = _plain(value)
    return out


def _unknown_key(key: str, valid: list[str], where: str) -> str:
    close = difflib.get_close_matches(key, valid, n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
    return f"unknown key {key!r} in {where}{hint}; valid keys: {', '.join(valid)}"


def _apply(cls: type, base: Any, values: dict[str, Any], where: str) -> Any:
    """A copy of dataclass instance ``base`` with ``values`` applied; unknown keys / wrong types -> ConfigError."""
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)
             if not (cls is LearnerConfig and f.name in LEARNER_FIELDS_SET_BY_RUN)]
    problems: list[str] = []
    changes: dict[str, Any] = {}
    if cls is LearnerConfig and "agent" in values:
        # Switching the agent first puts that agent's defaults into its fields; the other values apply on top.
        try:
            base = base.with_agent(_coerce(values["agent"], hints["agent"], "agent"))
        except ConfigError:
            pass  # reported with the other values below
    for key, value in values.items():
        if cls is LearnerConfig and key in LEARNER_FIELDS_SET_BY_RUN:
            problems.append(
                f"{key!r} in {where} is set for the whole run: use the top-level {key!r} (--{key}), not the learner's"
            )
            continue
        if key not in hints or key not in names:
            problems.append(_unknown_key(key, names, where))
            continue
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            if dataclasses.is_dataclass(value):
                changes[key] = value
            elif isinstance(value, dict):
                try:
                    changes[key] = _apply(tp, getattr(base, key), value, f"{where} [{key}]")
                except ConfigError as exc:
                    problems.append(str(exc))
            else:
                problems.append(f"{key} in {where} must be a table of {tp.__name__} fields, got {value!r}")
            continue
        try:
            changes[key] = _coerce(value, tp, key)
        except ConfigError as exc:
            problems.append(f"{exc} (in {where})")
    if problems:
        raise ConfigError("\n".join(problems))
    try:
        return dataclasses.replace(base, **changes)
    except (ValueError, TypeError) as exc:  # a dataclass's own __post_init__ checks (LearnerConfig)
        raise ConfigError(f"{exc} (in {where})") from exc


def config_from_dict(values: dict[str, Any], base: TrainConfig | None = None, *, where: str = "config") -> TrainConfig:
    """A :class:`TrainConfig` from a nested dict (as :func:`config_to_dict` writes), on top of ``base``."""
    return _apply(TrainConfig, base if base is not None else TrainConfig(), values, where)


def default_run_dir(config: TrainConfig, root: str | os.PathLike = "runs") -> Path:
    """``runs/<env>-<seed>-<YYYYmmdd-HHMMSS>`` (characters unsafe in file names replaced by '_')."""
    env = re.sub(r"[^A-Za-z0-9_.-]+", "_", config.env_id)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{env}-{config.seed}-{stamp}"


# ------------------------------------------------------------------------------------------------------------
# For the CLI


@dataclass(frozen=True)
class FieldSpec:
    """One configurable option: ``path`` is ("learner", "actor_lr") for nested fields."""

    path: tuple[str, ...]
    type: Any
    default: Any
    help: str


def field_specs(cls: type = TrainConfig, prefix: tuple[str, ...] = ()) -> list[FieldSpec]:
    """Every leaf option of ``cls`` (nested dataclasses expanded), in declaration order."""
    hints = _hints(cls)
    instance = cls()
    specs: list[FieldSpec] = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            specs += field_specs(tp, prefix + (f.name,))
            continue
        if cls is LearnerConfig and f.name in LEARNER_FIELDS_SET_BY_RUN:
            continue
        text = f.metadata.get("help")
        if not text:
            raise ConfigError(f"{cls.__name__}.{f.name} has no metadata help; every option must be documented")
        specs.append(FieldSpec(prefix + (f.name,), tp, getattr(instance, f.name), text))
    return specs
