"""Benchmark suites: ``fastsac bench SUITE``.

A suite is a TOML file (``fastsac/suites/<name>.toml``, or any path) naming environments, the hyperparameter
preset each one trains with, a step budget and the seeds. ``fastsac bench`` checks the whole file first (unknown
env ids, unknown presets, unknown fields and wrong types are all reported at once, before anything runs), then
trains every (env, seed) pair as an ordinary run directory with ``python -m fastsac train`` in separate processes,
``--jobs`` at a time, and finally aggregates what the runs wrote into

* ``results.csv``: one row per evaluation point (suite, env, seed, step, wall_time, eval_return, sps);
* ``plots/<env>_steps.png`` and ``plots/<env>_time.png``: mean and min-max band over seeds against env steps and
  against wall-clock time, with the published reference scores as dashed lines;
* ``report.md``: final return (mean ± std over seeds), steps/s, and the reference scores beside ours with their
  sources, each marked above or below.

Runs live in ``OUT/runs/<env>/seed<k>``. A run whose ``summary.json`` says it finished is never run again; an
unfinished run with a checkpoint is resumed with ``fastsac train --resume``; an unfinished run without one is
started afresh. So an interrupted suite picks up where it stopped when the same command is run again. Ctrl-C
(or SIGTERM) forwards SIGINT to the training processes, waits for them to exit, and escalates if they do not.

Published reference scores live in ``fastsac/suites/references.toml`` with their exact source.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import difflib
import fcntl
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
import tomllib
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

__all__ = [
    "SuiteError",
    "Reference",
    "SuiteEnv",
    "Suite",
    "Run",
    "available_suites",
    "load_suite",
    "load_references",
    "plan_runs",
    "run_status",
    "execute",
    "write_outputs",
    "main",
]

SUITES_DIR = Path(__file__).with_name("suites")
REFERENCES_FILE = SUITES_DIR / "references.toml"
TRAIN_COMMAND: tuple[str, ...] = (sys.executable, "-m", "fastsac", "train")
RESULT_COLUMNS = ("suite", "env", "seed", "step", "wall_time", "eval_return", "sps")
STOP_GRACE_S = 60.0  # how long stopped runs get to exit after SIGINT before SIGTERM, then SIGKILL
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class SuiteError(ValueError):
    """A suite or reference file (or a bench option) is not usable; the message lists every problem found."""


# ------------------------------------------------------------------------------------------------------------
# Suite and reference files


@dataclass(frozen=True)
class Reference:
    """A published score for one env, with where it comes from."""

    env: str  #: the env id of ours it is compared with
    source: str  #: short label, e.g. "RL Zoo SAC"
    score: float  #: the published mean return
    std: float | None  #: its published spread, when given
    steps: int | None  #: the training budget (env steps) behind the score
    measured_on: str  #: the env id the source used (may differ in version from ours)
    protocol: str  #: what the number is (evaluation vs training return, over what)
    url: str  #: exact location (a pinned commit where possible)
    verified: bool  #: whether the number was checked against the source text


@dataclass(frozen=True)
class SuiteEnv:
    """One env of a suite and how it is trained."""

    env: str
    preset: str | None  #: as the suite gives it; None: the trainer's default ("auto")
    total_steps: int
    config: dict[str, Any]  #: further training options (TrainConfig fields), passed as `fastsac train` flags
    references: tuple[Reference, ...]
    preset_used: str | None = None  #: the preset training will use (the env's own under "auto"), None for none


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    seeds: tuple[int, ...]
    envs: tuple[SuiteEnv, ...]
    path: Path


class _Errors:
    """Collects every problem in a file so that one message can list them all."""

    def __init__(self, where: str):
        self.where = where
        self.items: list[str] = []

    def add(self, msg: str) -> None:
        self.items.append(msg)

    def raise_if_any(self) -> None:
        if self.items:
            lines = "\n".join(f"  - {m}" for m in self.items)
            raise SuiteError(f"{self.where}: {len(self.items)} problem(s):\n{lines}")

    def get(self, table: dict, key: str, kind: str, ctx: str, *, required: bool = False) -> Any:
        """Return ``table[key]`` if it has the right kind (``str``, ``int+`` positive int, ``int0`` int >= 0,
        ``float``, ``bool``), else record a problem and return None."""
        if key not in table:
            if required:
                self.add(f"{ctx}missing required field {key!r}")
            return None
        value = table[key]
        ok = {
            "str": lambda v: isinstance(v, str) and v.strip() != "",
            "int+": lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
            "int0": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
            "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
            "bool": lambda v: isinstance(v, bool),
        }[kind](value)
        if not ok:
            want = {
                "str": "a non-empty string",
                "int+": "a positive integer",
                "int0": "an integer >= 0",
                "float": "a finite number",
                "bool": "true or false",
            }[kind]
            self.add(f"{ctx}{key!r} must be {want}, got {value!r}")
            return None
        return float(value) if kind == "float" else value

    def unknown_keys(self, table: dict, allowed: Sequence[str], ctx: str) -> None:
        for key in table:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.add(f"{ctx}unknown field {key!r}{hint}; allowed: {', '.join(allowed)}")


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise SuiteError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as e:
        raise SuiteError(f"{path}: not valid TOML: {e}") from None


def _unknown_env_ids(env_ids: Sequence[str]) -> dict[str, list[str]]:
    """Env ids that neither EnvPool nor gymnasium knows, each with up to 3 close matches.

    Uses the registries of :mod:`fastsac.envs` (no env is created). Ids of the form ``module:Env-v0`` register
    themselves on import and cannot be checked without importing the module, so they pass.
    """
    from fastsac import envs

    known = set(envs.envpool_env_ids()) | set(envs.gymnasium_env_ids())
    by_lower = {k.lower(): k for k in sorted(known)}
    bad = {}
    for env_id in env_ids:
        if env_id in known or ":" in env_id:
            continue
        close = difflib.get_close_matches(env_id.lower(), list(by_lower), n=3, cutoff=0.6)
        bad[env_id] = [by_lower[c] for c in close]
    return bad


def _env_problem(env_id: str, close: list[str]) -> str:
    from fastsac import envs

    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    if not envs.envpool_available():
        hint += " (EnvPool is not installed here; its tasks, e.g. the DeepMind Control ones, need it)"
    return f"unknown env id {env_id!r} (in neither EnvPool nor gymnasium){hint}"


_REFERENCE_KEYS = ("env", "source", "score", "std", "steps", "measured_on", "protocol", "url", "verified")


def load_references(path: Path | str | None = None) -> dict[str, tuple[Reference, ...]]:
    """Read a references file (default ``fastsac/suites/references.toml``): ``[[reference]]`` tables; returns
    env id -> references. Raises SuiteError."""
    path = Path(path if path is not None else REFERENCES_FILE)
    data = _read_toml(path)
    err = _Errors(str(path))
    err.unknown_keys(data, ("reference",), "")
    entries = data.get("reference", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        err.add("'reference' must be an array of tables ([[reference]])")
        entries = []
    refs: dict[str, list[Reference]] = {}
    for i, table in enumerate(entries):
        ctx = f"reference[{i}] ({table.get('env', '?')}, {table.get('source', '?')}): "
        err.unknown_keys(table, _REFERENCE_KEYS, ctx)
        values = {
            "env": err.get(table, "env", "str", ctx, required=True),
            "source": err.get(table, "source", "str", ctx, required=True),
            "score": err.get(table, "score", "float", ctx, required=True),
            "std": err.get(table, "std", "float", ctx),
            "steps": err.get(table, "steps", "int+", ctx),
            "measured_on": err.get(table, "measured_on", "str", ctx),
            "protocol": err.get(table, "protocol", "str", ctx, required=True),
            "url": err.get(table, "url", "str", ctx, required=True),
            "verified": err.get(table, "verified", "bool", ctx, required=True),
        }
        required = ("env", "source", "score", "protocol", "url", "verified")
        if any(values[k] is None for k in required):
            continue
        values["measured_on"] = values["measured_on"] or values["env"]
        refs.setdefault(values["env"], []).append(Reference(**values))
    for env_id, close in _unknown_env_ids(sorted(refs)).items():
        err.add(_env_problem(env_id, close))
    err.raise_if_any()
    return {k: tuple(v) for k, v in refs.items()}


_SUITE_KEYS = ("name", "description", "seeds", "total_steps", "config", "envs")
_ENV_KEYS = ("env", "preset", "total_steps", "config")
# Options a suite may not set through `config`: the runner sets them per run (or they have their own field).
_RESERVED = {"env_id": "env", "seed": "seeds", "out": "--out", "device": "--device", "total_steps": "total_steps"}


def available_suites() -> list[str]:
    """Names of the suites shipped in ``fastsac/suites``."""
    return sorted(p.stem for p in SUITES_DIR.glob("*.toml") if p.name != REFERENCES_FILE.name)


def suite_path(name_or_path: str) -> Path:
    """Resolve a suite name (``classic``) or a path to a ``.toml`` file."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml":
        if not candidate.is_file():
            raise SuiteError(f"suite file {candidate} not found")
        return candidate
    if not _NAME_RE.match(name_or_path) or name_or_path not in available_suites():
        close = difflib.get_close_matches(name_or_path, available_suites(), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise SuiteError(
            f"unknown suite {name_or_path!r}.{hint} Available: {', '.join(available_suites())} "
            "(or give the path of a .toml suite file; see `fastsac bench --list`)"
        )
    return SUITES_DIR / f"{name_or_path}.toml"


def _check_config(err: _Errors, config: Any, ctx: str) -> dict[str, Any]:
    if config is None:
        return {}
    if not isinstance(config, dict):
        err.add(f"{ctx}'config' must be a table of training options, got {config!r}")
        return {}
    for key, instead in _RESERVED.items():
        if key in config:
            err.add(f"{ctx}config.{key} is set by the suite runner; use {instead!r} instead")
    for key, value in config.items():
        if isinstance(value, (dict, list)):
            err.add(f"{ctx}config.{key} must be a single value (nested options such as [learner] belong in a preset)")
    return {k: v for k, v in config.items() if k not in _RESERVED and not isinstance(v, (dict, list))}


def load_suite(name_or_path: str | Path, *, references: dict[str, tuple[Reference, ...]] | None = None) -> Suite:
    """Read and check a suite file; every problem is reported in one :class:`SuiteError`.

    Each env's training options (preset, budget, ``config``) are resolved with :func:`fastsac.config.resolve_config`
    exactly as ``fastsac train`` will resolve them, so an unknown preset or option, or a bad value, is caught here.
    ``references`` defaults to ``fastsac/suites/references.toml``; each env gets those recorded for its env id.
    """
    from fastsac.config import ConfigError, resolve_config

    path = suite_path(str(name_or_path))
    data = _read_toml(path)
    if references is None:
        references = load_references()
    err = _Errors(str(path))
    err.unknown_keys(data, _SUITE_KEYS, "")
    name = err.get(data, "name", "str", "") or path.stem
    if not _NAME_RE.match(name):
        err.add(f"'name' must be letters, digits, '.', '_' or '-' (it names the output folder), got {name!r}")
    description = err.get(data, "description", "str", "", required=True) or ""
    seeds = data.get("seeds")
    if seeds is None:
        err.add("missing required field 'seeds' (a list of integers >= 0, e.g. seeds = [0, 1, 2])")
        seeds = []
    elif (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
    ):
        err.add(f"'seeds' must be a non-empty list of integers >= 0, got {seeds!r}")
        seeds = []
    elif len(set(seeds)) != len(seeds):
        err.add(f"'seeds' has duplicates: {seeds!r}")
    default_steps = err.get(data, "total_steps", "int+", "")
    default_config = _check_config(err, data.get("config"), "")
    tables = data.get("envs")
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        err.add("'envs' must be a non-empty array of tables ([[envs]] with at least env = \"...\")")
        tables = []
    entries: list[SuiteEnv] = []
    seen: set[str] = set()
    for i, table in enumerate(tables):
        ctx = f"envs[{i}] ({table.get('env', '?')}): "
        err.unknown_keys(table, _ENV_KEYS, ctx)
        env_id = err.get(table, "env", "str", ctx, required=True)
        preset = err.get(table, "preset", "str", ctx)
        steps = err.get(table, "total_steps", "int+", ctx) or default_steps
        config = {**default_config, **_check_config(err, table.get("config"), ctx)}
        if env_id is None:
            continue
        if env_id in seen:
            err.add(f"{ctx}env {env_id!r} appears twice")
        seen.add(env_id)
        if steps is None and "total_steps" not in table and "total_steps" not in data:
            err.add(f"{ctx}no 'total_steps' (set it here or at the top of the file)")
        # The options on their own, then with the preset (alone if the options are bad), so both are reported.
        overrides = {**config, "env_id": env_id, "total_steps": steps or 1}
        preset_used = None
        for with_preset in (None, preset or "auto"):
            try:
                preset_used = resolve_config(with_preset, overrides)[1]
            except ConfigError as e:
                err.add(ctx + str(e).replace("\n", "\n    "))
                overrides = {"env_id": env_id}
        refs = tuple(references.get(env_id, ()))
        entries.append(SuiteEnv(env_id, preset, steps or 0, config, refs, preset_used))
    for env_id, close in _unknown_env_ids([e.env for e in entries]).items():
        err.add(_env_problem(env_id, close))
    err.raise_if_any()
    return Suite(name, description, tuple(seeds), tuple(entries), path)


# ------------------------------------------------------------------------------------------------------------
# Runs


@dataclass(frozen=True)
class Run:
    entry: SuiteEnv
    seed: int
    path: Path

    @property
    def label(self) -> str:
        return f"{self.entry.env} seed {self.seed}"


def _safe(env_id: str) -> str:
    return env_id.replace("/", "_").replace(":", "_")


def run_dir(out: Path, env_id: str, seed: int) -> Path:
    return Path(out) / "runs" / _safe(env_id) / f"seed{seed}"


def plan_runs(
    suite: Suite, out: Path, *, seeds: Sequence[int] | None = None, total_steps: int | None = None
) -> list[Run]:
    """Every (env, seed) run of the suite, with optional overrides of the seeds and of every env's budget."""
    seeds = tuple(suite.seeds if seeds is None else seeds)
    runs = []
    for entry in suite.envs:
        if total_steps is not None:
            entry = dataclasses.replace(entry, total_steps=total_steps)
        runs.extend(Run(entry, s, run_dir(out, entry.env, s)) for s in seeds)
    return runs


def _read_json(path: Path) -> dict | None:
    try:
        with open(path) as f:
            data = json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def run_status(path: Path) -> str:
    """``finished`` (summary.json says so), ``resumable`` (has a checkpoint), ``partial`` (started, nothing to
    resume from) or ``new``."""
    path = Path(path)
    summary = _read_json(path / "summary.json")
    if summary is not None and summary.get("finished") is True:
        return "finished"
    if (path / "checkpoints" / "latest.pt").is_file():
        return "resumable"
    if path.exists() and any(path.iterdir()):
        return "partial"
    return "new"


def _check_existing(runs: Sequence[Run]) -> None:
    """Refuse to mix runs made with another budget, env or seed into this suite's output folder."""
    err = _Errors("existing runs")
    for run in runs:
        config = _read_json(run.path / "config.json")
        if config is None or run_status(run.path) in ("new", "partial"):
            continue
        want = {"env_id": run.entry.env, "seed": run.seed, "total_steps": run.entry.total_steps}
        for key, value in want.items():
            if key in config and config[key] != value:
                err.add(
                    f"{run.path} was made with {key}={config[key]!r} but this suite asks for {value!r}; "
                    "use the same options as before, or another --out"
                )
    err.raise_if_any()


def train_argv(run: Run, status: str, *, device: str | None, train_command: Sequence[str]) -> list[str]:
    """The command that starts (or resumes) one run."""
    # The runner shows progress itself; a progress bar per run would only fill the logs.
    quiet = [] if "progress" in run.entry.config else ["--no-progress"]
    if status == "resumable":
        return [*train_command, "--resume", str(run.path), *quiet]
    argv = [*train_command, "--env", run.entry.env, "--seed", str(run.seed), *quiet]
    argv += ["--total-steps", str(run.entry.total_steps), "--out", str(run.path)]
    if run.entry.preset is not None:
        argv += ["--preset", run.entry.preset]
    for key, value in run.entry.config.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + flag[2:])
        else:
            argv += [flag, str(value)]
    if device is not None:
        argv += ["--device", device]
    return argv


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # each run is its own process group (start_new_session)
    except (ProcessLookupError, PermissionError):
        pass


