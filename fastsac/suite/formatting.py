"""How suite outputs write numbers: scores, ± pairs, step budgets, durations."""

from __future__ import annotations

import math
import statistics

__all__ = ["duration", "fmt", "mean_std", "plus_minus", "steps_label"]


def fmt(x: float | None, like: float | None = None) -> str:
    """``x`` with one decimal, or none from 1000 up (judged by ``like`` when given, so a ± pair agrees)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.0f}" if abs(x if like is None else like) >= 1000 else f"{x:.1f}"


def plus_minus(mean: float, std: float | None) -> str:
    return fmt(mean) + ("" if std is None else f" ± {fmt(std, mean)}")


def steps_label(n: int | None) -> str:
    if n is None:
        return "?"
    if n >= 1_000_000 and n % 100_000 == 0:
        return f"{n / 1_000_000:g}M"
    if n >= 1000 and n % 100 == 0:
        return f"{n / 1000:g}k"
    return str(n)


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and population std (None for a single value: no spread to report)."""
    return statistics.fmean(values), (statistics.pstdev(values) if len(values) > 1 else None)


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"
