"""Pictures of runs, drawn from their ``metrics.csv``: ``curves.png`` in each run directory (evaluation and training
return, alpha and steps/s against env steps), and :func:`plot_runs` for ``fastsac plot RUN [RUN ...]`` (runs side
by side, against env steps or wall-clock time).

matplotlib draws through its object API (``matplotlib.figure.Figure``, the Agg canvas): no pyplot, no global state,
no display needed. :class:`CurvesWriter` redraws only when metrics.csv holds an evaluation it has not drawn, so a
run pays for one small figure per evaluation (~0.1 s), never per logged row.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Sequence

__all__ = ["CURVES_FILE", "CurvesWriter", "build_run_figure", "build_runs_figure", "plot_runs", "read_metrics",
           "write_curves"]

CURVES_FILE = "curves.png"
#: (column, axis title) of each panel of a run's curves.png; eval_return shares its panel with episode_return.
PANELS = (("eval_return", "return"), ("alpha", "alpha"), ("sps", "env steps / s"))


def read_metrics(path: Path) -> dict[str, list[float]]:
    """The columns of a metrics.csv as floats (``nan`` for empty cells). Raises FileNotFoundError."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    columns: dict[str, list[float]] = {}
    for row in rows:
        for key, text in row.items():
            if key is None:
                continue
            try:
                value = float(text) if text not in (None, "") else math.nan
            except ValueError:
                value = math.nan
            columns.setdefault(key, []).append(value)
    return columns


def _series(cols: dict[str, list[float]], x: str, y: str) -> tuple[list[float], list[float]]:
    """The points of column ``y`` against column ``x`` where both are numbers."""
    xs, ys = cols.get(x, []), cols.get(y, [])
    pts = [(a, b) for a, b in zip(xs, ys) if not (math.isnan(a) or math.isnan(b))]
    return [a for a, _ in pts], [b for _, b in pts]


def build_run_figure(cols: dict[str, list[float]], title: str):
    """The figure of one run: return (evaluation, and training episodes faint), alpha and steps/s against env
    steps. Returned unsaved, so tests can read its lines."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.4), dpi=100, layout="constrained")
    axes = fig.subplots(1, len(PANELS))
    for ax, (column, ylabel) in zip(axes, PANELS):
        if column == "eval_return":
            x, y = _series(cols, "step", "episode_return")
            if x:
                ax.plot(x, y, color="tab:gray", alpha=0.5, linewidth=0.8, label="training episodes")
        x, y = _series(cols, "step", column)
        ax.plot(x, y, color="tab:blue", linewidth=1.6, marker="o" if len(x) <= 3 else None,
                label="evaluation" if column == "eval_return" else column)
        ax.set_xlabel("env steps")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if column == "alpha" and y and min(y) > 0:
            ax.set_yscale("log")
        if column == "eval_return":
            ax.legend(fontsize="small", loc="best")
    fig.suptitle(title)
    return fig


def write_curves(run_dir: Path, title: str | None = None) -> Path | None:
    """Draw ``run_dir/curves.png`` from ``run_dir/metrics.csv``; None when there is no metrics.csv yet."""
    run_dir = Path(run_dir)
    try:
        cols = read_metrics(run_dir / "metrics.csv")
    except FileNotFoundError:
        return None
    fig = build_run_figure(cols, title or run_dir.name)
    path = run_dir / CURVES_FILE
    tmp = path.with_name(f".{CURVES_FILE}.{os.getpid()}.tmp")
    fig.savefig(tmp, format="png")
    os.replace(tmp, path)  # a reader never sees half a picture
    return path


class CurvesWriter:
    """Redraws a run's curves.png when metrics.csv holds an evaluation not yet drawn; otherwise does nothing."""

    def __init__(self, run_dir: Path, title: str):
        self.run_dir, self.title = Path(run_dir), title
        self._drawn_step: int | None = None

    def update(self, step: int, evaluated: bool) -> Path | None:
        if not evaluated or step == self._drawn_step:
            return None
        self._drawn_step = step
        return write_curves(self.run_dir, self.title)


def build_runs_figure(runs: Sequence[tuple[str, dict[str, list[float]]]], x: str = "steps"):
    """Several runs side by side, one colour each: evaluation return, alpha and steps/s against env steps
    (``x="steps"``) or wall-clock seconds (``x="time"``). ``runs``: (name, metrics columns)."""
    from matplotlib.figure import Figure

    if x not in ("steps", "time"):
        raise ValueError(f"x must be 'steps' or 'time', got {x!r}")
    column, xlabel = ("step", "env steps") if x == "steps" else ("wall_time", "wall-clock time (s)")
    fig = Figure(figsize=(11, 3.6), dpi=100, layout="constrained")
    axes = fig.subplots(1, len(PANELS))
    for ax, (y_column, ylabel) in zip(axes, PANELS):
        for name, cols in runs:
            xs, ys = _series(cols, column, y_column)
            ax.plot(xs, ys, linewidth=1.4, marker="o" if len(xs) <= 3 else None, label=name)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("evaluation return" if y_column == "eval_return" else ylabel)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small", loc="best")
    fig.suptitle(f"{len(runs)} run{'s' if len(runs) != 1 else ''}")
    return fig


def plot_runs(run_dirs: Sequence[Path], out: Path, x: str = "steps") -> Path:
    """Draw the runs in ``run_dirs`` side by side into ``out`` (PNG). Raises FileNotFoundError for a folder
    without metrics.csv. Each run is named by its folder (with its parent's name when two folders share a name)."""
    run_dirs = [Path(p) for p in run_dirs]
    names = [p.name for p in run_dirs]
    runs = []
    for path, name in zip(run_dirs, names):
        metrics = path / "metrics.csv"
        if not metrics.is_file():
            raise FileNotFoundError(f"{path} has no metrics.csv: not a `fastsac train` run directory")
        shown = name if names.count(name) == 1 else f"{path.parent.name}/{name}"
        runs.append((shown, read_metrics(metrics)))
    fig = build_runs_figure(runs, x)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out
