"""The training session: one process's envs, learner, buffer, counters and logger, and the loop that drives them.

One iteration of the loop (``num_envs`` env steps)::

    action = uniform random            while step < learning_starts
           = learner.act(obs)          afterwards (stochastic policy)
    res = env.step(action)
    buffer.add(obs, action, res.reward, res.final_obs, res.terminated)    # final_obs: real last obs; no truncation
    obs = res.next_obs
    utd * num_envs learner.update(buffer.sample(batch_size)) calls       (fractions carry over to later steps)

Where an iteration makes exactly one update (one env at the default utd), that update also computes the next
iteration's actions, ``learner.update(batch, act_obs=obs)``: the same actions ``act(obs)`` would give right after
it, from inside the compiled update (on a CPU the separate ``act`` costs ~0.3 ms of a ~7 ms step, its code and
data cold after the update). They are kept in ``next_action`` until the next iteration uses them, and saved in the
checkpoint with the observation, so a resumed run steps with the very actions the uninterrupted one would.

Every ``log_every`` steps the learner's on-device metrics are read (the only host syncs the loop adds) and a row goes
to ``metrics.csv`` and TensorBoard; every ``eval_every`` steps the deterministic policy is evaluated on separate
envs (``fastsac.training.evaluation``); every ``checkpoint_every`` steps and at the end ``checkpoints/latest.pt`` is
written atomically. :meth:`Session.checkpoint` and :meth:`Session.restore` hold everything an exact resume needs
(``fastsac.training.resume``). Ctrl-C (SIGINT) stops at the end of the current step and writes a checkpoint.

Data-parallel runs (torchrun) pass a :class:`~fastsac.training.distributed.DistContext` as ``dist``; the hooks
are marked ``# data parallel``: per-rank seeds and device, ``N * num_envs`` env steps per iteration, the learner
made a replica (by the caller), log rows reduced over ranks, rank 0 alone writing logs, summary and evaluations,
and checkpoints written as a set (``fastsac.training.checkpoint_set``). Without ``dist`` nothing changes.
"""

from __future__ import annotations

import dataclasses
import platform
import time
import warnings
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from fastsac.agents import make_learner
from fastsac.data import ReplayBuffer
from fastsac.data import make as make_env
from fastsac.training.checkpoint import CheckpointError, capture_rng_state, restore_rng_state, save_checkpoint
from fastsac.training.checkpoint_set import save_set
from fastsac.training.config import TrainConfig, config_to_dict
from fastsac.training.evaluation import EVAL_SEED_OFFSET, evaluate_policy
from fastsac.training.interrupt import StopOnSigint, TrainingInterrupted
from fastsac.training.metrics_log import MetricsLogger, Progress
from fastsac.training.resolve import decide_compile, decide_threads, learner_config, resolve_device
from fastsac.training.resume import ActionLog, device_change_notes, replay_actions
from fastsac.training.rundir import CHECKPOINT_FILE, SUMMARY_FILE, write_json

if TYPE_CHECKING:
    from fastsac.training.distributed import DistContext

__all__ = ["RunResult", "Session"]

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


def _crossed(every: int, before: int, now: int) -> bool:
    """Whether a multiple of ``every`` lies in (before, now]."""
    return every > 0 and now // every > before // every


def _fastsac_version() -> str:
    import fastsac

    return fastsac.__version__


