"""The suite report (``report.md``): final returns over seeds with intervals, published references at the rows'
own budget, normalized aggregates over envs, time to threshold, curves and sources; and :func:`write_outputs`,
which writes results.csv, the plots and the report from the runs on disk (or, when the runs are gone, the report
and plots from a committed results.csv)."""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import subprocess
from pathlib import Path
from typing import Sequence

from fastsac.suite import stats
from fastsac.suite.formatting import duration, fmt, mean_std, plus_minus, steps_label
from fastsac.suite.plots import plot_env
from fastsac.suite.published_curves import load_curves
from fastsac.suite.report_stats import aggregate_section, poi_vs_reference, row_interval, threshold_section
from fastsac.suite.results import Run, RunRecord, collect, merge_results, read_results_csv, write_results_csv
from fastsac.suite.schema import Reference, Suite

__all__ = ["write_outputs"]


def _in_progress(records) -> str:
    """``; unfinished: seed k at N steps (its last evaluation)`` for each run of a row that has not finished (running,
    interrupted, or failed: a suite run in parts says how far each run got)."""
    parts = [f"seed {r.seed} at {steps_label(r.evals[-1][0])} ({r.evals[-1][2]:.0f})" if r.evals
             else f"seed {r.seed}, no evaluation yet" for r in records if not r.finished]
    return f"; unfinished: {', '.join(parts)}" if parts else ""


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


def _envs(suite: Suite) -> list[str]:
    """The suite's env ids, each once, in order."""
    return list(dict.fromkeys(e.env for e in suite.envs))


def _row_names(suite: Suite, *, legend: bool = False) -> dict[str, str]:
    """Label -> how a row is named: in tables its env (with the label when env and agent do not identify it),
    in an env's plot legend its agent (or its label when two rows of the env share an agent)."""
    keys = [(e.env, e.agent) for e in suite.envs]
    names = {}
    for e in suite.envs:
        unique = keys.count((e.env, e.agent)) == 1
        if legend:
            names[e.label] = f"fastsac {e.agent}" if unique else e.label
        else:
            names[e.label] = e.env if unique or e.label == e.env else f"{e.env} ({e.label})"
    return names


