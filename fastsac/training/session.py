"""The training session: one process's envs, learner, buffer and counters, and the loop that drives them.

One iteration of the loop (``num_envs`` env steps)::

    action = uniform random            while step < learning_starts
           = learner.act(obs)          afterwards (stochastic policy)
    res = env.step(action)
    buffer.add(obs, action, res.reward, res.final_obs, res.terminated)    # final_obs: real last obs; no truncation
    learner.observe_step(res.reward, res.terminated, res.truncated)       # learners that keep env statistics
    obs = res.next_obs
    utd * num_envs updates (fractions carry over to later steps): one, learner.update(buffer.sample(batch_size));
    k > 1, learner.update_many(buffer.sample(k * batch_size), k)          (one call, one CUDA graph on a GPU)

Where an iteration makes exactly one update (one env at the default utd), that update also computes the next
iteration's actions, ``learner.update(batch, act_obs=obs)``: the same actions ``act(obs)`` would give right after
it, from inside the compiled update (on a CPU the separate ``act`` costs ~0.3 ms of a ~7 ms step, its code and
data cold after the update). They are kept in ``next_action`` until the next iteration uses them, and saved in the
checkpoint with the observation, so a resumed run steps with the very actions the uninterrupted one would.

Every ``log_every`` steps the learner's on-device metrics are read (the only host syncs the loop adds) and a row goes
to ``metrics.csv`` and TensorBoard (``fastsac.training.run_log``); every ``eval_every`` steps the deterministic
policy is evaluated on separate envs (``fastsac.training.evaluation``); every ``checkpoint_every`` steps and at the
end ``checkpoints/latest.pt`` is written atomically (its parts: ``fastsac.training.checkpoint_format``; a resume
loads it with ``fastsac.training.resume.restore_session``). Ctrl-C (SIGINT) stops at the end of the current step
and writes a checkpoint.

Where the session runs is its scope (``fastsac.training.scope``): one process, or one rank of a data-parallel job
(per-rank seeds and device, ``N * num_envs`` env steps per iteration, log rows reduced over ranks, rank 0 alone
writing logs, summary and evaluations, checkpoints written as a set). The session itself never asks which.
"""

from __future__ import annotations

import dataclasses
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fastsac.agents import make_learner
from fastsac.data import make as make_env
from fastsac.training.checkpoint import capture_rng_state
from fastsac.training.checkpoint_format import Checkpoint, Counters, EnvRecord, new_window
from fastsac.training.config import TrainConfig
from fastsac.training.decisions import RunDecisions
from fastsac.training.evaluation import EVAL_SEED_OFFSET, evaluate_policy
from fastsac.training.interrupt import StopOnSigint, TrainingInterrupted
from fastsac.training.parts import action_layout, make_buffer
from fastsac.training.resume import ActionLog, restore_session
from fastsac.training.run_log import RunLog, RunResult
from fastsac.training.rundir import CHECKPOINT_FILE
from fastsac.training.scope import RunScope, SingleProcess

__all__ = ["ActionLog", "RunResult", "Session"]


def _crossed(every: int, before: int, now: int) -> bool:
    """Whether a multiple of ``every`` lies in (before, now]."""
    return every > 0 and now // every > before // every


