"""Exact resume: restoring a session from a checkpoint, with the log of every action sent to the training envs
and its replay into fresh envs.

Environment state cannot be saved in general (EnvPool has no state API), so a checkpoint holds every action sent
to the envs (:class:`ActionLog`) and a resume re-creates the envs with the same seed and replays them
(:func:`replay_actions`). For deterministic simulators (EnvPool and gymnasium classic control, Box2D and MuJoCo on
the same machine and library versions) this reproduces the env state bit for bit, and the replay buffer is refilled
with the same transitions on the way, so it need not be stored. :func:`restore_session` checks the checkpoint
against the session before it loads anything (``Checkpoint.check_fits``), then compares the replayed observation
with the saved one and reports a mismatch. A resume on another device type continues, but not bit-exactly
(:func:`device_change_notes` says why).
"""

from __future__ import annotations

import dataclasses
import time
import warnings

import torch

from fastsac.data import ReplayBuffer, VecEnv
from fastsac.training.checkpoint import CheckpointError, restore_rng_state
from fastsac.training.checkpoint_check import loading
from fastsac.training.checkpoint_format import Checkpoint

__all__ = ["ActionLog", "device_change_notes", "replay_actions", "restore_session"]


class ActionLog:
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


def replay_actions(env: VecEnv, actions: ActionLog, buffer: ReplayBuffer | None = None) -> tuple[torch.Tensor, float]:
    """Reset ``env`` and step it through every logged action; with ``buffer``, add each transition to it.

    Returns the observation reached (what the next action acts on) and the seconds the replay took."""
    t = time.perf_counter()
    obs = env.reset()
    for action in actions.rows():
        res = env.step(action)
        if buffer is not None:
            buffer.add(obs, action, res.reward, res.final_obs, res.terminated)
        obs = res.next_obs
    return obs, time.perf_counter() - t


def device_change_notes(ckpt: Checkpoint, device: torch.device, learner_rng_note: str | None) -> list[str]:
    """Why a resume of ``ckpt`` on ``device`` is not bit-exact: another device type (its floating-point results
    differ) and the learner's generator reseeded on the way (``Learner.rng_note``); empty when neither holds."""
    notes = []
    if torch.device(ckpt.device).type != device.type:
        notes.append(f"the run trained on {ckpt.device} and continues on {device}, whose floating-point results "
                     "differ")
    if learner_rng_note:
        notes.append(learner_rng_note)
    return notes


def _restore_device_env(session, ckpt: Checkpoint) -> tuple[bool, list[str]]:
    """A device env (no action log): its saved state loaded, or fresh episodes where the checkpoint has no state
    (the simulator cannot save it) or the resume asks for ``resume_env="reset"``. Returns whether the observation
    was restored, and why the resume is not exact where it is not."""
    env, record, path = session.env, ckpt.env, ckpt.path
    session.actions_from_step = ckpt.counters.step
    if session.config.resume_env == "replay" and record.state is not None:
        with loading(path, "env"):
            env.load_state_dict(record.state)
        session.obs = record.obs.to(session.device)
        session.resume_exact = True
        session.notes.append("resume: the device env's state restored exactly")
        return True, []
    session.obs = env.reset()
    session.resume_exact = False
    if record.state is None:
        why = f"{env.state_note}; the envs start fresh episodes"
    else:
        why = "resume_env='reset': the envs start fresh episodes"
    return False, [why]


def restore_session(session, ckpt: Checkpoint) -> None:
    """Load ``ckpt`` into ``session`` (a ``Session`` freshly built from the checkpoint's config): checked against
    it first, then the learner, the buffer, the envs (replayed, or reset with ``resume_env="reset"``), the
    counters, and last the RNG streams (nothing before may consume them)."""
    cfg, path, record = session.config, ckpt.path, ckpt.env
    ckpt.check_fits(session.learner.state_dict(), session.env)
    if session.env.device_native and ckpt.buffer is None:
        raise CheckpointError(f"checkpoint {path}: a device env's checkpoint ({session.env.backend} backend) must "
                              "hold the replay buffer (it keeps no action log to rebuild it from), and this one has "
                              "none; restore the file from a copy or start a new run")  # fmt: skip
    if cfg.resume_env == "reset" and ckpt.buffer is None:
        raise CheckpointError(
            f"checkpoint {path}: resume_env='reset' needs the replay buffer in the checkpoint, and this run was saved "
            "without it (save_buffer=false); resume with --resume-env replay"
        )
    with loading(path, "learner"):
        session.learner.load_state_dict(ckpt.learner)
    if ckpt.buffer is not None:
        with loading(path, "buffer"):
            session.buffer.load_state_dict(ckpt.buffer)
    env_notes: list[str] = []
    if session.env.device_native:
        obs_restored, env_notes = _restore_device_env(session, ckpt)
    elif cfg.resume_env == "replay":
        session.actions.load(record.actions)
        session.actions_from_step = record.actions_from_step
        if record.backend != session.env.backend:
            warnings.warn(f"the run used the {record.backend} env backend, this process has {session.env.backend}; "
                          "the replayed env state will probably differ", stacklevel=2)  # fmt: skip
        obs, took = replay_actions(session.env, session.actions, session.buffer if ckpt.buffer is None else None)
        obs_restored = session.resume_exact = bool(torch.equal(obs, record.obs.to(session.device)))
        if obs_restored:
            session.notes.append(f"resume: replayed {session.actions.n * session.env.num_envs} env steps in "
                                 f"{took:.1f} s; environment state restored exactly")  # fmt: skip
        else:
            warnings.warn(
                "resume: replaying the recorded actions did not reproduce the saved observation (the env is not "
                "deterministic here, or fastsac/env versions changed); training continues from the replayed "
                "state, not exactly as an uninterrupted run",
                stacklevel=2,
            )
        session.obs = obs
    else:
        session.obs = session.env.reset()
        obs_restored = session.resume_exact = False
        session.actions_from_step = ckpt.counters.step
    # The actions the last update computed for the saved observation: used where the restored observation is it.
    next_action = record.next_action
    session.next_action = next_action.to(session.device) if next_action is not None and obs_restored else None
    session.counters = dataclasses.replace(ckpt.counters, resumes=ckpt.counters.resumes + 1)
    notes = env_notes + device_change_notes(ckpt, session.device, session.learner.rng_note)
    with loading(path, "rng"):  # last: nothing above may consume the restored streams
        notes += restore_rng_state(ckpt.rng, device=session.device, seed=cfg.seed, counter=ckpt.counters.step)
    if notes:
        session.resume_exact = False
        session.resume_note = "; ".join(notes)
        warnings.warn(f"resume is not bit-exact: {session.resume_note}", stacklevel=2)