def _stop(running: dict, grace: float, echo: Callable[[str], None]) -> None:
    """SIGINT every running run (so it can exit cleanly), then SIGTERM, then SIGKILL what is left."""
    procs = list(running)
    for proc in procs:
        _signal_group(proc, signal.SIGINT)
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0), (None, 10.0)):
        deadline = time.monotonic() + wait
        try:
            while time.monotonic() < deadline and any(p.poll() is None for p in procs):
                time.sleep(0.1)
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting politely
            echo("second interrupt: not waiting any longer")
        alive = [p for p in procs if p.poll() is None]
        if not alive or sig is None:
            break
        echo(f"{len(alive)} run(s) still alive; sending {signal.Signals(sig).name}")
        for proc in alive:
            _signal_group(proc, sig)
    for proc in procs:
        running[proc][2].close()


def execute(
    runs: Sequence[Run],
    *,
    jobs: int,
    device: str | None = None,
    train_command: Sequence[str] = TRAIN_COMMAND,
    echo: Callable[[str], None] = print,
    grace: float = STOP_GRACE_S,
) -> list[Run]:
    """Run every unfinished run, ``jobs`` processes at a time; returns the runs that failed.

    Finished runs are skipped, resumable ones resumed, partial ones (no checkpoint) cleared and restarted. Each
    run's output is appended to ``<run dir>.log`` beside its folder. On KeyboardInterrupt the running processes
    are stopped (see :func:`_stop`) and the interrupt is re-raised.
    """
    todo: deque[tuple[Run, str]] = deque()
    # Longest budgets first (stable otherwise), so that with several jobs the last runs to end are short ones.
    for run in sorted(runs, key=lambda r: -r.entry.total_steps):
        status = run_status(run.path)
        if status == "finished":
            echo(f"[skip] {run.label}: finished")
            continue
        todo.append((run, status))
    total = len(todo)
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // max(1, min(jobs, total or 1)))))
    env["PYTHONUNBUFFERED"] = "1"
    running: dict[subprocess.Popen, tuple[Run, float, Any]] = {}
    failed: list[Run] = []
    done = 0
    try:
        while todo or running:
            while todo and len(running) < jobs:
                run, status = todo.popleft()
                if status == "partial":
                    shutil.rmtree(run.path)
                argv = train_argv(run, status, device=device, train_command=train_command)
                run.path.parent.mkdir(parents=True, exist_ok=True)
                log = open(run.path.with_suffix(".log"), "a")
                log.write(f"=== {datetime.datetime.now().isoformat(timespec='seconds')} {shlex.join(argv)}\n")
                log.flush()
                proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
                running[proc] = (run, time.monotonic(), log)
                verb = "resume" if status == "resumable" else "start"
                echo(f"[{verb}] {run.label} -> {run.path}")
            for proc in [p for p in running if p.poll() is not None]:
                run, t0, log = running.pop(proc)
                log.close()
                done += 1
                secs = time.monotonic() - t0
                if proc.returncode == 0 and run_status(run.path) == "finished":
                    echo(f"[{done}/{total}] {run.label} finished in {secs:.0f} s")
                else:
                    failed.append(run)
                    why = f"exit code {proc.returncode}" if proc.returncode else "no finished summary.json"
                    echo(f"[{done}/{total}] {run.label} FAILED ({why}); log: {log.name}")
            time.sleep(0.2)
    except KeyboardInterrupt:
        if running:
            echo(f"interrupted: stopping {len(running)} run(s)")
            _stop(running, grace, echo)
        raise
    return failed


