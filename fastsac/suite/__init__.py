"""Benchmark suites (``fastsac bench SUITE``): many ordinary, resumable runs (envs x seeds), their results beside
published scores.

A suite is a TOML file (``definitions/<name>.toml``, or any path) naming environments, the hyperparameter preset
each one trains with, a step budget and the seeds. The whole file is checked first (unknown env ids, presets,
fields and wrong types are all reported at once, before anything runs); then every (env, seed) pair trains as its
own run directory, ``--jobs`` at a time, and what the runs wrote is aggregated into ``results.csv``, learning
curves (``plots/``) and ``report.md``.

Files: ``schema.py`` (suite and reference files), ``runner.py`` (the process pool, resume, signals),
``results.py`` (where runs live, reading them back, results.csv), ``plots.py``, ``report.py`` and
``report_stats.py`` (the report and its statistical sections), ``stats.py`` (IQM, intervals, profiles and the
probability of improvement, from rliable: the optional extra ``fastsac[report]``), ``random_scores.py`` (the
random-policy scores that normalization starts from), ``formatting.py``; the shipped suites, the published
reference scores with their sources and the random-policy scores are in ``definitions/``.
"""

from fastsac.suite.listing import describe_suite
from fastsac.suite.report import write_outputs
from fastsac.suite.results import RESULT_COLUMNS, RunRecord, read_run
from fastsac.suite.runner import Run, execute, plan_runs, run_dir, run_status, run_suite, train_argv
from fastsac.suite.schema import (
    REFERENCES_FILE,
    SUITES_DIR,
    Reference,
    Suite,
    SuiteEnv,
    SuiteError,
    available_suites,
    load_references,
    load_suite,
)

__all__ = [
    "REFERENCES_FILE",
    "RESULT_COLUMNS",
    "SUITES_DIR",
    "Reference",
    "Run",
    "RunRecord",
    "Suite",
    "SuiteEnv",
    "SuiteError",
    "available_suites",
    "describe_suite",
    "execute",
    "load_references",
    "load_suite",
    "plan_runs",
    "read_run",
    "run_dir",
    "run_status",
    "run_suite",
    "train_argv",
    "write_outputs",
]
