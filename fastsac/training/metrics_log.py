"""Run-directory logging: ``metrics.csv`` (fixed header), TensorBoard events, and a tqdm progress bar.

``metrics.csv`` has one row per logged point. Its header is written once when the run starts, so rows always line
up; a value the header has no column for goes to TensorBoard only. Empty cells mean "not measured at this row"
(``eval_return`` is empty on rows without an evaluation). On resume, :meth:`MetricsLogger.truncate_after` drops
rows logged after the checkpoint, so the file reads as if the run had never stopped; TensorBoard events after the
checkpoint are purged the same way (``SummaryWriter(purge_step=...)``).

No tracking service is involved; TensorBoard is optional (``tensorboard=False``).
"""

from __future__ import annotations

import csv
import io
import math
import sys
from pathlib import Path
from typing import Any

from fastsac.training.checkpoint import atomic_write_bytes

__all__ = ["METRIC_COLUMNS", "MetricsLogger"]

#: Columns of metrics.csv, in order. step: env steps so far (all envs); wall_time: seconds since the run started
#: (across resumes); sps: env steps per second of training in the last window (evaluation and checkpoint time
#: excluded); updates: gradient updates so far; episodes / episode_return / episode_length: training episodes that
#: ended in the window, their mean return and length; eval_return / eval_return_std: deterministic evaluation
#: (mean and std over eval_episodes); then the learner's means since the previous row.
METRIC_COLUMNS = (
    "step",
    "wall_time",
    "sps",
    "updates",
    "episodes",
    "episode_return",
    "episode_length",
    "eval_return",
    "eval_return_std",
    "alpha",
    "critic_loss",
    "q_mean",
    "actor_loss",
    "entropy",
    "alpha_loss",
)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return repr(value)
    return str(value)


class MetricsLogger:
    """Writes metric rows to ``run_dir/metrics.csv`` and (optionally) TensorBoard under ``run_dir/tb``."""

    def __init__(self, run_dir: Path, *, tensorboard: bool = True, resume_step: int | None = None):
        self.path = Path(run_dir) / "metrics.csv"
        self.columns: tuple[str, ...] = METRIC_COLUMNS
        if resume_step is None:
            if self.path.exists():
                raise FileExistsError(f"{self.path} already exists; refusing to overwrite a run's metrics")
            atomic_write_bytes(self.path, (",".join(self.columns) + "\n").encode())
        else:
            self.truncate_after(resume_step)
        self._file = open(self.path, "a", newline="")
        self._csv = csv.writer(self._file)
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:  # tensorboard is a dependency; say what to do if it is missing anyway
                raise ImportError(
                    "TensorBoard logging needs the 'tensorboard' package: pip install tensorboard "
                    "(or pass --no-tensorboard)"
                ) from exc
            self._tb = SummaryWriter(
                log_dir=str(Path(run_dir) / "tb"), purge_step=None if resume_step is None else resume_step + 1
            )

    def truncate_after(self, step: int) -> None:
        """Keep the header (whatever columns it had) and the rows with ``step <= step``; rewrite atomically."""
        if not self.path.exists():
            atomic_write_bytes(self.path, (",".join(self.columns) + "\n").encode())
            return
        with open(self.path, newline="") as f:
            rows = list(csv.reader(f))
        if not rows:
            header: list[str] = list(self.columns)
            body: list[list[str]] = []
        else:
            header, body = rows[0], rows[1:]
        if "step" not in header:
            raise ValueError(f"{self.path} has no 'step' column; it is not a fastsac metrics file")
        i = header.index("step")
        kept = [r for r in body if r and len(r) > i and r[i] != "" and float(r[i]) <= step]
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(kept)
        atomic_write_bytes(self.path, buf.getvalue().encode())
        self.columns = tuple(header)

    def log(self, row: dict[str, Any]) -> None:
        """Append one row (missing columns stay empty) and send every numeric value to TensorBoard."""
        self._csv.writerow([_cell(row.get(c)) for c in self.columns])
        self._file.flush()
        if self._tb is not None:
            step = int(row["step"])
            for key, value in row.items():
                if key == "step" or value is None or isinstance(value, str):
                    continue
                if isinstance(value, float) and math.isnan(value):
                    continue
                group = "eval" if key.startswith("eval_") else ("time" if key in ("wall_time", "sps") else "train")
                self._tb.add_scalar(f"{group}/{key}", value, step)
            self._tb.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
        if self._tb is not None:
            self._tb.close()
            self._tb = None


class Progress:
    """A tqdm bar over env steps on a terminal; one plain line per logged row when stderr is not a terminal (log
    files of suite runs); nothing when disabled."""

    def __init__(self, total: int, initial: int, enabled: bool, desc: str):
        self._bar = None
        self._lines = False
        self._total, self._desc = total, desc
        if enabled and not sys.stderr.isatty():
            self._lines = True
        elif enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=total, initial=initial, unit="step", unit_scale=True, desc=desc, dynamic_ncols=True,
                file=sys.stderr, smoothing=0.1,
            )

    def update(self, step: int, postfix: dict[str, Any]) -> None:
        if self._lines:
            parts = " ".join(f"{k}={v}" for k, v in postfix.items() if v is not None)
            print(f"{self._desc}: step {step}/{self._total} {parts}", file=sys.stderr, flush=True)
            return
        if self._bar is None:
            return
        self._bar.update(step - self._bar.n)
        self._bar.set_postfix({k: v for k, v in postfix.items() if v is not None}, refresh=True)

    def write(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