# ------------------------------------------------------------------------------------------------------------
# Aggregation: results.csv, plots, report.md


@dataclass
class RunResult:
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


def read_run(path: Path, env_id: str, seed: int) -> RunResult:
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
    summary = _read_json(path / "summary.json") or {}
    finished = summary.get("finished") is True
    final = summary.get("final_eval_return") if finished else None
    if final is None and finished and evals:
        final = evals[-1][2]
    config = _read_json(path / "config.json") or {}
    total = summary.get("total_steps", config.get("total_steps"))
    sps = summary.get("sps") if finished else None
    if sps is None and evals and not math.isnan(evals[-1][3]):
        sps = evals[-1][3]
    device = summary.get("device") or config.get("device")
    return RunResult(env_id, seed, path, finished, evals, total, final, sps, summary.get("wall_time"), device)


def _collect(suite: Suite, out: Path) -> dict[str, list[RunResult]]:
    results: dict[str, list[RunResult]] = {}
    for entry in suite.envs:
        base = Path(out) / "runs" / _safe(entry.env)
        seeds = sorted(int(p.name[4:]) for p in base.glob("seed*") if p.name[4:].isdigit()) if base.is_dir() else []
        results[entry.env] = [read_run(run_dir(out, entry.env, s), entry.env, s) for s in seeds]
    return results


