"""Suite and reference files: their schema, and the checks made before anything runs.

A suite is a TOML file (``fastsac/suite/definitions/<name>.toml``, or any path) naming environments, the hyperparameter
preset each one trains with, a step budget and the seeds. ``fastsac bench`` checks the whole file first (unknown
env ids, unknown presets, unknown fields and wrong types are all reported at once, before anything runs), then
trains every (env, seed) pair as an ordinary run directory with ``python -m fastsac train`` in separate processes,
``--jobs`` at a time, and finally aggregates what the runs wrote into

* ``results.csv``: one row per evaluation point (suite, env, label, agent, seed, step, wall_time, eval_return, sps);
* ``plots/<env>_steps.png`` and ``plots/<env>_time.png``: per suite entry of the env, the IQM over seeds and its
  95% bootstrap band against env steps and against wall-clock time, with the published reference scores as dashed
  lines, or their published learning curves where ``definitions/published_curves.csv`` has them;
* ``report.md``: final return (mean ± std over seeds), steps/s, and the reference scores beside ours with their
  sources, each marked above or below; a reference that names an agent is compared with that agent's rows only.

One env may appear in several entries (e.g. SAC and CrossQ, through their presets) when each has its own
``label``; an entry's label defaults to its env id. Runs live in ``OUT/runs/<label>/seed<k>``. A run whose ``summary.json`` says it finished is never run again; an
unfinished run with a checkpoint is resumed with ``fastsac train --resume``; an unfinished run without one is
started afresh. So an interrupted suite picks up where it stopped when the same command is run again. Ctrl-C
(or SIGTERM) forwards SIGINT to the training processes, waits for them to exit, and escalates if they do not.

Published reference scores live in ``fastsac/suite/definitions/references.toml`` with their exact source.
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

__all__ = [
    "REFERENCES_FILE",
    "SUITES_DIR",
    "RandomScore",
    "Reference",
    "Suite",
    "SuiteEnv",
    "SuiteError",
    "available_suites",
    "load_random_scores",
    "load_references",
    "load_suite",
    "suite_path",
]

SUITES_DIR = Path(__file__).with_name("definitions")
REFERENCES_FILE = SUITES_DIR / "references.toml"
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
    agent: str | None = None  #: the agent the score is for (in agents.config.AGENTS); None: any agent (thresholds)
    #: the published per-seed scores behind ``score`` at ``steps`` (their mean), when the source gives them
    per_seed: tuple[float, ...] | None = None


@dataclass(frozen=True)
class RandomScore:
    """The mean return of a uniformly random policy on one env: the 0 of its normalized score."""

    env: str
    score: float
    source: str  #: who measured it, e.g. "fastsac random policy"
    protocol: str  #: how (episodes, seeds, the command that measured it)
    url: str | None = None


@dataclass(frozen=True)
class Threshold:
    """A return to reach (the report's time-to-score column), with why this number."""

    score: float
    reason: str


@dataclass(frozen=True)
class SuiteEnv:
    """One env of a suite and how it is trained."""

    env: str
    preset: str | None  #: as the suite gives it; None: the trainer's default ("auto")
    total_steps: int
    config: dict[str, Any]  #: further training options (TrainConfig fields), passed as `fastsac train` flags
    references: tuple[Reference, ...]  #: the env's references for this entry's agent (or for any agent)
    preset_used: str | None = None  #: the preset training will use (the env's own under "auto"), None for none
    label: str = ""  #: the entry's name (its runs' folder, its curves' legend); defaults to the env id
    agent: str = "sac"  #: the learner the resolved configuration trains (LearnerConfig.agent)

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", self.env)


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    seeds: tuple[int, ...]
    envs: tuple[SuiteEnv, ...]
    path: Path
    #: env -> (random-policy score, the published reference) between which its scores are normalized to [0, 1];
    #: empty when the suite names no [normalization]
    normalization: dict[str, tuple[RandomScore, Reference]] = field(default_factory=dict)
    thresholds: dict[str, Threshold] = field(default_factory=dict)  #: env -> the return of the time-to-score column


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

    Uses the registries of :mod:`fastsac.data.envs` (no env is created). Ids of the form ``module:Env-v0`` register
    themselves on import and cannot be checked without importing the module, so they pass.
    """
    from fastsac.data import envs

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
    from fastsac.data import envs

    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    if not envs.envpool_available():
        hint += " (EnvPool is not installed here; its tasks, e.g. the DeepMind Control ones, need it)"
    return f"unknown env id {env_id!r} (in neither EnvPool nor gymnasium){hint}"


_REFERENCE_KEYS = ("env", "source", "score", "std", "steps", "measured_on", "protocol", "url", "verified", "agent",
                   "per_seed")


def load_references(path: Path | str | None = None) -> dict[str, tuple[Reference, ...]]:
    """Read a references file (default ``fastsac/suite/definitions/references.toml``): ``[[reference]]`` tables; returns
    env id -> references. Raises SuiteError."""
    from fastsac.agents.config import AGENTS

    path = Path(path if path is not None else REFERENCES_FILE)
    data = _read_toml(path)
    err = _Errors(str(path))
    err.unknown_keys(data, ("reference", "random"), "")
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
            "agent": err.get(table, "agent", "str", ctx),
        }
        if values["agent"] is not None and values["agent"] not in AGENTS:
            err.add(f"{ctx}'agent' must be one of {', '.join(AGENTS)} (or absent: any agent), got {values['agent']!r}")
        per_seed = table.get("per_seed")
        if per_seed is not None:
            if (not isinstance(per_seed, list) or len(per_seed) < 2 or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in per_seed)):
                err.add(f"{ctx}'per_seed' must be a list of two or more finite numbers, got {per_seed!r}")
            elif values["score"] is not None and abs(sum(per_seed) / len(per_seed) - values["score"]) > 0.01:
                err.add(f"{ctx}'score' {values['score']} is not the mean of 'per_seed' "
                        f"({sum(per_seed) / len(per_seed):.3f})")
            elif values["steps"] is None:
                err.add(f"{ctx}'per_seed' needs 'steps' (the step the per-seed scores were read at)")
            else:
                values["per_seed"] = tuple(float(v) for v in per_seed)
        required = ("env", "source", "score", "protocol", "url", "verified")
        if any(values[k] is None for k in required):
            continue
        values["measured_on"] = values["measured_on"] or values["env"]
        refs.setdefault(values["env"], []).append(Reference(**values))
    for env_id, close in _unknown_env_ids(sorted(refs)).items():
        err.add(_env_problem(env_id, close))
    err.raise_if_any()
    return {k: tuple(v) for k, v in refs.items()}


_RANDOM_KEYS = ("env", "score", "source", "protocol", "url")


def load_random_scores(path: Path | str | None = None) -> dict[str, RandomScore]:
    """The ``[[random]]`` tables of a references file (default ``definitions/references.toml``): env id -> the mean
    return of a uniformly random policy, with who measured it and how. Raises SuiteError."""
    path = Path(path if path is not None else REFERENCES_FILE)
    data = _read_toml(path)
    err = _Errors(str(path))
    tables = data.get("random", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        err.add("'random' must be an array of tables ([[random]])")
        tables = []
    out: dict[str, RandomScore] = {}
    for i, table in enumerate(tables):
        ctx = f"random[{i}] ({table.get('env', '?')}): "
        err.unknown_keys(table, _RANDOM_KEYS, ctx)
        values = {"env": err.get(table, "env", "str", ctx, required=True),
                  "score": err.get(table, "score", "float", ctx, required=True),
                  "source": err.get(table, "source", "str", ctx, required=True),
                  "protocol": err.get(table, "protocol", "str", ctx, required=True),
                  "url": err.get(table, "url", "str", ctx)}  # fmt: skip
        if values["env"] in out:
            err.add(f"{ctx}a second random score for {values['env']!r}")
        if all(values[k] is not None for k in ("env", "score", "source", "protocol")):
            out[values["env"]] = RandomScore(**values)
    err.raise_if_any()
    return out


def _normalization(err: _Errors, table: Any, env_ids: Sequence[str], references: dict[str, tuple[Reference, ...]],
                   randoms: dict[str, RandomScore]) -> dict[str, tuple[RandomScore, Reference]]:
    """``[normalization] reference = "Source"`` (or a list, the first source an env has wins): per env, its random
    score and that reference. Every env of the suite must have both."""
    if table is None:
        return {}
    if not isinstance(table, dict):
        err.add(f"'normalization' must be a table (reference = \"<source>\"), got {table!r}")
        return {}
    err.unknown_keys(table, ("reference",), "normalization: ")
    sources = table.get("reference")
    sources = [sources] if isinstance(sources, str) else sources
    if not isinstance(sources, list) or not sources or not all(isinstance(x, str) and x for x in sources):
        err.add(f"normalization.reference must be a source name or a list of them, got {table.get('reference')!r}")
        return {}
    out = {}
    for env_id in env_ids:
        refs = [r for src in sources for r in references.get(env_id, ()) if r.source == src]
        if env_id not in randoms:
            err.add(f"normalization: no random-policy score for {env_id!r} ([[random]] in the references file)")
        if not refs:
            err.add(f"normalization: {env_id!r} has no reference from {', '.join(map(repr, sources))}")
        if refs and env_id in randoms:
            if refs[0].score == randoms[env_id].score:
                err.add(f"normalization: {env_id!r}'s reference equals its random score (nothing to divide by)")
            else:
                out[env_id] = (randoms[env_id], refs[0])
    return out


def _thresholds(err: _Errors, table: Any, env_ids: Sequence[str]) -> dict[str, Threshold]:
    """``[thresholds] "<env>" = { score = 3000, reason = "..." }``."""
    if table is None:
        return {}
    if not isinstance(table, dict):
        err.add(f"'thresholds' must be a table of env = {{ score = ..., reason = \"...\" }}, got {table!r}")
        return {}
    out = {}
    for env_id, spec in table.items():
        ctx = f"thresholds.{env_id}: "
        if env_id not in env_ids:
            err.add(f"{ctx}not an env of this suite")
            continue
        if not isinstance(spec, dict):
            err.add(f"{ctx}must be {{ score = <return>, reason = \"<why this number>\" }}, got {spec!r}")
            continue
        err.unknown_keys(spec, ("score", "reason"), ctx)
        score = err.get(spec, "score", "float", ctx, required=True)
        reason = err.get(spec, "reason", "str", ctx, required=True)
        if score is not None and reason is not None:
            out[env_id] = Threshold(score, reason)
    return out


_SUITE_KEYS = ("name", "description", "seeds", "total_steps", "config", "envs", "normalization", "thresholds")
_ENV_KEYS = ("env", "label", "preset", "total_steps", "config")
# Options a suite may not set through `config`: the runner sets them per run (or they have their own field).
_RESERVED = {"env_id": "env", "seed": "seeds", "out": "--out", "device": "--device", "total_steps": "total_steps"}


def available_suites() -> list[str]:
    """Names of the suites shipped in ``fastsac/suite/definitions``."""
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


def load_suite(name_or_path: str | Path, *, references: dict[str, tuple[Reference, ...]] | None = None,
               random_scores: dict[str, RandomScore] | None = None) -> Suite:
    """Read and check a suite file; every problem is reported in one :class:`SuiteError`.

    Each env's training options (preset, budget, ``config``) are resolved with :func:`fastsac.training.presets.resolve_config`
    exactly as ``fastsac train`` will resolve them, so an unknown preset or option, or a bad value, is caught here.
    ``references`` defaults to ``fastsac/suite/definitions/references.toml``; each env gets those recorded for its env id.
    """
    from fastsac.training.config import ConfigError
    from fastsac.training.presets import resolve_config

    path = suite_path(str(name_or_path))
    data = _read_toml(path)
    if references is None:
        references = load_references()
    if random_scores is None:
        random_scores = load_random_scores(REFERENCES_FILE) if "normalization" in data else {}
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
        ctx = f"envs[{i}] ({table.get('label', table.get('env', '?'))}): "
        err.unknown_keys(table, _ENV_KEYS, ctx)
        env_id = err.get(table, "env", "str", ctx, required=True)
        label = err.get(table, "label", "str", ctx)
        if label is not None and not _NAME_RE.match(label):
            err.add(f"{ctx}'label' must be letters, digits, '.', '_' or '-' (it names the runs' folder), got {label!r}")
        preset = err.get(table, "preset", "str", ctx)
        steps = err.get(table, "total_steps", "int+", ctx) or default_steps
        config = {**default_config, **_check_config(err, table.get("config"), ctx)}
        if env_id is None:
            continue
        label = label or env_id
        if label in seen:
            what = f"label {label!r}" if label != env_id else f"env {env_id!r}"
            err.add(f"{ctx}{what} appears twice (give each entry of one env its own 'label')")
        seen.add(label)
        if steps is None and "total_steps" not in table and "total_steps" not in data:
            err.add(f"{ctx}no 'total_steps' (set it here or at the top of the file)")
        # The options on their own, then with the preset (alone if the options are bad), so both are reported.
        overrides = {**config, "env_id": env_id, "total_steps": steps or 1}
        preset_used, agent = None, "sac"
        for with_preset in (None, preset or "auto"):
            try:
                resolved, preset_used = resolve_config(with_preset, overrides)
                agent = resolved.learner.agent
            except ConfigError as e:
                err.add(ctx + str(e).replace("\n", "\n    "))
                overrides = {"env_id": env_id}
        refs = tuple(r for r in references.get(env_id, ()) if r.agent in (None, agent))
        entries.append(SuiteEnv(env_id, preset, steps or 0, config, refs, preset_used, label, agent))
    for env_id, close in _unknown_env_ids([e.env for e in entries]).items():
        err.add(_env_problem(env_id, close))
    env_ids = list(dict.fromkeys(e.env for e in entries))
    norm = _normalization(err, data.get("normalization"), env_ids, references, random_scores)
    thresholds = _thresholds(err, data.get("thresholds"), env_ids)
    err.raise_if_any()
    return Suite(name, description, tuple(seeds), tuple(entries), path, norm, thresholds)