def _report(
    suite: Suite,
    results: dict[str, list[RunRecord]],
    plots: dict[str, list[Path]],
    out: Path,
    *,
    missing: Sequence[Run],
    command: str | None,
    previous: dict[str, str] | None = None,
) -> str:
    import torch

    from fastsac.agents.config import AGENTS

    devices = sorted({r.device for rs in results.values() for r in rs if r.device})
    lines = [f"# fastsac benchmark: `{suite.name}`", ""]
    if (why := stats.missing()) is not None:
        lines += [f"> **Statistics missing**: {why}. This report shows means and stds only: no IQM, no confidence "
                  "intervals, no performance profile, no probability of improvement.", ""]
    lines += [suite.description.strip(), ""]
    if previous is not None:  # rebuilt from results.csv: the runs were made elsewhere, earlier
        machine = previous.get("Machine", "not recorded")
        lines += [
            f"- Report rebuilt {datetime.datetime.now().isoformat(timespec='seconds')} at fastsac revision "
            f"{_git_revision()} from the committed results.csv (the run folders are not kept); the runs' own",
            f"  date, machine and command, carried over from the report they were first written with:",
            f"- Runs made: {previous.get('Date', 'not recorded')}",
            f"- Machine: {machine}",
            f"- Software: {previous.get('Software', 'not recorded')}",
        ]
        if "Command" in previous:
            lines.append(f"- Command: {previous['Command']}")
    else:
        machine = f"{_machine()}; device(s): {', '.join(devices) or 'n/a'}"
        lines += [
            f"- Date: {datetime.datetime.now().isoformat(timespec='seconds')}; fastsac git revision {_git_revision()}",
            f"- Machine: {machine}",
            f"- Software: Python {platform.python_version()}, torch {torch.__version__}",
        ]
        if command:
            lines.append(f"- Command: `{command}`")
    sps_note = ("Steps/s is each run's steps over its wall-clock time at the last evaluation (evaluation included:\n"
                "results.csv keeps no training time), averaged over seeds" if previous is not None else
                "Steps/s is each run's overall env steps per second (training only), averaged over seeds")
    lines += [
        "",
        "Final return is each run's last evaluation (mean deterministic-policy return, as the trainer logs it);",
        "mean ± std over seeds (population std), and the IQM over seeds with its 95% bootstrap confidence interval",
        f"(rliable). Seeds: the runs finished of those planned. {sps_note}; wall time is per run. Agent: the",
        f"learner ({', '.join(AGENTS)}) of the row's configuration.",
        "",
        "## Results",
        "",
        "| Env | Agent | Preset | Steps | Seeds | Final return (mean ± std) | Steps/s | Wall time / run "
        "| IQM [95% CI] |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    names = _row_names(suite)
    finals: dict[str, tuple[float, float | None, int, int | None]] = {}
    for entry in suite.envs:
        done = [r for r in results[entry.label] if r.finished and r.final_return is not None]
        preset = entry.preset_used or "none"
        row = f"| {names[entry.label]} | {entry.agent} | {preset} | {steps_label(entry.total_steps)}"
        if not done:
            lines.append(f"{row} | 0 of {len(suite.seeds)} | no finished run{_in_progress(results[entry.label])} | | | |")
            continue
        mean, std = mean_std([float(r.final_return) for r in done])
        steps = {r.total_steps for r in done}
        budget = steps.pop() if len(steps) == 1 else None
        finals[entry.label] = (mean, std, len(done), budget)
        sps = [float(r.sps) for r in done if r.sps is not None]
        walls = [float(r.wall_time) for r in done if r.wall_time is not None]
        sps_txt = f"{statistics.fmean(sps):.0f}" if sps else "n/a"
        wall_txt = duration(statistics.fmean(walls)) if walls else "n/a"
        seeds_txt = str(len(done)) if len(done) >= len(suite.seeds) else f"{len(done)} of {len(suite.seeds)}"
        final_txt = plus_minus(mean, std) + _in_progress(results[entry.label])
        lines.append(f"| {names[entry.label]} | {entry.agent} | {preset} | {steps_label(budget)} | {seeds_txt} | "
                     f"{final_txt} | {sps_txt} | {wall_txt} | {row_interval([float(r.final_return) for r in done])} |")
    lines += [
        "",
        "## Against published results",
        "",
        "Like for like only: a reference enters a row when it was published for the row's own step budget (and for",
        "the row's agent, or for none). ▲ ours above the reference, ▼ below. Protocols still differ between sources",
        "(env versions, seeds, evaluation; see Sources). References at other budgets are listed under Sources,",
        "not compared. P(ours > reference): where the source publishes per-seed scores, the probability that a",
        "run of ours beats one of theirs (ties half) with a 95% bootstrap interval (rliable; seeds of both resampled).",
        "",
        "| Env | Agent | Ours | Reference | Source | Ours vs reference | P(ours > reference) [95% CI] |",
        "| --- | --- | ---: | ---: | --- | --- | ---: |",
    ]
    by_label = {e.label: {r.seed: float(r.final_return) for r in results[e.label]
                          if r.finished and r.final_return is not None} for e in suite.envs}
    sources: list[Reference] = []
    compared_refs: list[Reference] = []  # compared with at least one row; the others are cited, not compared
    for entry in suite.envs:
        compared = 0
        # the runs' own budget (a suite run with --total-steps differs from its file), else the suite's
        budget = finals[entry.label][3] if entry.label in finals else entry.total_steps
        for ref in entry.references:
            if ref not in sources:
                sources.append(ref)
            n = sources.index(ref) + 1
            if ref.steps is None or ref.steps != budget:
                continue
            compared += 1
            compared_refs.append(ref)
            ref_txt = plus_minus(ref.score, ref.std) + f" @ {steps_label(ref.steps)}"
            src = f"{ref.source} [{n}]" + ("" if ref.verified else " (unverified)")
            head = f"| {names[entry.label]} | {entry.agent}"
            if entry.label not in finals:
                lines.append(f"{head} | n/a | {ref_txt} | {src} | no finished run | |")
                continue
            mean, std, _, budget = finals[entry.label]
            mark = "▲ above" if mean > ref.score else ("= equal" if mean == ref.score else "▼ below")
            poi = poi_vs_reference(list(by_label[entry.label].values()), ref.per_seed)
            lines.append(f"{head} | {plus_minus(mean, std)} @ {steps_label(budget)} | {ref_txt} | {src} | {mark} | {poi} |")
        if not compared:
            lines.append(f"| {names[entry.label]} | {entry.agent} | | none at {steps_label(budget)} | | | |")
    lines.append("")
    for _, ref in suite.normalization.values():  # cited under Sources as well
        if ref not in sources:
            sources.append(ref)
    lines += aggregate_section(suite, by_label, out, out / "plots")
    lines += threshold_section(suite, results, machine)
    lines += ["## Learning curves", ""]
    for env_id in _envs(suite):
        pngs = plots.get(env_id, [])
        lines.append(f"### {env_id}")
        lines.append("")
        if pngs:
            links = [f"![{env_id} {p.stem.rsplit('_', 1)[1]}]({p.relative_to(out).as_posix()})" for p in pngs]
            lines.append(" ".join(links))
        else:
            lines.append("No evaluation points yet.")
        lines.append("")
    if sources:
        lines += ["## Sources", ""]
        for n, ref in enumerate(sources, 1):
            on = f" on {ref.measured_on}" if ref.measured_on != ref.env else ""
            flag = "" if ref.verified else " **Unverified**: not checked against the source text."
            budget = f"at {steps_label(ref.steps)} steps" if ref.steps else "no step budget"
            why = "" if ref in compared_refs else f" Not compared ({budget}: not a row's budget)."
            if any(ref is r for _, r in suite.normalization.values()):
                why += " The 1 of its env's normalized scores."
            lines.append(f"{n}. {ref.source} ({ref.env}){on}, {fmt(ref.score)}: {ref.protocol}. <{ref.url}>{flag}{why}")
        lines.append("")
    unfinished = [(label, r) for label, rs in results.items() for r in rs if not r.finished]
    if unfinished or missing:
        lines += ["## Incomplete", ""]
        lines += [f"- {label} seed {r.seed}: not finished ({len(r.evals)} evaluation points)" for label, r in unfinished]
        lines += [f"- {run.label}: not started" for run in missing]
        lines.append("")
    return "\n".join(lines)


def _previous_header(report: Path) -> dict[str, str]:
    """The ``- Key: value`` lines at the top of an earlier report.md (where its runs were made), by key."""
    found: dict[str, str] = {}
    if not report.is_file():
        return found
    for line in report.read_text().splitlines():
        if line.startswith("## "):
            break
        if line.startswith("- ") and ": " in line:
            key, value = line[2:].split(": ", 1)
            if key == "Date" and "; fastsac git revision" in value:
                value = value.replace("; fastsac git revision", " at fastsac git revision")
            found.setdefault("Date" if key == "Runs made" else key, value)
    return found


def write_outputs(
    suite: Suite, out: Path, *, planned: Sequence[Run] = (), command: str | None = None, from_results: bool = False
) -> dict[str, Path]:
    """Aggregate the runs under ``out/runs`` into results.csv, plots/*.png and report.md; returns their paths.
    Runs that results.csv already holds and whose folders are gone (a suite run in parts, its earlier folders not
    kept) stay in it: a run folder replaces only its own (entry, seed) rows. ``from_results``: the run folders are
    gone; read ``out/results.csv`` instead (left as it is) and carry the runs' date, machine and command over from
    the report.md already there."""
    out = Path(out)
    previous = None
    if from_results:
        results = read_results_csv(suite, out / "results.csv")
        previous = _previous_header(out / "report.md")
    else:
        results = collect(suite, out)
        if (out / "results.csv").is_file():
            results = merge_results(read_results_csv(suite, out / "results.csv"), results)
    plots_dir = out / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)
    names = _row_names(suite, legend=True)
    plots = {}
    published = load_curves()
    for env_id in _envs(suite):
        entries = [e for e in suite.envs if e.env == env_id]
        # only the references at the entries' own budget are drawn, as only they are compared
        refs = list(dict.fromkeys(r for e in entries for r in e.references if r.steps == e.total_steps))
        rows = [(names[e.label], results[e.label]) for e in entries]
        th = suite.thresholds.get(env_id)
        curves = {r.source: published[(r.source, env_id)] for r in refs if (r.source, env_id) in published}
        plots[env_id] = plot_env(env_id, rows, refs, plots_dir, threshold=None if th is None else th.score,
                                 published=curves)  # fmt: skip
    if not from_results:
        write_results_csv(suite, results, out / "results.csv")
    missing = [run for run in planned if not run.path.exists()]
    text = _report(suite, results, plots, out, missing=missing, command=command, previous=previous)
    (out / "report.md").write_text(text)
    return {"results": out / "results.csv", "report": out / "report.md", "plots": plots_dir}