class Session:
    """Everything one training process holds: envs, learner, buffer, action log, counters, reports."""

    def __init__(self, config: TrainConfig, run_dir: Path, scope: RunScope | None = None, *,
                 env_seed: int | None = None, decisions: dict[str, Any] | None = None):
        """``scope``: where it runs (default: one process). ``env_seed``: the envs' seed (default: the run's, or
        this rank's). ``decisions``: a resumed run's checkpoint ``decisions`` part, kept unless the resume names
        --update or --threads. Sets torch's thread count to the run's (``train`` restores it)."""
        self.scope = scope = SingleProcess() if scope is None else scope
        self.config, self.run_dir = config, run_dir
        self.notes: list[str] = []  # said once the progress bar exists
        self.device = scope.device(config)
        self.env_seed = scope.env_seed(config.seed, config.num_envs) if env_seed is None else env_seed
        self.actions_from_step = 0  # the step the action log starts at (> 0 after a resume_env="reset" resume)
        self.env = make_env(config.env_id, num_envs=config.num_envs, seed=self.env_seed, backend=config.env_backend,
                            device=self.device, privileged_critic=config.privileged_critic)  # fmt: skip
        try:
            self.decisions = RunDecisions.make(config, self.device, self.env, previous=decisions,
                                               data_parallel=scope.data_parallel)
            self.notes += self.decisions.start_notes()
            lcfg = self.decisions.learner_config(config)
            # data parallel: this rank's noise generator; its networks come from rank 0 (scope.make_replica)
            lcfg = dataclasses.replace(lcfg, seed=scope.rank_seed(lcfg.seed))
            self.learner = make_learner(self.env.obs_dim, self.env, lcfg, self.device,
                                        policy_obs_dim=self.env.policy_obs_dim)
            self.learner.attach_envs(self.env.num_envs)
            self.buffer = make_buffer(config, self.env, self.device)
        except BaseException:
            self.env.close()
            raise
        shape, dtype = action_layout(self.env)
        self.actions = ActionLog((self.env.num_envs, *shape), dtype, self.device)
        self.counters = Counters()
        self.resume_exact: bool | None = None
        self.resume_note: str | None = None  # why a resume is not bit-exact (device change, reseeded generators)
        self.obs: torch.Tensor | None = None
        #: the policy's actions for ``obs``, computed by the last update (None: the next iteration calls ``act``)
        self.next_action: torch.Tensor | None = None
        self.log = RunLog(run_dir, config, scope.is_main)
        self._t0 = time.perf_counter()

    # --- bookkeeping -----------------------------------------------------------------------------------------
    @property
    def step(self) -> int:
        """Env steps so far, of all envs (and all ranks)."""
        return self.counters.step

    @property
    def utd_per_iteration(self) -> Fraction:
        return Fraction(str(self.config.utd)) * self.config.num_envs

    @property
    def steps_per_iteration(self) -> int:
        """Env steps one iteration adds to ``step``: every rank's ``num_envs`` (steps count over all ranks)."""
        return self.env.num_envs * self.scope.world_size

    def elapsed(self) -> float:
        """Seconds since the run started, across resumes."""
        return self.counters.wall_time + (time.perf_counter() - self._t0)

    def _random_action(self) -> torch.Tensor:
        env = self.env
        if env.is_discrete:
            return torch.randint(env.num_actions, (env.num_envs,), device=self.device)
        return torch.rand(env.num_envs, env.action_dim, device=self.device) * 2.0 - 1.0

    # --- checkpoints -----------------------------------------------------------------------------------------
    def checkpoint(self) -> Path:
        """Write the checkpoint (data parallel: this rank's file of the set, committed by rank 0)."""
        env = self.env
        device_env = env.device_native  # keeps no action log: its state instead, and the buffer
        # Without the full action log (after a reset resume, or of a device env) replay cannot rebuild the buffer.
        keep_buffer = self.config.save_buffer or self.actions_from_step or device_env
        ckpt = Checkpoint(
            config=self.config,
            device=str(self.device),
            counters=dataclasses.replace(self.counters, wall_time=self.elapsed()),
            learner=self.learner.state_dict(),
            buffer=self.buffer.state_dict() if keep_buffer else None,
            env=EnvRecord(env_id=env.env_id, backend=env.backend, seed=self.env_seed,
                          actions_from_step=self.counters.step if device_env else self.actions_from_step,
                          num_envs=env.num_envs, actions=self.actions.tensor(), obs=self.obs.cpu(),
                          next_action=None if self.next_action is None else self.next_action.cpu(),
                          state=env.state_dict() if device_env else None),  # fmt: skip
            rng=capture_rng_state(),
            decisions=self.decisions.to_checkpoint(),
        )
        return self.scope.save_checkpoint(self.run_dir / CHECKPOINT_FILE, ckpt.to_state())

    def restore(self, ckpt: Checkpoint) -> None:
        """Load a checkpoint into this freshly built session (checked first; envs, buffer and RNGs included)."""
        restore_session(self, ckpt)

    # --- the loop --------------------------------------------------------------------------------------------
    def run(self, *, resume_step: int | None = None) -> RunResult:
        """Train to ``total_steps``. ``resume_step``: the checkpoint's step (metrics rows after it are dropped);
        None: a new run."""
        self._t0 = time.perf_counter()
        if self.obs is None:
            self.obs = self.env.reset()
        log = self.log
        update_note = self.decisions.update_note(self.learner)
        # fallbacks were also warned when they happened; said again where the run starts
        log.open(self.counters.step, resume_step, [*self.notes, *([update_note] if update_note else []),
                                                   *(f.message() for f in self.learner.fallbacks)])  # fmt: skip
        log.write_summary(self, finished=False)
        try:
            with StopOnSigint(log.write) as sigint:
                stop = self.scope.agreed_stop(sigint)  # data parallel: every rank stops at the same log row
                self._loop(stop)
                if stop.requested:
                    self.checkpoint()
                    log.write_summary(self, finished=False)
                    raise TrainingInterrupted(self.run_dir, self.counters.step)
        finally:
            log.close()
            self.env.close()
        return RunResult.from_summary(self.run_dir, log.write_summary(self, finished=True))

    def _loop(self, stop: StopOnSigint) -> None:
        """Step, store, update until ``total_steps`` or a stop request. The loop body is kept to the calls it
        needs (a CPU step of a small SAC is a few milliseconds, of which Python bookkeeping is a measurable part):
        the update debt is an integer count of 1/den updates, and the boundaries (evaluation, log rows,
        checkpoints, the end) are checked against the next step at which one falls."""
        cfg, env, learner, buffer, c = self.config, self.env, self.learner, self.buffer, self.counters
        act, step_env, add = learner.act, env.step, buffer.add
        log_action = None if env.device_native else self.actions.append
        update, update_many, sample, batch_size = learner.update, learner.update_many, buffer.sample, cfg.batch_size
        observe = learner.observe_step if learner.observes_steps else None
        utd, steps = self.utd_per_iteration, self.steps_per_iteration
        num, den = utd.numerator, utd.denominator
        debt = int(c.utd_debt * den)  # the debt is a multiple of 1/den
        total, starts, window, recent = cfg.total_steps, cfg.learning_starts, c.window, c.recent_returns
        next_boundary = self._next_boundary()
        next_action = self.next_action
        tick = time.perf_counter()
        while c.step < total and not stop.requested:
            obs = self.obs
            if c.step < starts:
                action = self._random_action()
            else:
                action = act(obs) if next_action is None else next_action
            res = step_env(action)
            add(obs, action, res.reward, res.final_obs, res.terminated)
            if observe is not None:
                observe(res.reward, res.terminated, res.truncated)
            if log_action is not None:
                log_action(action)
            self.obs = res.next_obs
            before = c.step
            c.step = now_step = before + steps
            c.iteration += 1
            if res.episode_returns.size:
                window["episodes"] += int(res.episode_returns.size)
                window["return_sum"] += float(res.episode_returns.sum())
                window["length_sum"] += int(res.episode_lengths.sum())
                recent.extend(float(r) for r in res.episode_returns)
            next_action = None
            if now_step >= starts:
                n_updates, debt = divmod(debt + num, den)
                if n_updates == 1:  # this update also gives the next iteration's actions
                    next_action = update(sample(batch_size), act_obs=self.obs)
                elif n_updates:  # several: one sample of n_updates minibatches, one call (one CUDA graph on a GPU)
                    update_many(sample(n_updates * batch_size), n_updates)
            if now_step >= next_boundary:
                c.train_time += time.perf_counter() - tick
                c.utd_debt = Fraction(debt, den)
                self.next_action = next_action
                self._boundaries(before)
                window = c.window  # _log starts a new window
                next_boundary = self._next_boundary()
                tick = time.perf_counter()
        c.train_time += time.perf_counter() - tick
        c.utd_debt = Fraction(debt, den)
        self.next_action = next_action

    def _next_boundary(self) -> int:
        """The first step after the current one at which an evaluation, a log row, a checkpoint or the end falls."""
        cfg, step = self.config, self.counters.step
        nexts = [cfg.total_steps]
        for every in (cfg.eval_every, cfg.log_every, cfg.checkpoint_every):
            if every > 0:
                nexts.append((step // every + 1) * every)
        return min(nexts)

    def _boundaries(self, before: int) -> None:
        cfg, c = self.config, self.counters
        done = c.step >= cfg.total_steps
        evaluated = False
        if _crossed(cfg.eval_every, before, c.step) or (done and c.last_eval_step != c.step):
            self._evaluate()
            evaluated = True
        if evaluated or _crossed(cfg.log_every, before, c.step) or done:
            self._log(evaluated)
        if _crossed(cfg.checkpoint_every, before, c.step) or done:
            self.checkpoint()

    def _evaluate(self) -> None:
        cfg, c = self.config, self.counters
        c.last_eval_step = c.step
        if not self.scope.is_main:  # data parallel: rank 0 evaluates (the replicas are identical)
            return
        returns, _ = evaluate_policy(self.learner, cfg.env_id, cfg.eval_episodes, cfg.seed + EVAL_SEED_OFFSET,
                                     env_backend=cfg.env_backend, device=self.device,
                                     privileged_critic=cfg.privileged_critic)  # fmt: skip
        c.last_eval = (float(np.mean(returns)), float(np.std(returns)))

    def _log(self, evaluated: bool) -> None:
        """A metrics row (the host sync of the learner's metrics); data parallel: over all ranks, rank 0 writes."""
        c = self.counters
        if self.env.device_native:  # its episodes were tallied on the device
            ended = self.env.drain_episodes()
            c.window["episodes"] += ended.count
            c.window["return_sum"] += ended.return_sum
            c.window["length_sum"] += ended.length_sum
            c.recent_returns.extend(ended.recent)
        metrics, window = self.scope.reduce_row(self.learner.metrics(), c.window)
        c.window = new_window(c.step, c.train_time)
        self.log.row(self, metrics, window, evaluated)
