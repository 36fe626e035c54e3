"""Published learning curves (``definitions/published_curves.csv``: per-seed evaluation returns of published
agents at the steps their authors evaluated, vendored with source, license and commit in the file's header), keyed
by the reference they belong to: a reference's ``source`` and ``env``. Suite plots draw a curve in place of its
reference's single point (``plots.plot_env``)."""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["CURVES_FILE", "Curve", "load_curves"]

CURVES_FILE = Path(__file__).resolve().parent / "definitions" / "published_curves.csv"


@dataclass(frozen=True)
class Curve:
    """One source's runs on one env, evaluated at shared steps."""

    source: str
    env: str  #: our env id it is drawn beside
    measured_on: str  #: the env id the source used
    steps: np.ndarray  #: (points,) env steps, increasing
    returns: np.ndarray  #: (seeds, points) evaluation returns
    seeds: tuple[int, ...]


@functools.lru_cache(maxsize=None)
def load_curves(path: Path = CURVES_FILE) -> dict[tuple[str, str], Curve]:
    """(source, env) -> Curve. Every seed of a curve must have been evaluated at the same steps (a ValueError
    names the curve where not)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    grouped: dict[tuple[str, str], dict[int, list[tuple[int, float]]]] = {}
    measured: dict[tuple[str, str], str] = {}
    for r in rows:
        key = (r["source"], r["env"])
        grouped.setdefault(key, {}).setdefault(int(r["seed"]), []).append((int(r["step"]), float(r["return"])))
        measured[key] = r["measured_on"]
    curves = {}
    for key, by_seed in grouped.items():
        seeds = tuple(sorted(by_seed))
        points = [sorted(by_seed[s]) for s in seeds]
        steps = [step for step, _ in points[0]]
        if any([step for step, _ in p] != steps for p in points):
            raise ValueError(f"{path}: the seeds of {key[0]} on {key[1]} were evaluated at different steps")
        returns = np.array([[value for _, value in p] for p in points])
        curves[key] = Curve(key[0], key[1], measured[key], np.array(steps), returns, seeds)
    return curves
