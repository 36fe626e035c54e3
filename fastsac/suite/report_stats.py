"""The statistical sections of a suite report: per-row IQM with its interval, normalized scores aggregated over
envs (IQM, mean, median with 95% stratified-bootstrap intervals), performance profiles, the probability of
improvement between agents, and the time to a return threshold. The numbers come from :mod:`fastsac.suite.stats`
(rliable); this module arranges them as markdown and draws the profile.

An agent's aggregate uses the envs where it has finished runs and, on those, the seeds every one of them finished
(rliable's ``runs x tasks`` matrix); the report says which. Each env's score is normalized as
``(return - random) / (reference - random)``: 0 is a uniformly random policy, 1 the named published reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from fastsac.suite import stats
from fastsac.suite.formatting import duration, fmt, steps_label
from fastsac.suite.results import RunRecord
from fastsac.suite.schema import Suite

__all__ = ["aggregate_section", "poi_vs_reference", "row_interval", "threshold_section"]


def _ci(point: float, lo: float, hi: float, n: int, f=fmt) -> str:
    if n < 2:
        return f"{f(point)} (1 seed: no interval)"
    return f"{f(point)} [{f(lo)}, {f(hi)}]"


def _steps(x: float) -> str:
    """An env-step count that may be a mean: 4333.3 -> 4.3k."""
    return steps_label(int(x)) if float(x).is_integer() else (f"{x / 1000:.1f}k" if x >= 1000 else f"{x:.0f}")


def _norm(x: float) -> str:
    return f"{x:.2f}"


def row_interval(finals: Sequence[float]) -> str:
    """``IQM [low, high]`` of one row's final returns over seeds (95% bootstrap over seeds)."""
    if not finals or stats.missing():
        return "n/a"
    iv = stats.aggregates({"row": np.array(finals, dtype=float)[:, None]})["row"]["IQM"]
    return _ci(*iv, len(finals))


def poi_vs_reference(ours: Sequence[float], theirs: Sequence[float] | None) -> str:
    """P(a run of ours beats a published run) [95% CI] on one env, from the reference's per-seed scores."""
    if not theirs:
        return "n/a (no per-seed values)"
    if not ours or stats.missing():
        return "n/a"
    p = stats.probability_of_improvement(np.array(ours, dtype=float)[:, None], np.array(theirs, dtype=float)[:, None])
    seeds = (f"1 seed of ours, fixed; their {len(theirs)} resampled" if len(ours) == 1 else
             f"{len(ours)} seeds of ours vs {len(theirs)}")
    return f"{_norm(p[0])} [{_norm(p[1])}, {_norm(p[2])}] ({seeds})"


def _groups(suite: Suite) -> dict[str, list]:
    """Agent -> its entries (one per env); an agent with two entries for one env is split by label."""
    groups: dict[str, list] = {}
    for e in suite.envs:
        twice = sum(1 for o in suite.envs if o.env == e.env and o.agent == e.agent) > 1
        groups.setdefault(e.label if twice else e.agent, []).append(e)
    return groups


def _matrix(entries, finals: dict[str, dict[int, float]], suite: Suite) -> tuple[np.ndarray, list[str], list[int]]:
    """Normalized ``seeds x envs`` scores of one agent: envs with a finished run, seeds finished on all of them."""
    envs = [e for e in entries if finals.get(e.label) and e.env in suite.normalization]
    if not envs:
        return np.zeros((0, 0)), [], []
    seeds = sorted(set.intersection(*(set(finals[e.label]) for e in envs)))
    cols = []
    for e in envs:
        random, ref = suite.normalization[e.env]
        cols.append([(finals[e.label][s] - random.score) / (ref.score - random.score) for s in seeds])
    return np.array(cols, dtype=float).T.reshape(len(seeds), len(envs)), [e.env for e in envs], seeds


