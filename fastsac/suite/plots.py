"""Learning curves of a suite: per env, evaluation return against env steps and against wall-clock time."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from fastsac.suite.formatting import fmt, steps_label
from fastsac.suite.results import RunRecord
from fastsac.suite.runner import safe_name
from fastsac.suite.schema import Reference

__all__ = ["plot_env"]


def _band(curves: list[tuple[list[float], list[float]]], grid: list[float]) -> tuple[list[float], ...]:
    """Mean, min and max over curves, each linearly interpolated onto ``grid``."""
    import numpy as np

    ys = np.stack([np.interp(grid, x, y) for x, y in curves])
    return ys.mean(0).tolist(), ys.min(0).tolist(), ys.max(0).tolist()


def plot_env(env_id: str, runs: list[RunRecord], refs: Sequence[Reference], plots: Path) -> list[Path]:
    """Two PNGs: eval return against env steps and against wall-clock seconds; mean line, min-max band."""
    import numpy as np
    from matplotlib.figure import Figure

    runs = [r for r in runs if r.evals]
    if not runs:
        return []
    written = []
    for axis, xlabel, col in (("steps", "env steps", 0), ("time", "wall-clock time (s)", 1)):
        curves = [([e[col] for e in r.evals], [e[2] for e in r.evals]) for r in runs]
        curves = [(x, y) for x, y in curves if not any(math.isnan(v) for v in x)]
        if not curves:
            continue
        lo = max(x[0] for x, _ in curves)
        hi = min(x[-1] for x, _ in curves)
        if all(x == curves[0][0] for x, _ in curves):
            grid = curves[0][0]
        elif hi > lo:
            grid = np.linspace(lo, hi, 100).tolist() if axis == "time" else sorted(
                {v for x, _ in curves for v in x if lo <= v <= hi}
            )
        else:
            grid = []
        fig = Figure(figsize=(6.4, 4.2), dpi=110, layout="constrained")
        ax = fig.subplots()
        for x, y in curves:
            ax.plot(x, y, color="tab:blue", alpha=0.25, linewidth=0.8)
        if grid:
            mean, low, high = _band(curves, grid)
            marker = "o" if len(grid) <= 3 else None
            ax.plot(grid, mean, color="tab:blue", linewidth=2, marker=marker, label=f"fastsac, mean of {len(curves)}")
            ax.fill_between(grid, low, high, color="tab:blue", alpha=0.2, linewidth=0, label="min-max over seeds")
        for ref, color in zip(refs, ("tab:red", "tab:green", "tab:purple", "tab:orange", "tab:brown")):
            budget = f" @ {steps_label(ref.steps)}" if ref.steps else ""
            label = f"{ref.source}{budget}: {fmt(ref.score)}"
            ax.axhline(ref.score, color=color, linestyle="--", linewidth=1, label=label)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("evaluation return")
        ax.set_title(f"{env_id} ({len(runs)} seed{'s' if len(runs) != 1 else ''})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="best")
        path = plots / f"{safe_name(env_id)}_{axis}.png"
        fig.savefig(path)
        written.append(path)
    return written
