"""What a run reports: ``summary.json``, the metrics rows (``metrics.csv`` and TensorBoard, through
``metrics_log.MetricsLogger``), the progress line, and the notes said at its start.

Only the main process writes (data parallel: rank 0; the others keep the bar off and write nothing). summary.json is
written when the run starts (``finished: false``), when it stops on Ctrl-C, and at its end; its fields are listed in
docs/training.md. A metrics row covers the log window since the previous row: its env steps per second, the training
episodes that ended in it, the evaluation made at its step (if any), and the learner's means over the window.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fastsac.training.config import TrainConfig
from fastsac.training.curves import CurvesWriter
from fastsac.training.metrics_log import MetricsLogger, Progress
from fastsac.training.rundir import SUMMARY_FILE, write_json

__all__ = ["RunLog", "RunResult"]


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

    @classmethod
    def from_summary(cls, run_dir: Path, summary: dict[str, Any]) -> RunResult:
        return cls(run_dir=run_dir, total_steps=summary.get("total_steps") or 0,
                   final_eval_return=summary.get("final_eval_return"), final_eval_std=summary.get("final_eval_std"),
                   sps=summary.get("sps") or 0.0, wall_time=summary.get("wall_time") or 0.0,
                   summary=summary)  # fmt: skip


def _fastsac_version() -> str:
    import fastsac

    return fastsac.__version__


class RunLog:
    """The reports of one session (``session``: a ``fastsac.training.session.Session``)."""

    def __init__(self, run_dir: Path, config: TrainConfig, is_main: bool):
        self.run_dir, self.config, self.is_main = run_dir, config, is_main
        self.logger: MetricsLogger | None = None
        self.progress: Progress | None = None
        self._first_call_said = False
        self.curves: CurvesWriter | None = None

    def open(self, step: int, resume_step: int | None, notes: list[str]) -> None:
        """Start the metrics files (``resume_step``: drop rows after it; None: a new run) and the progress bar, and
        say ``notes``."""
        cfg = self.config
        if self.is_main:
            self.logger = MetricsLogger(self.run_dir, tensorboard=cfg.tensorboard, resume_step=resume_step)
            self.curves = CurvesWriter(self.run_dir, f"{cfg.env_id}, {cfg.learner.agent}, seed {cfg.seed}")
        self.progress = Progress(cfg.total_steps, step, cfg.progress and self.is_main, desc=cfg.env_id)
        for note in notes:
            self.write(note)

    def write(self, text: str) -> None:
        """A line to stderr that does not break the progress bar."""
        self.progress.write(text)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()
        if self.logger is not None:
            self.logger.close()

    def _draw(self, step: int, evaluated: bool) -> None:
        """Redraw curves.png after an evaluation; a picture that cannot be drawn never stops the run (said once)."""
        if self.curves is None:
            return
        try:
            self.curves.update(step, evaluated)
        except Exception as exc:  # noqa: BLE001 - matplotlib or the disk; the run matters more than its picture
            self.curves = None
            self.write(f"curves.png: not drawn from now on ({type(exc).__name__}: {exc})")

    # --- summary.json ------------------------------------------------------------------------------------------
    def summary(self, session, finished: bool) -> dict[str, Any]:
        c, learner = session.counters, session.learner
        ev = c.last_eval
        return {
            "finished": finished,
            "env_id": self.config.env_id,
            "agent": self.config.learner.agent,
            "seed": self.config.seed,
            "total_steps": c.step,
            "updates": learner.num_updates,
            "final_eval_return": ev[0] if (finished and ev) else None,
            "final_eval_std": ev[1] if (finished and ev) else None,
            "last_eval_return": ev[0] if ev else None,
            "sps": c.step / c.train_time if c.train_time > 0 else None,
            "wall_time": session.elapsed(),
            "resumes": c.resumes,
            "resume_exact": session.resume_exact,
            "resume_note": session.resume_note,
            "device": str(session.device),
            **session.decisions.summary(learner),
            "env_backend": session.env.backend,
            "ops_backend": learner.backend,
            "fallbacks": [f.to_dict() for f in learner.fallbacks],
            "distributed": session.scope.describe(),
            "versions": {"fastsac": _fastsac_version(), "torch": torch.__version__,
                         "python": platform.python_version()},  # fmt: skip
        }

    def write_summary(self, session, finished: bool) -> dict[str, Any]:
        summary = self.summary(session, finished)
        if self.is_main:
            write_json(self.run_dir / SUMMARY_FILE, summary)
        return summary

    # --- metrics rows and the progress line ----------------------------------------------------------------------
    def row(self, session, metrics: dict[str, float], window: dict[str, Any], evaluated: bool) -> None:
        """Log the row of ``window`` (closed at the session's step) with the learner's ``metrics``."""
        if self.logger is None:
            return
        c, learner = session.counters, session.learner
        if not self._first_call_said and (note := session.decisions.first_call_note(learner)) is not None:
            self._first_call_said = True
            self.write(note)
        steps = c.step - window["last_step"]
        seconds = c.train_time - window["last_train_time"]
        episodes = window["episodes"]
        row: dict[str, Any] = {
            "step": c.step,
            "wall_time": round(session.elapsed(), 3),
            "sps": round(steps / seconds, 2) if seconds > 0 else None,
            "updates": learner.num_updates,
            "episodes": episodes,
            "episode_return": window["return_sum"] / episodes if episodes else None,
            "episode_length": window["length_sum"] / episodes if episodes else None,
            "eval_return": c.last_eval[0] if evaluated else None,
            "eval_return_std": c.last_eval[1] if evaluated else None,
        }
        row.update({key: value for key, value in metrics.items() if key != "num_updates"})
        self.logger.log(row)
        self._draw(c.step, evaluated)
        recent = float(np.mean(c.recent_returns)) if c.recent_returns else None
        self.progress.update(c.step, {
            "sps": f"{row['sps']:.0f}" if row["sps"] else None,
            "return": f"{recent:.1f}" if recent is not None else None,
            "eval": f"{c.last_eval[0]:.1f}" if c.last_eval else None,
            "alpha": f"{metrics['alpha']:.3g}" if "alpha" in metrics else None,
        })  # fmt: skip