def _write_results_csv(suite: Suite, results: dict[str, list[RunResult]], path: Path) -> int:
    rows = 0
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(RESULT_COLUMNS)
        for env_id, runs in results.items():
            for r in runs:
                for step, wall, ret, sps in r.evals:
                    writer.writerow([suite.name, env_id, r.seed, step, _num(wall), _num(ret), _num(sps)])
                    rows += 1
    return rows


def _num(x: float) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else repr(float(x))


def _band(curves: list[tuple[list[float], list[float]]], grid: list[float]) -> tuple[list[float], ...]:
    """Mean, min and max over curves, each linearly interpolated onto ``grid``."""
    import numpy as np

    ys = np.stack([np.interp(grid, x, y) for x, y in curves])
    return ys.mean(0).tolist(), ys.min(0).tolist(), ys.max(0).tolist()


def _plot_env(env_id: str, runs: list[RunResult], refs: Sequence[Reference], plots: Path) -> list[Path]:
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
            budget = f" @ {_steps(ref.steps)}" if ref.steps else ""
            label = f"{ref.source}{budget}: {_fmt(ref.score)}"
            ax.axhline(ref.score, color=color, linestyle="--", linewidth=1, label=label)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("evaluation return")
        ax.set_title(f"{env_id} ({len(runs)} seed{'s' if len(runs) != 1 else ''})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="best")
        path = plots / f"{_safe(env_id)}_{axis}.png"
        fig.savefig(path)
        written.append(path)
    return written


def _fmt(x: float | None, like: float | None = None) -> str:
    """``x`` with one decimal, or none from 1000 up (judged by ``like`` when given, so a ± pair agrees)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.0f}" if abs(x if like is None else like) >= 1000 else f"{x:.1f}"


def _pm(mean: float, std: float | None) -> str:
    return _fmt(mean) + ("" if std is None else f" ± {_fmt(std, mean)}")


def _steps(n: int | None) -> str:
    if n is None:
        return "?"
    if n >= 1_000_000 and n % 100_000 == 0:
        return f"{n / 1_000_000:g}M"
    if n >= 1000 and n % 100 == 0:
        return f"{n / 1000:g}k"
    return str(n)


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and population std (None for a single value: no spread to report)."""
    return statistics.fmean(values), (statistics.pstdev(values) if len(values) > 1 else None)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs ({cpu})"


def _report(
    suite: Suite,
    results: dict[str, list[RunResult]],
    plots: dict[str, list[Path]],
    out: Path,
    *,
    missing: Sequence[Run],
    command: str | None,
) -> str:
    import torch

    devices = sorted({r.device for rs in results.values() for r in rs if r.device})
    lines = [
        f"# fastsac benchmark: `{suite.name}`",
        "",
        suite.description.strip(),
        "",
        f"- Date: {datetime.datetime.now().isoformat(timespec='seconds')}; fastsac git revision {_git_revision()}",
        f"- Machine: {_machine()}; device(s): {', '.join(devices) or 'n/a'}",
        f"- Software: Python {platform.python_version()}, torch {torch.__version__}",
    ]
    if command:
        lines.append(f"- Command: `{command}`")
    lines += [
        "",
        "Final return is each run's last evaluation (mean deterministic-policy return, as the trainer logs it);",
        "mean ± std over seeds (population std). Steps/s is each run's overall env steps per second, averaged",
        "over seeds; wall time is per run.",
        "",
        "## Results",
        "",
        "| Env | Preset | Steps | Seeds | Final return (mean ± std) | Steps/s | Wall time / run |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    finals: dict[str, tuple[float, float | None, int, int | None]] = {}
    for entry in suite.envs:
        done = [r for r in results[entry.env] if r.finished and r.final_return is not None]
        preset = entry.preset_used or "none"
        if not done:
            lines.append(f"| {entry.env} | {preset} | {_steps(entry.total_steps)} | 0 | no finished run | | |")
            continue
        mean, std = _mean_std([float(r.final_return) for r in done])
        steps = {r.total_steps for r in done}
        budget = steps.pop() if len(steps) == 1 else None
        finals[entry.env] = (mean, std, len(done), budget)
        sps = [float(r.sps) for r in done if r.sps is not None]
        walls = [float(r.wall_time) for r in done if r.wall_time is not None]
        sps_txt = f"{statistics.fmean(sps):.0f}" if sps else "n/a"
        wall_txt = _duration(statistics.fmean(walls)) if walls else "n/a"
        lines.append(
            f"| {entry.env} | {preset} | {_steps(budget)} | {len(done)} | {_pm(mean, std)} | {sps_txt} | {wall_txt} |"
        )
    lines += [
        "",
        "## Against published results",
        "",
        "▲ ours above the reference, ▼ below. A reference at a larger step budget than ours is not a like-for-like",
        "comparison; the budgets are shown. Protocols differ between sources (see Sources).",
        "",
        "| Env | Ours | Reference | Source | Ours vs reference |",
        "| --- | ---: | ---: | --- | --- |",
    ]
    sources: list[Reference] = []
    for entry in suite.envs:
        for ref in entry.references:
            if ref not in sources:
                sources.append(ref)
            n = sources.index(ref) + 1
            ref_txt = _pm(ref.score, ref.std)
            ref_txt += f" @ {_steps(ref.steps)}" if ref.steps else ""
            src = f"{ref.source} [{n}]" + ("" if ref.verified else " (unverified)")
            if entry.env not in finals:
                lines.append(f"| {entry.env} | n/a | {ref_txt} | {src} | no finished run |")
                continue
            mean, std, _, budget = finals[entry.env]
            mark = "▲ above" if mean > ref.score else ("= equal" if mean == ref.score else "▼ below")
            if ref.steps and budget and ref.steps != budget:
                mark += f" (ours at {_steps(budget)}, reference at {_steps(ref.steps)} steps)"
            lines.append(f"| {entry.env} | {_pm(mean, std)} @ {_steps(budget)} | {ref_txt} | {src} | {mark} |")
        if not entry.references:
            lines.append(f"| {entry.env} | | none recorded | | |")
    lines += ["", "## Learning curves", ""]
    for entry in suite.envs:
        pngs = plots.get(entry.env, [])
        lines.append(f"### {entry.env}")
        lines.append("")
        if pngs:
            links = [f"![{entry.env} {p.stem.rsplit('_', 1)[1]}]({p.relative_to(out).as_posix()})" for p in pngs]
            lines.append(" ".join(links))
        else:
            lines.append("No evaluation points yet.")
        lines.append("")
    if sources:
        lines += ["## Sources", ""]
        for n, ref in enumerate(sources, 1):
            on = f" on {ref.measured_on}" if ref.measured_on != ref.env else ""
            flag = "" if ref.verified else " **Unverified**: not checked against the source text."
            lines.append(f"{n}. {ref.source}{on}: {ref.protocol}. <{ref.url}>{flag}")
        lines.append("")
    unfinished = [r for rs in results.values() for r in rs if not r.finished]
    if unfinished or missing:
        lines += ["## Incomplete", ""]
        lines += [f"- {r.env} seed {r.seed}: not finished ({len(r.evals)} evaluation points)" for r in unfinished]
        lines += [f"- {run.label}: not started" for run in missing]
        lines.append("")
    return "\n".join(lines)


def write_outputs(
    suite: Suite, out: Path, *, planned: Sequence[Run] = (), command: str | None = None
) -> dict[str, Path]:
    """Aggregate the runs under ``out/runs`` into results.csv, plots/*.png and report.md; returns their paths."""
    out = Path(out)
    results = _collect(suite, out)
    plots_dir = out / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)
    plots = {e.env: _plot_env(e.env, results[e.env], e.references, plots_dir) for e in suite.envs}
    _write_results_csv(suite, results, out / "results.csv")
    missing = [run for run in planned if not run.path.exists()]
    (out / "report.md").write_text(_report(suite, results, plots, out, missing=missing, command=command))
    return {"results": out / "results.csv", "report": out / "report.md", "plots": plots_dir}


# ------------------------------------------------------------------------------------------------------------
# Command line


def _describe(name: str) -> list[str]:
    try:
        suite = load_suite(name)
    except SuiteError as e:
        return [f"{name}: INVALID", *("    " + line for line in str(e).splitlines())]
    seeds = ", ".join(map(str, suite.seeds))
    lines = [f"{suite.name}: {suite.description.strip()}", f"    seeds: {seeds}"]
    for e in suite.envs:
        refs = "; ".join(f"{r.source} {_fmt(r.score)}" for r in e.references) or "none"
        preset = e.preset_used or "none"
        lines.append(f"    {e.env:<26} {_steps(e.total_steps):>6} steps  preset {preset:<26} refs: {refs}")
    return lines


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fastsac bench",
        description="Train every env of a benchmark suite over several seeds, then write results.csv, learning "
        "curves and a report beside published scores. Rerunning the same command resumes an interrupted suite.",
    )
    p.add_argument("suite", nargs="?", help="suite name (see --list) or path to a suite .toml file")
    p.add_argument("--list", action="store_true", help="show the suites and their contents, then exit")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", type=int, nargs="+", metavar="S", help="seeds to run (default: the suite's)")
    seeds.add_argument("--num-seeds", type=int, metavar="N", help="run seeds 0..N-1")
    p.add_argument(
        "--total-steps", type=int, metavar="N", help="env steps per run for every env (default: the suite's)"
    )
    p.add_argument("--device", help="training device passed to each new run (e.g. cpu, cuda); default: the trainer's")
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="runs at once, each its own process (default 1)")
    p.add_argument("--out", type=Path, help="output folder (default: bench/suites/<suite>)")
    p.add_argument("--report-only", action="store_true", help="do not train; aggregate the runs already in --out")
    return p