class Session:
    """Everything one training process holds: envs, learner, buffer, counters, logger."""

    def __init__(self, config: TrainConfig, run_dir: Path, *, env_seed: int | None = None,
                 compile_decision: dict | None = None, threads_decision: dict | None = None,
                 dist: DistContext | None = None):
        """``compile_decision``, ``threads_decision``: the decisions a resumed run started with (its checkpoint's),
        kept unless the resume names --compile/--no-compile or --threads. ``dist``: this rank's data-parallel
        context (None: one process). Sets torch's thread count to the run's (``train`` restores it at the end)."""
        self.config = config
        self.run_dir = run_dir
        self._notes: list[str] = []  # messages shown once the progress bar exists
        self._compile_reported = False
        self.dist = dist
        self.device = resolve_device(config) if dist is None else dist.device
        if env_seed is None:
            env_seed = config.seed if dist is None else dist.env_seed(config.seed, config.num_envs)
        self.env_seed = env_seed  # the envs' seed; actions are logged from it
        self.actions_from_step = 0  # the step the action log starts at (> 0 after a resume_env="reset" resume)
        self.env = make_env(
            config.env_id,
            num_envs=config.num_envs,
            seed=self.env_seed,
            backend=config.env_backend,
            device=self.device,
        )
        try:
            env = self.env
            action_size = env.num_actions if env.is_discrete else env.action_dim
            self.threads_decision = decide_threads(config, env.obs_dim, action_size, env.is_discrete,
                                                   previous=threads_decision)
            torch.set_num_threads(self.threads_decision.threads)
            self._notes.append(f"threads: {self.threads_decision.reason}")
            self.compile_decision = decide_compile(config, self.device, env.obs_dim, action_size, env.is_discrete,
                                                   previous=compile_decision, data_parallel=dist is not None)
            self.compile = self.compile_decision.compile
            self._notes.append(f"update: {self.compile_decision.reason}")
            lcfg = learner_config(config, compile_=self.compile)
            if dist is not None:  # data parallel: this rank's noise generator; its networks come from rank 0
                lcfg = dataclasses.replace(lcfg, seed=dist.rank_seed(lcfg.seed))
            self.learner = make_learner(env.obs_dim, env, lcfg, self.device)
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
            self.actions = ActionLog((env.num_envs,), torch.int64, self.device)
        else:
            self.actions = ActionLog((env.num_envs, env.action_dim), torch.float32, self.device)
        self.step = 0
        self.iteration = 0
        self.debt = Fraction(0)
        self.wall_time = 0.0  # seconds of earlier sessions (resume)
        self.train_time = 0.0  # seconds spent stepping and updating (all sessions)
        self.resumes = 0
        self.resume_exact: bool | None = None
        self.resume_note: str | None = None  # why a resume is not bit-exact (device change, reseeded generators)
        self.last_eval: tuple[float, float] | None = None
        self.last_eval_step = -1
        self.window = {"episodes": 0, "return_sum": 0.0, "length_sum": 0, "last_step": 0, "last_train_time": 0.0}
        self.recent_returns: deque[float] = deque(maxlen=20)
        self.obs: torch.Tensor | None = None
        #: the policy's actions for ``obs``, computed by the last update (None: the next iteration calls ``act``)
        self.next_action: torch.Tensor | None = None
        self.logger: MetricsLogger | None = None
        self.progress: Progress | None = None
        self._t0 = time.perf_counter()

    # --- bookkeeping -----------------------------------------------------------------------------------------
    @property
    def utd_per_iteration(self) -> Fraction:
        return Fraction(str(self.config.utd)) * self.config.num_envs

    @property
    def steps_per_iteration(self) -> int:
        """Env steps one iteration adds to ``step``: every rank's ``num_envs`` (steps count over all ranks)."""
        return self.env.num_envs * (1 if self.dist is None else self.dist.world_size)

    @property
    def is_main(self) -> bool:
        """Whether this process writes the run's logs, summary and evaluations (rank 0, or the only process)."""
        return self.dist is None or self.dist.is_main

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
            "agent": self.config.learner.agent,
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
            "resume_note": self.resume_note,
            "device": str(self.device),
            "compile": self.compile,
            "compile_reason": self.compile_decision.reason,
            "compile_seconds": self.learner.compile_seconds,
            "update_kind": self.learner.update_kind,
            "threads": self.threads_decision.threads,
            "threads_reason": self.threads_decision.reason,
            "env_backend": self.env.backend,
            "ops_backend": self.learner.backend,
            "fallbacks": [f.to_dict() for f in self.learner.fallbacks],
            "distributed": None if self.dist is None else self.dist.describe(),
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
            "device": str(self.device),
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
            "compile_decision": {"compile": self.compile_decision.compile, "reason": self.compile_decision.reason},
            "threads_decision": {"threads": self.threads_decision.threads, "reason": self.threads_decision.reason},
            "rng": capture_rng_state(),
            "env": {
                "env_id": self.env.env_id,
                "backend": self.env.backend,
                "seed": self.env_seed,
                "actions_from_step": self.actions_from_step,
                "num_envs": self.env.num_envs,
                "actions": self.actions.tensor(),
                "obs": self.obs.cpu(),
                "next_action": None if self.next_action is None else self.next_action.cpu(),
            },
            # Without the full action log (after a reset resume) the buffer cannot be rebuilt by replay: keep it.
            "buffer": self.buffer.state_dict() if self.config.save_buffer or self.actions_from_step else None,
        }
        if self.dist is not None:  # data parallel: this rank's part of the set; rank 0 commits it
            return save_set(self.dist, self.run_dir / CHECKPOINT_FILE, state)
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
            obs, took = replay_actions(self.env, self.actions, self.buffer if buffer_state is None else None)
            obs_restored = self.resume_exact = bool(torch.equal(obs, saved_obs))
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
            obs_restored = self.resume_exact = False
            self.actions_from_step = int(ckpt["step"])
        # The actions the last update computed for the saved observation: used where the restored observation is
        # the saved one. Older checkpoints have none (their generator state is from before that draw): act anew.
        next_action = env_state.get("next_action")
        self.next_action = next_action.to(self.device) if next_action is not None and obs_restored else None
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
        notes = device_change_notes(ckpt, self.device, self.learner.rng_note)
        # last: nothing above may consume the restored streams
        notes += restore_rng_state(ckpt["rng"], device=self.device, seed=cfg.seed, counter=self.step)
        if notes:
            self.resume_exact = False
            self.resume_note = "; ".join(notes)
            warnings.warn(f"resume is not bit-exact: {self.resume_note}", stacklevel=2)

    # --- the loop --------------------------------------------------------------------------------------------
    def run(self, *, resume_step: int | None = None) -> RunResult:
        cfg = self.config
        self._t0 = time.perf_counter()
        if self.obs is None:
            self.obs = self.env.reset()
        self.logger = MetricsLogger(self.run_dir, tensorboard=cfg.tensorboard, resume_step=resume_step) \
            if self.is_main else None
        self._write_summary(finished=False)
        self.progress = Progress(cfg.total_steps, self.step, cfg.progress and self.is_main, desc=cfg.env_id)
        for note in self._notes:
            self.progress.write(note)
        if self.compile:  # said here, not when the learner is built: data parallel changes it (grad_reducer)
            self.progress.write(f"update: {self.learner.describe_update()}")
        for fallback in self.learner.fallbacks:  # also warned when they happened; said again where a run starts
            self.progress.write(fallback.message())
        try:
            with StopOnSigint(self.progress.write) as sigint:
                # data parallel: every rank stops at the same step, agreed on at a log row
                stop = sigint if self.dist is None else self.dist.agreed_stop(sigint)
                self._loop(stop)
                if stop.requested:
                    self.checkpoint()
                    self._write_summary(finished=False)
                    raise TrainingInterrupted(self.run_dir, self.step)
        finally:
            self.progress.close()
            if self.logger is not None:
                self.logger.close()
            self.env.close()
        summary = self._write_summary(finished=True)
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

    def _write_summary(self, finished: bool) -> dict[str, Any]:
        summary = self._summary(finished)
        if self.is_main:
            write_json(self.run_dir / SUMMARY_FILE, summary)
        return summary

    def _loop(self, stop: StopOnSigint) -> None:
        """Step, store, update until ``total_steps`` or a stop request. The loop body is kept to the calls it
        needs (a CPU step of a small SAC is a few milliseconds, of which Python bookkeeping is a measurable part):
        the update debt is an integer count of 1/den updates, and the boundaries (evaluation, log rows,
        checkpoints, the end) are checked against the next step at which one falls."""
        cfg, env, learner, buffer = self.config, self.env, self.learner, self.buffer
        act, step_env, add, log_action = learner.act, env.step, buffer.add, self.actions.append
        update, sample, batch_size = learner.update, buffer.sample, cfg.batch_size
        utd, steps = self.utd_per_iteration, self.steps_per_iteration
        num, den = utd.numerator, utd.denominator
        debt = int(self.debt * den)  # self.debt is a multiple of 1/den
        total, starts, window = cfg.total_steps, cfg.learning_starts, self.window
        next_boundary = self._next_boundary()
        next_action = self.next_action
        tick = time.perf_counter()
        while self.step < total and not stop.requested:
            obs = self.obs
            if self.step < starts:
                action = self._random_action()
            else:
                action = act(obs) if next_action is None else next_action
            res = step_env(action)
            add(obs, action, res.reward, res.final_obs, res.terminated)
            log_action(action)
            self.obs = res.next_obs
            before = self.step
            self.step = now_step = before + steps
            self.iteration += 1
            if res.episode_returns.size:
                window["episodes"] += int(res.episode_returns.size)
                window["return_sum"] += float(res.episode_returns.sum())
                window["length_sum"] += int(res.episode_lengths.sum())
                self.recent_returns.extend(float(r) for r in res.episode_returns)
            next_action = None
            if now_step >= starts:
                n_updates, debt = divmod(debt + num, den)
                if n_updates == 1:  # this update also gives the next iteration's actions
                    next_action = update(sample(batch_size), act_obs=self.obs)
                else:
                    for _ in range(n_updates):
                        update(sample(batch_size))
            if now_step >= next_boundary:
                self.train_time += time.perf_counter() - tick
                self.debt = Fraction(debt, den)
                self.next_action = next_action
                self._boundaries(before)
                window = self.window  # _log starts a new window
                next_boundary = self._next_boundary()
                tick = time.perf_counter()
        self.train_time += time.perf_counter() - tick
        self.debt = Fraction(debt, den)
        self.next_action = next_action

    def _next_boundary(self) -> int:
        """The first step after the current one at which an evaluation, a log row, a checkpoint or the end falls."""
        cfg, step = self.config, self.step
        nexts = [cfg.total_steps]
        for every in (cfg.eval_every, cfg.log_every, cfg.checkpoint_every):
            if every > 0:
                nexts.append((step // every + 1) * every)
        return min(nexts)

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
        self.last_eval_step = self.step
        if not self.is_main:  # data parallel: rank 0 evaluates (the replicas are identical)
            return
        returns, _ = evaluate_policy(
            self.learner,
            cfg.env_id,
            cfg.eval_episodes,
            cfg.seed + EVAL_SEED_OFFSET,
            env_backend=cfg.env_backend,
            device=self.device,
        )
        self.last_eval = (float(np.mean(returns)), float(np.std(returns)))

    def _log(self, evaluated: bool) -> None:
        w = self.window
        metrics = self.learner.metrics()  # the host sync
        if self.dist is not None:  # data parallel: the row is over all ranks (one all-reduce); rank 0 writes it
            metrics, w = self.dist.reduce_row(metrics, w)
        self.window = {
            "episodes": 0, "return_sum": 0.0, "length_sum": 0, "last_step": self.step,
            "last_train_time": self.train_time,
        }  # fmt: skip
        if self.logger is None:
            return
        if self.learner.compile_seconds is not None and not self._compile_reported:
            self._compile_reported = True
            self.progress.write(f"update: {self.learner.describe_first_call()}")
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
