"""Exact resume: the log of every action sent to the training envs, and its replay into fresh envs.

Environment state cannot be saved in general (EnvPool has no state API), so a checkpoint holds every action sent
to the envs (:class:`ActionLog`) and a resume re-creates the envs with the same seed and replays them
(:func:`replay_actions`). For deterministic simulators (EnvPool and gymnasium classic control, Box2D and MuJoCo on
the same machine and library versions) this reproduces the env state bit for bit, and the replay buffer is refilled
with the same transitions on the way, so it need not be stored. The session compares the replayed observation
with the saved one and reports a mismatch. A resume on another device type continues, but not bit-exactly
(:func:`device_change_notes` says why).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from fastsac.agents.rng import saved_device_type
from fastsac.data import ReplayBuffer, VecEnv
from fastsac.training.checkpoint import CheckpointError

__all__ = ["ActionLog", "device_change_notes", "replay_actions"]


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


def device_change_notes(ckpt: dict[str, Any], device: torch.device, learner_rng_note: str | None) -> list[str]:
    """Why a resume of ``ckpt`` on ``device`` is not bit-exact: another device type (its floating-point results
    differ) and the learner's generator reseeded on the way (``Learner.rng_note``); empty when neither holds."""
    learner = ckpt["learner"]
    saved = ckpt.get("device") or saved_device_type(learner["generator"], learner.get("generator_device"))
    notes = []
    if torch.device(saved).type != device.type:
        notes.append(f"the run trained on {saved} and continues on {device}, whose floating-point results differ")
    if learner_rng_note:
        notes.append(learner_rng_note)
    return notes
