"""The training loop and its Python API: :func:`train`, :func:`resume`, :func:`evaluate`.

One iteration of the loop (``num_envs`` env steps)::

    action = uniform random            while step < learning_starts
           = learner.act(obs)          afterwards (stochastic policy)
    res = env.step(action)
    buffer.add(obs, action, res.reward, res.final_obs, res.terminated)    # final_obs: real last obs; no truncation
    obs = res.next_obs
    utd * num_envs learner.update(buffer.sample(batch_size)) calls       (fractions carry over to later steps)

Every ``log_every`` steps the learner's on-device metrics are read (the only host syncs the loop adds) and a row goes
to ``metrics.csv`` and TensorBoard; every ``eval_every`` steps the deterministic policy is evaluated on separate
envs (fresh each time, seeded ``seed + 1_000_000``, so evaluation never disturbs training); every
``checkpoint_every`` steps and at the end ``checkpoints/latest.pt`` is written atomically.

Resume (``resume(run_dir)`` / ``fastsac train --resume RUN_DIR``) continues exactly as an uninterrupted run: the
checkpoint holds the learner (networks, target critics, optimizers, temperature, its RNG), step counters, the
Python/NumPy/torch RNG states, the bookkeeping of the current logging window, and every action sent to the
environments. Environment state cannot be saved in general (EnvPool has no state API), so by default
(``resume_env="replay"``) the envs are re-created with the same seed and fed the recorded actions: for deterministic
simulators (EnvPool and gymnasium classic control, Box2D and MuJoCo on the same machine and library versions) this
reproduces the env state bit for bit, and the replay buffer is refilled with the same transitions on the way, so it
need not be stored (``save_buffer``). The replayed observation is compared with the one saved; a mismatch is reported
and training continues from the replayed state (not exact). ``resume_env="reset"`` skips the replay and starts new
episodes (needs ``save_buffer``). Ctrl-C (SIGINT) stops at the end of the current step and writes a checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import platform
import signal
import threading
import time
import warnings
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fastsac import envs as envs_mod
from fastsac.buffer import ReplayBuffer
from fastsac.checkpoint import (
    CheckpointError,
    atomic_write_bytes,
    capture_rng_state,
    check_config,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from fastsac.config import (
    RESUME_MUTABLE,
    ConfigError,
    TrainConfig,
    config_from_dict,
    config_to_dict,
    default_run_dir,
)
from fastsac.learner import make_learner
from fastsac.logger import MetricsLogger, Progress

__all__ = ["RunResult", "EvalResult", "TrainingInterrupted", "train", "resume", "evaluate", "evaluate_policy"]

EVAL_SEED_OFFSET = 1_000_000
CHECKPOINT_FILE = Path("checkpoints") / "latest.pt"
_OBS_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class RunResult:
    """What :func:`train` / :func:`resume` return."""

    run_dir: Path  #: the run directory
    total_steps: int  #: env steps trained (all envs)
    final_eval_return: float | None  #: mean deterministic evaluation return at the end
    final_eval_std: float | None  #: its standard deviation over episodes
    sps: float  #: env steps per second of training (evaluation and checkpoint time excluded), whole run
    wall_time: float  #: seconds from the start of the run to its end (across resumes)
    summary: dict[str, Any]  #: the contents of summary.json


@dataclass
class EvalResult:
    """What :func:`evaluate` returns."""

    mean_return: float
    std_return: float
    returns: list[float]
    lengths: list[int]
    step: int  #: the training step of the evaluated checkpoint
    video_dir: Path | None = None


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGINT after writing a checkpoint; ``run_dir`` can be resumed."""

    def __init__(self, run_dir: Path, step: int):
        super().__init__(f"interrupted at step {step}; checkpoint saved; resume with: fastsac train --resume {run_dir}")
        self.run_dir = run_dir
        self.step = step


# ------------------------------------------------------------------------------------------------------------
# Small helpers


def _write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=False) + "\n").encode())


def _seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def _resolve_compile(config: TrainConfig, device: torch.device) -> bool:
    return config.compile if config.compile is not None else device.type == "cuda"


