"""Learning curves of a suite: per env, evaluation return against env steps and against wall-clock time."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

from fastsac.suite import stats
from fastsac.suite.formatting import fmt, steps_label
from fastsac.suite.published_curves import Curve
from fastsac.suite.results import RunRecord, safe_name
from fastsac.suite.schema import Reference

__all__ = ["plot_env"]


def _band(curves: list[tuple[list[float], list[float]]], grid: list[float]) -> tuple[str, list[float], ...]:
    """The seeds' curves, each linearly interpolated onto ``grid``, summarized per point: ``("IQM", iqm, low,
    high)`` with the 95% bootstrap interval of the IQM (rliable, two seeds or more), else ``("mean", mean, min,
    max)`` (one seed, or rliable missing)."""
    import numpy as np

    ys = np.stack([np.interp(grid, x, y) for x, y in curves])
    if len(curves) >= 2 and stats.missing() is None:
        iqm, low, high = stats.iqm_curve(ys)
        return "IQM", iqm.tolist(), low.tolist(), high.tolist()
    return "mean", ys.mean(0).tolist(), ys.min(0).tolist(), ys.max(0).tolist()


ROW_COLORS = ("tab:blue", "tab:orange", "tab:cyan", "tab:pink", "tab:olive", "tab:gray")
REF_COLORS = ("tab:red", "tab:green", "tab:purple", "tab:brown", "black", "tab:orange")


def _grid(curves: list[tuple[list[float], list[float]]], axis: str) -> list[float]:
    """Where the mean over seeds is drawn: the shared evaluation steps, or the overlap of the runs' ranges."""
    import numpy as np

    lo = max(x[0] for x, _ in curves)
    hi = min(x[-1] for x, _ in curves)
    if all(x == curves[0][0] for x, _ in curves):
        return curves[0][0]
    if hi <= lo:
        return []
    if axis == "time":
        return np.linspace(lo, hi, 100).tolist()
    return sorted({v for x, _ in curves for v in x if lo <= v <= hi})


def plot_env(env_id: str, rows: Sequence[tuple[str, list[RunRecord]]], refs: Sequence[Reference],
             plots: Path, threshold: float | None = None, published: Mapping[str, Curve] | None = None) -> list[Path]:
    """Two PNGs for one env: eval return against env steps and against wall-clock seconds. One colour per suite
    entry of the env (``rows``: (legend name, its runs)), each its seeds thin, their IQM thick with its 95%
    bootstrap interval shaded (:func:`_band`: the mean and the min-max range where there is no interval);
    ``refs`` as dashed lines, except on the steps axis where ``published`` (by reference source) has the reference's
    published learning curve: that is drawn instead, dashed, its IQM over the source's seeds with its band; the
    suite's time-to-score ``threshold`` as a dotted line."""
    from matplotlib.figure import Figure

    rows = [(name, [r for r in runs if r.evals]) for name, runs in rows]
    rows = [(name, runs) for name, runs in rows if runs]
    if not rows:
        return []
    written = []
    for axis, xlabel, col in (("steps", "env steps", 0), ("time", "wall-clock time (s)", 1)):
        fig = Figure(figsize=(6.4, 4.2), dpi=110, layout="constrained")
        ax = fig.subplots()
        drawn, kinds = 0, set()
        for (name, runs), color in zip(rows, ROW_COLORS):
            curves = [([e[col] for e in r.evals], [e[2] for e in r.evals]) for r in runs]
            curves = [(x, y) for x, y in curves if not any(math.isnan(v) for v in x)]
            if not curves:
                continue
            drawn += 1
            for x, y in curves:
                ax.plot(x, y, color=color, alpha=0.25, linewidth=0.8)
            grid = _grid(curves, axis)
            if grid:
                kind, center, low, high = _band(curves, grid)
                kinds.add(kind if len(curves) > 1 else "one seed")
                marker = "o" if len(grid) <= 3 else None
                ax.plot(grid, center, color=color, linewidth=2, marker=marker, label=f"{name}, {kind} of {len(curves)}")
                ax.fill_between(grid, low, high, color=color, alpha=0.2, linewidth=0)
        if not drawn:
            continue
        for ref, color in zip(refs, REF_COLORS):
            curve = (published or {}).get(ref.source) if axis == "steps" else None
            if curve is not None:
                kind, center, low, high = _band([(curve.steps.tolist(), y.tolist()) for y in curve.returns],
                                                curve.steps.tolist())  # fmt: skip
                ax.plot(curve.steps, center, color=color, linestyle="--", linewidth=1.3,
                        label=f"{ref.source} ({curve.measured_on}), {kind} of {len(curve.seeds)}")  # fmt: skip
                ax.fill_between(curve.steps, low, high, color=color, alpha=0.1, linewidth=0)
                continue
            budget = f" @ {steps_label(ref.steps)}" if ref.steps else ""
            ax.axhline(ref.score, color=color, linestyle="--", linewidth=1, label=f"{ref.source}{budget}: {fmt(ref.score)}")
        if threshold is not None:
            ax.axhline(threshold, color="dimgray", linestyle=":", linewidth=1.2, label=f"threshold {fmt(threshold)}")
        seeds = max(len(runs) for _, runs in rows)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("evaluation return")
        bands = ("bands: 95% bootstrap CI of the IQM" if "IQM" in kinds else
                 "bands: min-max (rliable missing)" if "mean" in kinds else "")  # fmt: skip
        title = f"{env_id}: up to {seeds} seed{'s' if seeds != 1 else ''}" + (f", {bands}" if bands else "")
        ax.set_title(title, fontsize="medium")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # a row whose seeds share no range has no mean line to name
            ax.legend(fontsize="small", loc="best")
        path = plots / f"{safe_name(env_id)}_{axis}.png"
        fig.savefig(path)
        written.append(path)
    return written
