"""Running a suite: one ordinary run directory per (entry, seed), trained by ``python -m fastsac train`` in separate
processes, ``jobs`` at a time.

Runs live in ``OUT/runs/<label>/seed<k>`` (an entry's label is its env id unless the suite names one; the layout
and the reading of runs are in ``results.py``, shared with the report). A run whose ``summary.json`` says it
finished is never run again; an unfinished run with a checkpoint is resumed with ``fastsac train --resume``; an
unfinished run without one is started afresh. So an interrupted suite picks up where it stopped when the same
command is run again. Ctrl-C (or SIGTERM) forwards SIGINT to the training processes, waits for them to exit, and
escalates if they do not. Imports run one way: ``runner -> report -> results``.
"""

from __future__ import annotations

import dataclasses
import datetime
import fcntl
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Sequence

from fastsac.suite.report import write_outputs
from fastsac.suite.results import Run, read_json, run_dir, safe_name  # where runs live; re-exported here
from fastsac.suite.schema import Suite, SuiteError, _Errors

__all__ = [
    "STOP_GRACE_S",
    "TRAIN_COMMAND",
    "Run",
    "check_existing",
    "execute",
    "plan_runs",
    "read_json",
    "run_dir",
    "run_status",
    "run_suite",
    "safe_name",
    "train_argv",
]

TRAIN_COMMAND: tuple[str, ...] = (sys.executable, "-m", "fastsac", "train")
STOP_GRACE_S = 60.0  # how long stopped runs get to exit after SIGINT before SIGTERM, then SIGKILL


def plan_runs(
    suite: Suite, out: Path, *, seeds: Sequence[int] | None = None, total_steps: int | None = None,
    only: Sequence[str] | None = None,
) -> list[Run]:
    """Every (entry, seed) run of the suite, with optional overrides of the seeds and of every entry's budget;
    ``only``: keep the entries with these labels or env ids (a suite run in parts: the report covers every entry
    and lists what has not run)."""
    seeds = tuple(suite.seeds if seeds is None else seeds)
    if only is not None:
        names = {e.label for e in suite.envs} | {e.env for e in suite.envs}
        unknown = sorted(set(only) - names)
        if unknown:
            raise SuiteError(f"--only: no entry of suite {suite.name!r} is labelled {', '.join(map(repr, unknown))}; "
                             f"its entries: {', '.join(e.label for e in suite.envs)}")
    runs = []
    for entry in suite.envs:
        if only is not None and entry.label not in only and entry.env not in only:
            continue
        if total_steps is not None:
            entry = dataclasses.replace(entry, total_steps=total_steps)
        runs.extend(Run(entry, s, run_dir(out, entry.label, s)) for s in seeds)
    return runs


def run_status(path: Path) -> str:
    """``finished`` (summary.json says so), ``resumable`` (has a checkpoint), ``partial`` (started, nothing to
    resume from) or ``new``."""
    path = Path(path)
    summary = read_json(path / "summary.json")
    if summary is not None and summary.get("finished") is True:
        return "finished"
    if (path / "checkpoints" / "latest.pt").is_file():
        return "resumable"
    if path.exists() and any(path.iterdir()):
        return "partial"
    return "new"


def check_existing(runs: Sequence[Run]) -> None:
    """Refuse to mix runs made with another budget, env, seed or agent into this suite's output folder."""
    err = _Errors("existing runs")
    for run in runs:
        config = read_json(run.path / "config.json")
        if config is None or run_status(run.path) in ("new", "partial"):
            continue
        want = {"env_id": run.entry.env, "seed": run.seed, "total_steps": run.entry.total_steps}
        learner = config.get("learner")
        if isinstance(learner, dict) and "agent" in learner:  # config.json written before agents existed: SAC
            config = {**config, "agent": learner["agent"]}
            want["agent"] = run.entry.agent
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


def run_suite(suite: Suite, runs: Sequence[Run], out: Path, *, jobs: int, device: str | None = None,
              train_command: Sequence[str] = TRAIN_COMMAND, command: str | None = None) -> int:
    """Train every unfinished run of ``runs`` (one suite folder ``out`` at a time: a lock file keeps a second
    runner out), then write results.csv, plots and report.md. Returns 0, 1 if runs failed, 2 if ``out`` is in use,
    130 when interrupted (the finished runs stay; the same call resumes)."""
    (out / "runs").mkdir(parents=True, exist_ok=True)
    lock = open(out / "runs" / ".lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
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
        entries, seeds = len({r.entry.label for r in runs}), len({r.seed for r in runs})
        print(f"suite {suite.name}: {len(runs)} runs ({entries} of {len(suite.envs)} entries x {seeds} seeds) in {out}")
        failed = execute(runs, jobs=jobs, device=device, train_command=train_command)
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
        print(f"{len(failed)} run(s) failed: {names} (logs: {out / 'runs'}/<label>/seed<k>.log)", file=sys.stderr)
        return 1
    return 0
