"""The statistics of a suite report, all from rliable (Agarwal et al. 2021, "Deep RL at the Edge of the Statistical
Precipice"; the optional extra ``fastsac[report]``): IQM, mean and median with 95% stratified-bootstrap confidence
intervals, performance profiles, and the probability of improvement of one agent over another. Nothing here
resamples by hand: without rliable, :func:`missing` says so and the report prints means and stds only.

A score matrix is ``runs x tasks`` (rliable's layout): rows are seeds, columns envs. Per-env statistics pass one
column. The bootstrap is seeded (:data:`SEED`), so a report rebuilt from the same results prints the same intervals.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Mapping

import numpy as np

__all__ = ["CI", "REPS", "REPS_CURVE", "REPS_POI", "SEED", "aggregates", "iqm_curve", "missing", "performance_profiles",
           "probability_of_improvement"]

# Bootstrap resamples. rliable's defaults are 50,000 for point metrics and 2,000 for profiles; here (2 busy cores)
# 10,000 resamples of two 3 x 4 matrices took 2.9 s for IQM/mean/median and 17.7 s for the probability of
# improvement, whose function is costly per resample (all run pairs of every task): 5,000 and 2,000 keep a report
# to seconds, with CI ends that move in the second significant digit at most between bootstrap seeds.
REPS = 5_000
REPS_POI = 2_000
REPS_CURVE = 2_000  # a learning curve's band: one IQM per point (up to 100 points on the wall-time axis)
SEED = 0
CI = 0.95
METRICS = ("IQM", "mean", "median")

#: (point, low, high)
Interval = tuple[float, float, float]


def missing() -> str | None:
    """None when rliable (and its bootstrap, arch) imports; else what is missing and how to get it."""
    try:
        from rliable import library, metrics  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - ImportError, or an arch/pandas pairing that fails on import
        return (f"rliable is not usable here ({type(exc).__name__}: {exc}); install the report extra: "
                "pip install 'fastsac[report]'")
    return None


@contextlib.contextmanager
def _seeded():
    """rliable's bootstraps draw their indices from numpy's global generator (``np.random.choice`` in
    ``StratifiedBootstrap.update_indices``), whatever ``random_state`` says: seed it for the call, then put the
    caller's state back. Also hides arch's "random_state is deprecated" FutureWarning, raised on every call."""
    state = np.random.get_state()
    np.random.seed(SEED)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        np.random.set_state(state)


def aggregates(scores: Mapping[str, np.ndarray], reps: int = REPS) -> dict[str, dict[str, Interval]]:
    """name -> {"IQM", "mean", "median"} -> (point, low, high) for each ``runs x tasks`` matrix: the point
    estimates over all runs and tasks, with 95% stratified-bootstrap intervals (runs resampled within each task)."""
    from rliable import library as rly
    from rliable import metrics

    def fn(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x), metrics.aggregate_median(x)])

    data = {k: np.asarray(v, dtype=float) for k, v in scores.items()}
    with _seeded():
        points, cis = rly.get_interval_estimates(data, fn, reps=reps, confidence_interval_size=CI)
    out = {}
    for name in data:
        out[name] = {m: (float(points[name][i]), float(cis[name][0, i]), float(cis[name][1, i]))
                     for i, m in enumerate(METRICS)}
    return out


def iqm_curve(ys: np.ndarray, reps: int = REPS_CURVE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The IQM over runs at each point of a learning curve, and its 95% bootstrap interval: ``ys`` is ``runs x
    points`` (the runs' returns on a shared grid); runs are resampled at each point on its own (rliable's
    sample-efficiency curves: a ``runs x 1 task x points`` score array)."""
    from rliable import library as rly
    from scipy import stats as sps

    data = {"curve": np.asarray(ys, dtype=float)[:, None, :]}

    def fn(x: np.ndarray) -> np.ndarray:  # rliable's aggregate_iqm (trim_mean, 25%) at every point in one call
        return sps.trim_mean(x.reshape(x.shape[0], -1), proportiontocut=0.25, axis=0)

    with _seeded():
        points, cis = rly.get_interval_estimates(data, fn, reps=reps, confidence_interval_size=CI)
    return np.asarray(points["curve"]), np.asarray(cis["curve"][0]), np.asarray(cis["curve"][1])


def performance_profiles(scores: Mapping[str, np.ndarray], taus: np.ndarray,
                         reps: int = 2_000) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """name -> (fraction of runs with normalized score > tau for each tau, its 95% CI low, high), over all runs of
    all tasks (rliable's score distribution; bootstrap as above)."""
    from rliable import library as rly

    data = {k: np.asarray(v, dtype=float) for k, v in scores.items()}
    with _seeded():
        profiles, cis = rly.create_performance_profile(data, np.asarray(taus, dtype=float), reps=reps,
                                                       confidence_interval_size=CI)
    return {k: (np.asarray(profiles[k]), np.asarray(cis[k][0]), np.asarray(cis[k][1])) for k in data}


def probability_of_improvement(x: np.ndarray, y: np.ndarray, reps: int = REPS_POI) -> Interval:
    """P(X > Y): the probability that a run of X beats a run of Y on a task drawn at random (ties count half),
    averaged over tasks; ``x`` and ``y`` are ``runs x tasks`` with the same tasks (columns) in the same order.
    With a 95% stratified-bootstrap interval (each agent's runs resampled within each task)."""
    from rliable import library as rly
    from rliable import metrics

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must hold the same tasks, got {x.shape[1]} and {y.shape[1]} columns")
    with _seeded():
        points, cis = rly.get_interval_estimates({"pair": [x, y]}, metrics.probability_of_improvement, reps=reps,
                                                 confidence_interval_size=CI)
    return float(np.squeeze(points["pair"])), float(np.squeeze(cis["pair"][0])), float(np.squeeze(cis["pair"][1]))