def main(argv: Sequence[str] | None = None, *, train_command: Sequence[str] = TRAIN_COMMAND) -> int:
    """``fastsac bench``. Returns 0 on success, 1 if runs failed, 2 on bad input, 130 when interrupted."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.list:
        lines = [line for name in available_suites() for line in (*_describe(name), "")]
        print("\n".join(lines).rstrip())
        print(f"\nReferences: {REFERENCES_FILE}")
        return 2 if any(line.endswith(": INVALID") for line in lines) else 0
    if args.suite is None:
        parser.error("give a SUITE (one of: " + ", ".join(available_suites()) + ") or --list")
    try:
        for opt in ("total_steps", "num_seeds", "jobs"):
            value = getattr(args, opt)
            if value is not None and value < 1:
                raise SuiteError(f"--{opt.replace('_', '-')} must be >= 1, got {value}")
        if args.seeds is not None and (min(args.seeds) < 0 or len(set(args.seeds)) != len(args.seeds)):
            raise SuiteError(f"--seeds must be distinct integers >= 0, got {args.seeds}")
        suite = load_suite(args.suite)
        seeds = list(range(args.num_seeds)) if args.num_seeds is not None else args.seeds
        out = args.out if args.out is not None else Path("bench") / "suites" / suite.name
        runs = plan_runs(suite, out, seeds=seeds, total_steps=args.total_steps)
        if args.report_only and not any((out / "runs" / _safe(e.env)).is_dir() for e in suite.envs):
            raise SuiteError(f"--report-only: no runs of suite {suite.name!r} under {out / 'runs'} (see --out)")
        if not args.report_only:
            _check_existing(runs)
    except SuiteError as e:
        print(f"fastsac bench: error: {e}", file=sys.stderr)
        return 2
    command = "fastsac bench " + shlex.join(list(argv) if argv is not None else sys.argv[1:])
    if args.report_only:
        paths = write_outputs(suite, out, command=command)
        print(f"report: {paths['report']}")
        return 0
    (out / "runs").mkdir(parents=True, exist_ok=True)
    lock = open(out / "runs" / ".lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"fastsac bench: error: another `fastsac bench` is running on {out}", file=sys.stderr)
        return 2

    def on_term(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    # Ctrl-C means "stop the suite, keep what is done", also when the runner was started with SIGINT ignored
    # (a background job of a non-interactive shell inherits that, and Python then installs no handler).
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    t0 = time.monotonic()
    try:
        n_seeds = len(runs) // len(suite.envs)
        print(f"suite {suite.name}: {len(runs)} runs ({len(suite.envs)} envs x {n_seeds} seeds) in {out}")
        failed = execute(runs, jobs=args.jobs, device=args.device, train_command=train_command)
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume where it stopped", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        lock.close()
    paths = write_outputs(suite, out, planned=runs, command=command)
    print(f"done in {(time.monotonic() - t0) / 60:.1f} min: {paths['results']}, {paths['report']}, {paths['plots']}/")
    if failed:
        names = ", ".join(r.label for r in failed)
        print(f"{len(failed)} run(s) failed: {names} (logs: {out / 'runs'}/<env>/seed<k>.log)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