def _learner_config(config: TrainConfig, device: torch.device, *, compile_: bool | None = None):
    """The LearnerConfig used: the run's seed, compile choice and ops backend override the nested values."""
    return dataclasses.replace(
        config.learner,
        seed=config.seed,
        compile=_resolve_compile(config, device) if compile_ is None else compile_,
        backend=config.backend,
    )


def _device(config: TrainConfig) -> torch.device:
    name = config.resolved_device()
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was requested but CUDA is not available here; use --device cpu or auto")
    return device


def _crossed(every: int, before: int, now: int) -> bool:
    """Whether a multiple of ``every`` lies in (before, now]."""
    return every > 0 and now // every > before // every


class _Threads:
    """Set torch's CPU thread count for a run (0 keeps torch's default) and restore it afterwards."""

    def __init__(self, threads: int):
        self.threads = threads
        self.previous = torch.get_num_threads()

    def __enter__(self):
        if self.threads > 0:
            torch.set_num_threads(self.threads)
        return self

    def __exit__(self, *exc):
        torch.set_num_threads(self.previous)


def _check_new_run_dir(run_dir: Path) -> None:
    if run_dir.exists():
        if not run_dir.is_dir():
            raise ConfigError(f"--out {run_dir} exists and is not a directory; choose another --out")
        if any(run_dir.iterdir()):
            hint = (
                f"resume it with: fastsac train --resume {run_dir}"
                if (run_dir / CHECKPOINT_FILE).exists()
                else "remove it yourself if it is not needed"
            )
            raise ConfigError(
                f"run directory {run_dir} already exists and is not empty; refusing to overwrite it. "
                f"Choose another --out, or {hint}"
            )