def _profile_png(scores: dict[str, np.ndarray], path: Path) -> Path:
    from matplotlib.figure import Figure

    flat = np.concatenate([s.ravel() for s in scores.values()])
    taus = np.linspace(min(0.0, float(flat.min())), max(1.25, float(flat.max())), 101)
    profiles = stats.performance_profiles(scores, taus)
    fig = Figure(figsize=(6.4, 4.2), dpi=110, layout="constrained")
    ax = fig.subplots()
    for name, (frac, lo, hi) in profiles.items():
        n = scores[name].shape[0]
        (line,) = ax.plot(taus, frac, linewidth=2, label=f"{name} ({n} seed{'s' if n != 1 else ''} x "
                                                           f"{scores[name].shape[1]} envs)")
        ax.fill_between(taus, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.axvline(1.0, color="black", linestyle="--", linewidth=1, label="the reference")
    ax.set_xlabel(r"normalized score $\tau$ (0: random policy, 1: reference)")
    ax.set_ylabel(r"fraction of runs with score > $\tau$")
    ax.set_title("Performance profile (95% stratified-bootstrap bands)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    fig.savefig(path)
    return path


def aggregate_section(suite: Suite, finals: dict[str, dict[int, float]], out: Path, plots: Path) -> list[str]:
    """``## Over envs``: normalization, per-agent IQM/mean/median with intervals, the performance profile and,
    with two agents or more, the probability of improvement of each pair. ``finals``: label -> seed -> return."""
    lines = ["## Over envs (normalized scores)", ""]
    if not suite.normalization:
        return lines + ["Not computed: the suite names no `[normalization]` reference.", ""]
    lines += ["Each env's final return is normalized as (return − random) / (reference − random): 0 is a uniformly",
              "random policy, 1 the published reference named below (the same one for every agent; a scale, not a",
              "comparison, so its budget may differ from the rows'; its source is listed under Sources).", "",
              "| Env | Random policy (0) | Reference (1) |", "| --- | ---: | ---: |"]
    for env_id, (random, ref) in suite.normalization.items():
        at = f" @ {steps_label(ref.steps)}" if ref.steps else ""
        lines.append(f"| {env_id} | {fmt(random.score)} | {fmt(ref.score)}{at}, {ref.source}"
                     f"{'' if ref.verified else ' (unverified)'} |")
    lines += ["", "Random-policy scores:", ""]
    for env_id, (random, _) in suite.normalization.items():
        url = f" <{random.url}>" if random.url else ""
        lines.append(f"- {env_id}: {random.source}, {random.protocol}{url}")
    lines.append("")
    missing = stats.missing()
    if missing:
        return lines + [f"Intervals, profiles and probabilities of improvement not computed: {missing}.", ""]
    matrices = {}
    for name, entries in _groups(suite).items():
        m, envs, seeds = _matrix(entries, finals, suite)
        if m.size:
            matrices[name] = (m, envs, seeds)
    if not matrices:
        return lines + ["No agent has a finished run on a normalized env yet.", ""]
    agg = stats.aggregates({k: v[0] for k, v in matrices.items()})
    lines += ["IQM, mean and median of the normalized scores over all runs of all envs, with 95% stratified-bootstrap",
              f"confidence intervals (rliable, {stats.REPS:,} resamples, seeds resampled within each env).", "",
              "| Agent | Envs | Seeds | IQM [95% CI] | Mean [95% CI] | Median [95% CI] |",
              "| --- | --- | ---: | ---: | ---: | ---: |"]
    for name, (m, envs, seeds) in matrices.items():
        cells = " | ".join(_ci(*agg[name][k], len(seeds), _norm) for k in stats.METRICS)
        lines.append(f"| {name} | {', '.join(envs)} | {len(seeds)} ({', '.join(map(str, seeds))}) | {cells} |")
    lines.append("")
    path = _profile_png({k: v[0] for k, v in matrices.items()}, plots / "profile.png")
    lines += [f"![performance profile]({path.relative_to(out).as_posix()})", ""]
    names = list(matrices)
    if len(names) >= 2:
        lines += ["Probability of improvement P(X > Y): the chance that a run of X beats a run of Y on an env drawn",
                  "at random (ties count half), over the envs both have finished, with a 95% stratified-bootstrap",
                  f"interval ({stats.REPS_POI:,} resamples). Above 0.5 favours X.", "",
                  "| X | Y | Envs | P(X > Y) [95% CI] |", "| --- | --- | --- | ---: |"]
        for i, x in enumerate(names):
            for y in names[i + 1:]:
                common = [env for env in matrices[x][1] if env in matrices[y][1]]
                if not common:
                    lines.append(f"| {x} | {y} | none in common | n/a |")
                    continue
                mx = matrices[x][0][:, [matrices[x][1].index(env) for env in common]]
                my = matrices[y][0][:, [matrices[y][1].index(env) for env in common]]
                n = min(mx.shape[0], my.shape[0])
                p = stats.probability_of_improvement(mx, my)
                lines.append(f"| {x} | {y} | {', '.join(common)} | {_ci(*p, n, _norm)} |")
        lines.append("")
    return lines


def _first_reach(record: RunRecord, score: float) -> tuple[int, float] | None:
    for step, wall, ret, _ in record.evals:
        if ret >= score:
            return step, wall
    return None


def threshold_section(suite: Suite, results: dict[str, list[RunRecord]], machine: str) -> list[str]:
    """``## Time to threshold``: per row, env steps and wall-clock seconds to the first evaluation at or above
    the suite's threshold for the env; IQM over the seeds that reached it, with its 95% interval."""
    if not suite.thresholds:
        return ["## Time to threshold", "", "Not computed: the suite names no `[thresholds]` (no return to reach).", ""]
    missing = stats.missing()
    lines = ["## Time to threshold", "",
             "Env steps and wall-clock time (training and evaluation, from the run's start) to the first evaluation",
             "at or above the threshold; IQM over the seeds that reached it"
             + (f" with 95% bootstrap intervals (rliable). Measured on: {machine}." if not missing else
                f". Measured on: {machine}. Intervals not computed: {missing}."), "",
             "| Env | Agent | Threshold | Reached | Env steps: IQM [95% CI] | Wall-clock: IQM [95% CI] |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for e in suite.envs:
        th = suite.thresholds.get(e.env)
        if th is None:
            continue
        runs = [r for r in results[e.label] if r.evals]
        hits = [h for h in (_first_reach(r, th.score) for r in runs) if h is not None]
        head = f"| {e.env} | {e.agent} | {fmt(th.score)} | {len(hits)} of {len(runs)} seeds"
        if not hits:
            lines.append(f"{head} | not reached | not reached |")
            continue
        if missing:
            cells = [_steps(float(np.mean([h[0] for h in hits]))) + " (mean)",
                     duration(float(np.mean([h[1] for h in hits]))) + " (mean)"]
        else:
            agg = stats.aggregates({"steps": np.array([[h[0]] for h in hits], dtype=float),
                                    "wall": np.array([[h[1]] for h in hits], dtype=float)})
            cells = [_ci(*agg["steps"]["IQM"], len(hits), _steps),
                     _ci(*agg["wall"]["IQM"], len(hits), duration)]
        lines.append(f"{head} | {cells[0]} | {cells[1]} |")
    lines += ["", "Thresholds and why:", ""]
    lines += [f"- {env_id}: {fmt(th.score)}: {th.reason}." for env_id, th in suite.thresholds.items()]
    if without := [env_id for env_id in dict.fromkeys(e.env for e in suite.envs) if env_id not in suite.thresholds]:
        lines.append(f"- No threshold for {', '.join(without)}: not in the suite's `[thresholds]`, not timed.")
    return lines + [""]
