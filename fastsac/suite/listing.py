"""``fastsac bench --list``: each shipped suite, its envs, agents, budgets, presets and references, one line each."""

from __future__ import annotations

from fastsac.suite.formatting import fmt, steps_label
from fastsac.suite.schema import SuiteError, load_suite

__all__ = ["describe_suite"]


def describe_suite(name: str) -> list[str]:
    try:
        suite = load_suite(name)
    except SuiteError as e:
        return [f"{name}: INVALID", *("    " + line for line in str(e).splitlines())]
    seeds = ", ".join(map(str, suite.seeds))
    lines = [f"{suite.name}: {suite.description.strip()}", f"    seeds: {seeds}"]
    names = [e.env if e.label == e.env else f"{e.label} ({e.env})" for e in suite.envs]
    width = max(26, *map(len, names))
    agent_width = max(6, *(len(e.agent) for e in suite.envs))
    for name, e in zip(names, suite.envs):
        refs = "; ".join(f"{r.source} {fmt(r.score)}" for r in e.references) or "none"
        preset = e.preset_used or "none"
        lines.append(f"    {name:<{width}} {e.agent:<{agent_width}} {steps_label(e.total_steps):>6} steps  "
                     f"preset {preset:<26} refs: {refs}")
    return lines
