"""Where a suite's runs live (:class:`Run`, :func:`run_dir`: ``OUT/runs/<label>/seed<k>``) and what they wrote, read
back: one :class:`RunRecord` per run, and the tidy ``results.csv``. The runner and the report both read runs through
this module, which imports neither of them."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

from fastsac.suite.schema import Suite, SuiteEnv

__all__ = [
    "RESULT_COLUMNS", "Run", "RunRecord", "collect", "merge_results", "read_json", "read_run", "read_results_csv", "run_dir",
    "safe_name", "write_results_csv",
]

RESULT_COLUMNS = ("suite", "env", "label", "agent", "seed", "step", "wall_time", "eval_return", "sps")


@dataclass(frozen=True)
class Run:
    entry: SuiteEnv
    seed: int
    path: Path

    @property
    def label(self) -> str:
        return f"{self.entry.label} seed {self.seed}"


def safe_name(env_id: str) -> str:
    return env_id.replace("/", "_").replace(":", "_")


def run_dir(out: Path, label: str, seed: int) -> Path:
    """``OUT/runs/<label>/seed<k>``: the run of a suite entry (``label``: the entry's label, by default its env)."""
    return Path(out) / "runs" / safe_name(label) / f"seed{seed}"


def read_json(path: Path) -> dict | None:
    try:
        with open(path) as f:
            data = json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


@dataclass
class RunRecord:
    env: str
    seed: int
    path: Path
    finished: bool
    evals: list[tuple[int, float, float, float]]  # (step, wall_time, eval_return, sps)
    total_steps: int | None
    final_return: float | None
    sps: float | None
    wall_time: float | None
    device: str | None


def _float(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def read_run(path: Path, env_id: str, seed: int) -> RunRecord:
    """Read the evaluation points of a run's metrics.csv and its summary.json (when finished)."""
    evals = []
    metrics = path / "metrics.csv"
    if metrics.is_file():
        with open(metrics, newline="") as f:
            for row in csv.DictReader(f):
                ret = _float(row.get("eval_return"))
                if math.isnan(ret):
                    continue
                evals.append((int(float(row["step"])), _float(row.get("wall_time")), ret, _float(row.get("sps"))))
    summary = read_json(path / "summary.json") or {}
    finished = summary.get("finished") is True
    final = summary.get("final_eval_return") if finished else None
    if final is None and finished and evals:
        final = evals[-1][2]
    config = read_json(path / "config.json") or {}
    total = summary.get("total_steps", config.get("total_steps"))
    sps = summary.get("sps") if finished else None
    if sps is None and evals and not math.isnan(evals[-1][3]):
        sps = evals[-1][3]
    device = summary.get("device") or config.get("device")
    return RunRecord(env_id, seed, path, finished, evals, total, final, sps, summary.get("wall_time"), device)


def collect(suite: Suite, out: Path) -> dict[str, list[RunRecord]]:
    """Each suite entry's label -> the records of its runs on disk (by seed)."""
    results: dict[str, list[RunRecord]] = {}
    for entry in suite.envs:
        base = Path(out) / "runs" / safe_name(entry.label)
        seeds = sorted(int(p.name[4:]) for p in base.glob("seed*") if p.name[4:].isdigit()) if base.is_dir() else []
        results[entry.label] = [read_run(run_dir(out, entry.label, s), entry.env, s) for s in seeds]
    return results


def merge_results(kept: dict[str, list[RunRecord]], new: dict[str, list[RunRecord]]) -> dict[str, list[RunRecord]]:
    """Each label's runs of ``kept`` (a results.csv) and ``new`` (run folders), by seed; a seed in both is ``new``'s."""
    merged = {}
    for label in new.keys() | kept.keys():
        by_seed = {r.seed: r for r in kept.get(label, [])}
        by_seed.update({r.seed: r for r in new.get(label, [])})
        merged[label] = [by_seed[s] for s in sorted(by_seed)]
    return merged


def write_results_csv(suite: Suite, results: dict[str, list[RunRecord]], path: Path) -> int:
    rows = 0
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(RESULT_COLUMNS)
        for entry in suite.envs:
            for r in results[entry.label]:
                for step, wall, ret, sps in r.evals:
                    writer.writerow([suite.name, entry.env, entry.label, entry.agent, r.seed, step, _num(wall),
                                     _num(ret), _num(sps)])
                    rows += 1
    return rows


def _num(x: float) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else repr(float(x))


def read_results_csv(suite: Suite, path: Path) -> dict[str, list[RunRecord]]:
    """Each suite entry's label -> its runs as a committed ``results.csv`` holds them (when the run folders are
    gone). A file written before suites had labels (no ``label`` column) names each entry by its env id. What a
    results.csv cannot hold is derived: a run is finished when its last evaluation is at the entry's budget, its
    final return is that evaluation, its wall time the wall-clock at it, and its steps/s its steps over that wall
    time (evaluation time included: results.csv keeps no training time)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    by_run: dict[tuple[str, int], list[tuple[int, float, float, float]]] = {}
    for row in rows:
        if row.get("suite") not in (None, "", suite.name):
            continue
        label = row.get("label") or row["env"]
        by_run.setdefault((label, int(row["seed"])), []).append(
            (int(float(row["step"])), _float(row.get("wall_time")), _float(row.get("eval_return")), _float(row.get("sps"))))
    results: dict[str, list[RunRecord]] = {}
    for entry in suite.envs:
        records = []
        for (label, seed), evals in sorted(by_run.items()):
            if label != entry.label:
                continue
            evals.sort()
            step, wall, ret, _ = evals[-1]
            finished = step >= entry.total_steps
            sps = step / wall if wall > 0 else None
            records.append(RunRecord(entry.env, seed, Path(path).parent / "runs" / safe_name(label) / f"seed{seed}",
                                     finished, evals, step, ret if finished else None, sps,
                                     None if math.isnan(wall) else wall, None))
        results[entry.label] = records
    return results
