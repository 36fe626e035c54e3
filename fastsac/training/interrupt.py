"""Stopping a run cleanly: Ctrl-C (SIGINT) ends the loop after the current step, which then checkpoints."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

__all__ = ["StopOnSigint", "TrainingInterrupted"]


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGINT after writing a checkpoint; ``run_dir`` can be resumed."""

    def __init__(self, run_dir: Path, step: int):
        super().__init__(f"interrupted at step {step}; checkpoint saved; resume with: fastsac train --resume {run_dir}")
        self.run_dir = run_dir
        self.step = step


class StopOnSigint:
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