class _ActionLog:
    """Every action sent to the training envs, kept on the device in chunks (a write is one copy, no host sync)."""

    CHUNK = 4096

    def __init__(self, row_shape: tuple[int, ...], dtype: torch.dtype, device: torch.device):
        self.row_shape, self.dtype, self.device = row_shape, dtype, device
        self._chunks: list[torch.Tensor] = []
        self.n = 0

    def append(self, action: torch.Tensor) -> None:
        i = self.n % self.CHUNK
        if i == 0:
            self._chunks.append(torch.empty((self.CHUNK, *self.row_shape), dtype=self.dtype, device=self.device))
        self._chunks[-1][i].copy_(action)
        self.n += 1

    def tensor(self) -> torch.Tensor:
        """All rows on the CPU, shape (n, *row_shape)."""
        if self.n == 0:
            return torch.empty((0, *self.row_shape), dtype=self.dtype)
        return torch.cat(self._chunks).narrow(0, 0, self.n).cpu()

    def load(self, rows: torch.Tensor) -> None:
        if tuple(rows.shape[1:]) != self.row_shape or rows.dtype != self.dtype:
            raise CheckpointError(
                f"recorded actions have shape {tuple(rows.shape[1:])}/{rows.dtype}, the env needs "
                f"{self.row_shape}/{self.dtype}"
            )
        self._chunks, self.n = [], 0
        rows = rows.to(self.device)
        for start in range(0, rows.shape[0], self.CHUNK):
            part = rows[start : start + self.CHUNK]
            chunk = torch.empty((self.CHUNK, *self.row_shape), dtype=self.dtype, device=self.device)
            chunk[: part.shape[0]].copy_(part)
            self._chunks.append(chunk)
        self.n = rows.shape[0]

    def rows(self):
        for k in range(self.n):
            yield self._chunks[k // self.CHUNK][k % self.CHUNK]


class _StopOnSigint:
    """First SIGINT: ask the loop to stop after the current step (it checkpoints); second: KeyboardInterrupt."""

    def __init__(self, notify):
        self.requested = False
        self._notify = notify
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self._notify("interrupt: stopping after this step and writing a checkpoint (Ctrl-C again to abort)")

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


# ------------------------------------------------------------------------------------------------------------
# Evaluation


def evaluate_policy(
    learner,
    env_id: str,
    episodes: int,
    seed: int,
    *,
    env_backend: str = "auto",
    device: torch.device | str = "cpu",
    max_steps: int = 100_000,
) -> tuple[list[float], list[int]]:
    """Deterministic evaluation: the first episode of each of ``episodes`` parallel envs, deterministic policy.

    Returns (returns, lengths) in env order. The envs are created here (seeded ``seed``) and closed afterwards.
    """
    env = envs_mod.make(env_id, num_envs=episodes, seed=seed, backend=env_backend, device=device)
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


# ------------------------------------------------------------------------------------------------------------
# The training session


class _Session:
    """Everything one training process holds: envs, learner, buffer, counters, logger."""

    def __init__(self, config: TrainConfig, run_dir: Path, *, env_seed: int | None = None):
        self.config = config
        self.run_dir = run_dir
        self.device = _device(config)
        self.compile = _resolve_compile(config, self.device)
        self.env_seed = config.seed if env_seed is None else env_seed  # the envs' seed; actions are logged from it
        self.actions_from_step = 0  # the step the action log starts at (> 0 after a resume_env="reset" resume)
        self.env = envs_mod.make(
            config.env_id,
            num_envs=config.num_envs,
            seed=self.env_seed,
            backend=config.env_backend,
            device=self.device,
        )
        try:
            env = self.env
            self.learner = make_learner(env.obs_dim, env, _learner_config(config, self.device), self.device)
            self.buffer = ReplayBuffer(
                config.buffer_size,
                env.obs_dim,
                env.num_actions if env.is_discrete else env.action_dim,
                device=self.device,
                obs_dtype=_OBS_DTYPES[config.obs_dtype],
                discrete=env.is_discrete,
            )
        except BaseException:
            self.env.close()
            raise
        if env.is_discrete:
            self.actions = _ActionLog((env.num_envs,), torch.int64, self.device)
        else:
            self.actions = _ActionLog((env.num_envs, env.action_dim), torch.float32, self.device)
        self.step = 0
        self.iteration = 0
        self.debt = Fraction(0)
        self.wall_time = 0.0  # seconds of earlier sessions (resume)
        self.train_time = 0.0  # seconds spent stepping and updating (all sessions)
        self.resumes = 0
        self.resume_exact: bool | None = None
        self.last_eval: tuple[float, float] | None = None
        self.last_eval_step = -1
        self.window = {"episodes": 0, "return_sum": 0.0, "length_sum": 0, "last_step": 0, "last_train_time": 0.0}
        self.recent_returns: deque[float] = deque(maxlen=20)
        self.obs: torch.Tensor | None = None
        self.logger: MetricsLogger | None = None
        self.progress: Progress | None = None
        self._notes: list[str] = []  # messages shown once the progress bar exists
        self._t0 = time.perf_counter()

    # --- bookkeeping -----------------------------------------------------------------------------------------
    @property
    def utd_per_iteration(self) -> Fraction:
        return Fraction(str(self.config.utd)) * self.config.num_envs

    def _elapsed(self) -> float:
        return self.wall_time + (time.perf_counter() - self._t0)

    def _random_action(self) -> torch.Tensor:
        env = self.env
        if env.is_discrete:
            return torch.randint(env.num_actions, (env.num_envs,), device=self.device)
        return torch.rand(env.num_envs, env.action_dim, device=self.device) * 2.0 - 1.0

    def _summary(self, finished: bool) -> dict[str, Any]:
        ev = self.last_eval
        return {
            "finished": finished,
            "env_id": self.config.env_id,
            "seed": self.config.seed,
            "total_steps": self.step,
            "updates": self.learner.num_updates,
            "final_eval_return": ev[0] if (finished and ev) else None,
            "final_eval_std": ev[1] if (finished and ev) else None,
            "last_eval_return": ev[0] if ev else None,
            "sps": self.step / self.train_time if self.train_time > 0 else None,
            "wall_time": self._elapsed(),
            "resumes": self.resumes,
            "resume_exact": self.resume_exact,
            "device": str(self.device),
            "compile": self.compile,
            "env_backend": self.env.backend,
            "ops_backend": self.learner.backend,
            "versions": {
                "fastsac": _fastsac_version(),
                "torch": torch.__version__,
                "python": platform.python_version(),
            },
        }

    # --- checkpoints -----------------------------------------------------------------------------------------
    def checkpoint(self) -> Path:
        state = {
            "config": config_to_dict(self.config),
            "step": self.step,
            "iteration": self.iteration,
            "utd_debt": [self.debt.numerator, self.debt.denominator],
            "wall_time": self._elapsed(),
            "train_time": self.train_time,
            "resumes": self.resumes,
            "last_eval": list(self.last_eval) if self.last_eval else None,
            "last_eval_step": self.last_eval_step,
            "window": dict(self.window),
            "recent_returns": list(self.recent_returns),
            "learner": self.learner.state_dict(),
            "rng": capture_rng_state(),
            "env": {
                "env_id": self.env.env_id,
                "backend": self.env.backend,
                "seed": self.env_seed,
                "actions_from_step": self.actions_from_step,
                "num_envs": self.env.num_envs,
                "actions": self.actions.tensor(),
                "obs": self.obs.cpu(),
            },
            # Without the full action log (after a reset resume) the buffer cannot be rebuilt by replay: keep it.
            "buffer": self.buffer.state_dict() if self.config.save_buffer or self.actions_from_step else None,
        }
        return save_checkpoint(self.run_dir / CHECKPOINT_FILE, state)

    def restore(self, ckpt: dict[str, Any]) -> None:
        """Load a checkpoint into this freshly built session (envs, buffer and RNGs included)."""
        cfg = self.config
        self.learner.load_state_dict(ckpt["learner"])
        env_state = ckpt["env"]
        buffer_state = ckpt.get("buffer")
        if buffer_state is not None:
            self.buffer.load_state_dict(buffer_state)
        saved_obs = env_state["obs"].to(self.device)
        if cfg.resume_env == "replay":
            self.actions.load(env_state["actions"])
            self.actions_from_step = int(env_state.get("actions_from_step", 0))
            if env_state["backend"] != self.env.backend:
                warnings.warn(
                    f"the run used the {env_state['backend']} env backend, this process has {self.env.backend}; "
                    "the replayed env state will probably differ",
                    stacklevel=2,
                )
            t = time.perf_counter()
            obs = self.env.reset()
            refill = buffer_state is None
            for action in self.actions.rows():
                res = self.env.step(action)
                if refill:
                    self.buffer.add(obs, action, res.reward, res.final_obs, res.terminated)
                obs = res.next_obs
            self.resume_exact = bool(torch.equal(obs, saved_obs))
            took = time.perf_counter() - t
            if self.resume_exact:
                self._notes.append(f"resume: replayed {self.actions.n * self.env.num_envs} env steps in {took:.1f} s; "
                                   "environment state restored exactly")  # fmt: skip
            else:
                warnings.warn(
                    "resume: replaying the recorded actions did not reproduce the saved observation (the env is not "
                    "deterministic here, or fastsac/env versions changed); training continues from the replayed "
                    "state, not exactly as an uninterrupted run",
                    stacklevel=2,
                )
            self.obs = obs
        else:
            if buffer_state is None:
                raise CheckpointError(
                    "resume_env='reset' needs the replay buffer in the checkpoint, and this run was saved without "
                    "it (save_buffer=false); resume with --resume-env replay"
                )
            self.obs = self.env.reset()
            self.resume_exact = False
            self.actions_from_step = int(ckpt["step"])
        self.step = int(ckpt["step"])
        self.iteration = int(ckpt["iteration"])
        self.debt = Fraction(*ckpt["utd_debt"])
        self.wall_time = float(ckpt["wall_time"])
        self.train_time = float(ckpt["train_time"])
        self.resumes = int(ckpt["resumes"]) + 1
        self.last_eval = tuple(ckpt["last_eval"]) if ckpt["last_eval"] else None
        self.last_eval_step = int(ckpt["last_eval_step"])
        self.window = dict(ckpt["window"])
        self.recent_returns = deque(ckpt["recent_returns"], maxlen=20)
        restore_rng_state(ckpt["rng"])  # last: nothing above may consume the restored streams

    # --- the loop --------------------------------------------------------------------------------------------
    def run(self, *, resume_step: int | None = None) -> RunResult:
        cfg = self.config
        self._t0 = time.perf_counter()
        if self.obs is None:
            self.obs = self.env.reset()
        self.logger = MetricsLogger(self.run_dir, tensorboard=cfg.tensorboard, resume_step=resume_step)
        _write_json(self.run_dir / "summary.json", self._summary(finished=False))
        self.progress = Progress(cfg.total_steps, self.step, cfg.progress, desc=cfg.env_id)
        for note in self._notes:
            self.progress.write(note)
        try:
            with _StopOnSigint(self.progress.write) as stop:
                self._loop(stop)
                if stop.requested:
                    self.checkpoint()
                    _write_json(self.run_dir / "summary.json", self._summary(finished=False))
                    raise TrainingInterrupted(self.run_dir, self.step)
        finally:
            self.progress.close()
            self.logger.close()
            self.env.close()
        summary = self._summary(finished=True)
        _write_json(self.run_dir / "summary.json", summary)
        ev = self.last_eval
        return RunResult(
            run_dir=self.run_dir,
            total_steps=self.step,
            final_eval_return=ev[0] if ev else None,
            final_eval_std=ev[1] if ev else None,
            sps=summary["sps"] or 0.0,
            wall_time=summary["wall_time"],
            summary=summary,
        )

    def _loop(self, stop: _StopOnSigint) -> None:
        cfg, env, learner, buffer = self.config, self.env, self.learner, self.buffer
        utd = self.utd_per_iteration
        tick = time.perf_counter()
        while self.step < cfg.total_steps and not stop.requested:
            obs = self.obs
            action = self._random_action() if self.step < cfg.learning_starts else learner.act(obs)
            res = env.step(action)
            buffer.add(obs, action, res.reward, res.final_obs, res.terminated)
            self.actions.append(action)
            self.obs = res.next_obs
            before = self.step
            self.step += env.num_envs
            self.iteration += 1
            if res.episode_returns.size:
                self.window["episodes"] += int(res.episode_returns.size)
                self.window["return_sum"] += float(res.episode_returns.sum())
                self.window["length_sum"] += int(res.episode_lengths.sum())
                self.recent_returns.extend(float(r) for r in res.episode_returns)
            if self.step >= cfg.learning_starts:
                self.debt += utd
                n_updates = math.floor(self.debt)
                self.debt -= n_updates
                for _ in range(n_updates):
                    learner.update(buffer.sample(cfg.batch_size))
            now = time.perf_counter()
            self.train_time += now - tick
            self._boundaries(before)
            tick = time.perf_counter()

    def _boundaries(self, before: int) -> None:
        cfg, step = self.config, self.step
        done = step >= cfg.total_steps
        evaluated = False
        if _crossed(cfg.eval_every, before, step) or (done and self.last_eval_step != step):
            self._evaluate()
            evaluated = True
        if evaluated or _crossed(cfg.log_every, before, step) or done:
            self._log(evaluated)
        if _crossed(cfg.checkpoint_every, before, step) or done:
            self.checkpoint()

    def _evaluate(self) -> None:
        cfg = self.config
        returns, _ = evaluate_policy(
            self.learner,
            cfg.env_id,
            cfg.eval_episodes,
            cfg.seed + EVAL_SEED_OFFSET,
            env_backend=cfg.env_backend,
            device=self.device,
        )
        self.last_eval = (float(np.mean(returns)), float(np.std(returns)))
        self.last_eval_step = self.step

    def _log(self, evaluated: bool) -> None:
        w = self.window
        metrics = self.learner.metrics()  # the host sync
        steps = self.step - w["last_step"]
        seconds = self.train_time - w["last_train_time"]
        row: dict[str, Any] = {
            "step": self.step,
            "wall_time": round(self._elapsed(), 3),
            "sps": round(steps / seconds, 2) if seconds > 0 else None,
            "updates": self.learner.num_updates,
            "episodes": w["episodes"],
            "episode_return": w["return_sum"] / w["episodes"] if w["episodes"] else None,
            "episode_length": w["length_sum"] / w["episodes"] if w["episodes"] else None,
            "eval_return": self.last_eval[0] if evaluated else None,
            "eval_return_std": self.last_eval[1] if evaluated else None,
        }
        for key, value in metrics.items():
            if key != "num_updates":
                row[key] = value
        self.logger.log(row)
        self.window = {
            "episodes": 0, "return_sum": 0.0, "length_sum": 0, "last_step": self.step,
            "last_train_time": self.train_time,
        }  # fmt: skip
        recent = float(np.mean(self.recent_returns)) if self.recent_returns else None
        self.progress.update(
            self.step,
            {
                "sps": f"{row['sps']:.0f}" if row["sps"] else None,
                "return": f"{recent:.1f}" if recent is not None else None,
                "eval": f"{self.last_eval[0]:.1f}" if self.last_eval else None,
                "alpha": f"{metrics['alpha']:.3g}" if "alpha" in metrics else None,
            },
        )


def _fastsac_version() -> str:
    import fastsac

    return fastsac.__version__


# ------------------------------------------------------------------------------------------------------------
# Public API


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
    _check_new_run_dir(run_dir)
    config = dataclasses.replace(config, out=str(run_dir))
    with _Threads(config.threads):
        _seed_everything(config.seed)
        session = _Session(config, run_dir)  # env, learner, buffer: fail here, before anything is written
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_json(run_dir / "config.json", config_to_dict(config))
        return session.run()


def _load_run(run_dir: str | os.PathLike) -> tuple[Path, dict[str, Any]]:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory {run_dir} does not exist (or is not a directory)")
    return run_dir, load_checkpoint(run_dir / CHECKPOINT_FILE)


def resume(run_dir: str | os.PathLike, **overrides: Any) -> RunResult:
    """Continue the run in ``run_dir`` from ``checkpoints/latest.pt`` exactly where it stopped.

    ``overrides`` may change only the fields in :data:`fastsac.config.RESUME_MUTABLE` (e.g. ``total_steps`` to
    extend a run); any other difference from the checkpoint's configuration raises :class:`CheckpointError`.
    A finished run is extended when ``total_steps`` is raised, otherwise its result is returned unchanged.
    """
    run_dir, ckpt = _load_run(run_dir)
    saved = ckpt["config"]
    try:
        config = config_from_dict(saved, where=f"{run_dir / CHECKPOINT_FILE} config")
    except ConfigError as exc:
        raise CheckpointError(f"the checkpoint's configuration is not usable by this fastsac: {exc}") from exc
    if "out" in overrides and Path(overrides["out"]) != run_dir:
        raise ConfigError(f"a resumed run is written into its own directory ({run_dir}); do not pass out/--out")
    config = config_from_dict(overrides, config, where="resume overrides")
    config = dataclasses.replace(config, out=str(run_dir))
    check_config(saved, config_to_dict(config), RESUME_MUTABLE, source=str(run_dir))
    config.validate()
    step = int(ckpt["step"])
    if step >= config.total_steps:
        summary_path = run_dir / "summary.json"
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
    with _Threads(config.threads):
        session = _Session(config, run_dir, env_seed=env_seed)
        try:
            session.restore(ckpt)
        except BaseException:
            session.env.close()
            raise
        # A resume_env override applies to this resume only; the run keeps its own setting for later resumes.
        session.config = dataclasses.replace(config, resume_env=saved.get("resume_env", config.resume_env))
        _write_json(run_dir / "config.json", config_to_dict(session.config))
        return session.run(resume_step=step)


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
    """
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be an int >= 1, got {episodes!r}")
    run_dir, ckpt = _load_run(run_dir)
    config = config_from_dict(ckpt["config"], where=f"{run_dir / CHECKPOINT_FILE} config")
    if device is not None:
        config = dataclasses.replace(config, device=device)
    dev = _device(config)
    with _Threads(config.threads):
        return _evaluate_run(run_dir, ckpt, config, dev, episodes, video, seed)


def _evaluate_run(run_dir, ckpt, config, dev, episodes, video, seed) -> EvalResult:
    probe = envs_mod.make(config.env_id, num_envs=1, seed=0, backend=config.env_backend, device=dev)
    try:
        learner = make_learner(probe.obs_dim, probe, _learner_config(config, dev, compile_=False), dev)
    finally:
        probe.close()
    learner.load_state_dict(ckpt["learner"])
    eval_seed = config.seed + EVAL_SEED_OFFSET if seed is None else seed
    video_dir = None
    if video:
        video_dir = run_dir / "videos"
        returns, lengths = _record_video(learner, config.env_id, episodes, eval_seed, video_dir, dev)
    else:
        returns, lengths = evaluate_policy(
            learner, config.env_id, episodes, eval_seed, env_backend=config.env_backend, device=dev
        )
    return EvalResult(
        mean_return=float(np.mean(returns)),
        std_return=float(np.std(returns)),
        returns=returns,
        lengths=lengths,
        step=int(ckpt["step"]),
        video_dir=video_dir,
    )


# ------------------------------------------------------------------------------------------------------------
# Video


def _flat_obs(space, obs) -> np.ndarray:
    from gymnasium import spaces

    if isinstance(space, spaces.Dict):
        return np.concatenate([_flat_obs(space.spaces[k], obs[k]) for k in sorted(space.spaces)])
    return np.asarray(obs, dtype=np.float32).reshape(-1)


def _record_video(learner, env_id: str, episodes: int, seed: int, video_dir: Path, device) -> tuple[list, list]:
    try:
        import moviepy  # noqa: F401  (RecordVideo's encoder)
    except ImportError as exc:
        raise ImportError(
            "--video needs moviepy to encode the videos: pip install \"gymnasium[other]\" (or pip install moviepy); "
            "classic-control envs also need pygame: pip install \"gymnasium[classic-control]\""
        ) from exc
    import gymnasium
    from gymnasium import spaces
    from gymnasium.error import DependencyNotInstalled

    if env_id not in gymnasium.envs.registry:
        raise ValueError(
            f"--video renders through gymnasium, which has no env {env_id!r} (an EnvPool-only task); "
            "evaluate without --video"
        )
    entry = str(gymnasium.spec(env_id).entry_point)
    is_mujoco = "mujoco" in entry
    if is_mujoco and "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
        os.environ["MUJOCO_GL"] = "egl"  # headless: EGL (GPU or Mesa); GLFW needs a display

    @contextlib.contextmanager
    def rendering_errors():
        """Creating and stepping a rendering env: a missing package or a broken OpenGL backend as a clear error."""
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

    with rendering_errors():
        env = gymnasium.make(env_id, render_mode="rgb_array")
    env = gymnasium.wrappers.RecordVideo(
        env, str(video_dir), episode_trigger=lambda _: True, name_prefix="eval", disable_logger=True
    )
    space = env.action_space
    returns, lengths = [], []
    try:
        for i in range(episodes):
            with rendering_errors():  # only the env's calls: an error of the policy is not a rendering error
                obs, _ = env.reset(seed=seed + i)
            total, length, ended = 0.0, 0, False
            while not ended:
                o = torch.as_tensor(_flat_obs(env.observation_space, obs), device=device).unsqueeze(0)
                a = learner.act(o, deterministic=True)[0].cpu().numpy()
                if isinstance(space, spaces.Discrete):
                    a = int(a) + int(space.start)
                else:
                    low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
                    a = (np.clip(a.astype(np.float64), -1, 1) * (high - low) / 2 + (high + low) / 2)
                    a = a.reshape(space.shape).astype(space.dtype)
                with rendering_errors():
                    obs, reward, terminated, truncated, _ = env.step(a)
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


