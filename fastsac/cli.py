"""The ``fastsac`` command line (also ``python -m fastsac``).

::

    fastsac train [--env ID] [--preset NAME|PATH|none] [--num-envs N] [--total-steps N] [--seed S] [--device D]
                  [--backend B] [--update U] [--out DIR] [... every TrainConfig/LearnerConfig field]
    fastsac train --resume RUN_DIR [--total-steps N] [...]
    fastsac eval RUN_DIR [--episodes N] [--video] [--seed S] [--device D]
    fastsac bench SUITE [--num-seeds N] [--jobs N] [--device D] [--out DIR] [--report-only] | --list
    fastsac plot RUN [RUN ...] [--x steps|time] [--out FILE]   (runs side by side: return, alpha, steps/s)
    fastsac presets                    (list the shipped presets)

The ``train`` flags are generated from the config dataclasses (``fastsac.training.config.TrainConfig`` and
``fastsac.agents.config.LearnerConfig``): one
flag per field, named after it (``--actor-lr``), with the field's help text; ``--env`` is short for ``--env-id``.
Precedence: dataclass defaults < preset < flags. ``--preset auto`` (the default) uses the shipped preset named
after the env when there is one (``fastsac train --env HalfCheetah-v5`` trains with ``presets/HalfCheetah-v5.toml``;
with ``--agent crossq``, ``presets/HalfCheetah-v5-crossq.toml``).

Exit codes: 0 success; 1 a failure while running (CUDA out of memory, a fast path failing under FASTSAC_STRICT=1,
an env that broke, a data-parallel run that lost a rank; the message says what); 2 bad input only (a configuration
value, preset, checkpoint, env id or backend that cannot be used; the message says what was wrong; nothing was
written); 130 interrupted (a checkpoint was written; resume with ``--resume``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal, Sequence

__all__ = ["bench_main", "build_bench_parser", "build_parser", "main", "train_overrides"]

_ALIASES = {("env_id",): ["--env"]}


def _flag(path: tuple[str, ...], top_level: set[str]) -> str:
    name = path[-1]
    if len(path) > 1 and name in top_level:
        name = "_".join(path)
    return "--" + name.replace("_", "-")


def _optional_float(text: str) -> float | None:
    if text.lower() in ("none", "auto", "default"):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None


def _add_field(group, spec, top_level: set[str]) -> None:
    from fastsac.training.config import _describe

    tp = spec.type
    flags = [*_ALIASES.get(spec.path, []), _flag(spec.path, top_level)]
    dest = ".".join(spec.path)
    default = spec.default
    if isinstance(default, tuple):
        shown = " ".join(str(v) for v in default)
    elif default is None:
        shown = "auto" if spec.path[-1] == "target_entropy" else "none"
    else:
        shown = str(default)
    text = spec.help if "default" in spec.help else f"{spec.help} (default: {shown})"
    kwargs: dict[str, Any] = {"dest": dest, "default": argparse.SUPPRESS, "help": text}
    origin = typing.get_origin(tp)
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    optional = origin in (typing.Union, types.UnionType) and len(args) == 1
    base = args[0] if optional else tp
    base_origin = typing.get_origin(base)
    if base is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif base_origin is Literal:
        kwargs["choices"] = list(typing.get_args(base))
        kwargs["metavar"] = "{" + ",".join(map(str, kwargs["choices"])) + "}"
    elif base_origin is tuple:
        kwargs["nargs"] = "+"
        kwargs["type"] = typing.get_args(base)[0]
        kwargs["metavar"] = "N"
    elif base is float and optional:
        kwargs["type"] = _optional_float
        kwargs["metavar"] = "X|auto"
    elif base in (int, float, str):
        kwargs["type"] = base
        kwargs["metavar"] = {"int": "N", "float": "X", "str": "TEXT"}[base.__name__]
    else:  # pragma: no cover - a new field type must be taught to the CLI
        raise TypeError(f"the CLI cannot parse field {dest} of type {_describe(tp)}")
    group.add_argument(*flags, **kwargs)


def _add_train_args(parser: argparse.ArgumentParser) -> None:
    from fastsac.training.config import RESUME_MUTABLE, TrainConfig, field_specs

    top_level = {f.name for f in dataclasses.fields(TrainConfig)}
    parser.add_argument(
        "--preset",
        default="auto",
        metavar="NAME",
        help="hyperparameter preset: a name from `fastsac presets`, a .toml path, 'none', or 'auto' (the preset "
        "for --env (and --agent: <env>-crossq) when one exists) (default: auto)",
    )
    parser.add_argument(
        "--resume",
        metavar="RUN_DIR",
        default=None,
        help="continue the run in RUN_DIR exactly where its latest checkpoint left it; only these may be given "
        "with it: " + ", ".join("--" + n.replace("_", "-") for n in sorted(RESUME_MUTABLE - {"out"})),
    )
    run = parser.add_argument_group("run options (TrainConfig)")
    learner = parser.add_argument_group("learner options (LearnerConfig; the [learner] table of a preset)")
    for spec in field_specs(TrainConfig):
        _add_field(learner if len(spec.path) > 1 else run, spec, top_level)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastsac",
        description="Fast, exact Soft Actor-Critic: train, evaluate and benchmark.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="`fastsac train` with no options trains Pendulum-v1 on the CPU in a few minutes.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    train_p = sub.add_parser(
        "train",
        help="train an agent (or resume a run)",
        description="Train SAC or CrossQ (--agent). Defaults < preset < flags. Every run writes config.json, metrics.csv, tb/, "
        "checkpoints/latest.pt and summary.json into its run directory (--out).",
    )
    _add_train_args(train_p)
    eval_p = sub.add_parser("eval", help="evaluate a run's latest checkpoint", description="Evaluate the "
                            "deterministic policy of RUN_DIR/checkpoints/latest.pt.")  # fmt: skip
    eval_p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by `fastsac train`")
    eval_p.add_argument("--episodes", type=int, default=10, metavar="N", help="episodes to run (default: 10)")
    eval_p.add_argument(
        "--video", action="store_true", help="record the episodes to RUN_DIR/videos (gymnasium RecordVideo; needs moviepy)"
    )
    eval_p.add_argument("--seed", type=int, default=None, help="evaluation seed (default: the run's evaluation seed)")
    eval_p.add_argument("--device", default=None, help="device to run the policy on (default: the run's device)")
    sub.add_parser(
        "bench",
        help="run a benchmark suite (fastsac bench --help)",
        add_help=False,
        description="Handled by bench_main (its own parser).",
    )
    plot_p = sub.add_parser("plot", help="draw runs side by side (return, alpha, steps/s)", description="Draw the "
                            "evaluation return, alpha and steps/s of one or more run directories (their metrics.csv) "
                            "side by side into one PNG. Each run also keeps its own RUN_DIR/curves.png, redrawn at "
                            "every evaluation.")  # fmt: skip
    plot_p.add_argument("runs", nargs="+", metavar="RUN", help="run directories written by `fastsac train`")
    plot_p.add_argument("--x", choices=("steps", "time"), default="steps",
                        help="horizontal axis: env steps or wall-clock seconds (default: steps)")
    plot_p.add_argument("--out", type=Path, default=Path("runs.png"), metavar="FILE",
                        help="the PNG to write (default: runs.png)")
    sub.add_parser("presets", help="list the shipped hyperparameter presets")
    return parser


def _set(d: dict[str, Any], path: Sequence[str], value: Any) -> None:
    for key in path[:-1]:
        d = d.setdefault(key, {})
    d[path[-1]] = value


def train_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The nested override dict of the flags that were actually given."""
    out: dict[str, Any] = {}
    for dest, value in vars(args).items():
        if dest in ("command", "preset", "resume"):
            continue
        _set(out, dest.split("."), list(value) if isinstance(value, list) else value)
    return out


def _err(message: str) -> int:
    print(f"fastsac: error: {message}", file=sys.stderr)
    return 2


def _failed(exc: BaseException) -> int:
    print(f"fastsac: failed: {type(exc).__name__}: {exc}\n(set FASTSAC_DEBUG=1 to see the traceback)", file=sys.stderr)
    return 1


def _cmd_train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from fastsac.training import resolve_config, resume, train

    overrides = train_overrides(args)
    if args.resume is not None:
        if args.preset != "auto":
            return _err("--preset cannot be combined with --resume (the run keeps its configuration)")
        result = resume(args.resume, **overrides)
    else:
        config, preset = resolve_config(args.preset, overrides)
        print(f"fastsac train: {config.env_id}, {config.learner.agent}, preset {preset or 'none'}, seed {config.seed}",
              file=sys.stderr)
        result = train(config)
    if (result.summary.get("distributed") or {}).get("rank", 0) != 0:
        return 0  # data parallel: rank 0 reports the run
    ev = result.final_eval_return
    print(
        f"run: {result.run_dir}\nsteps: {result.total_steps}\n"
        f"final eval return: {'n/a' if ev is None else f'{ev:.2f} ± {result.final_eval_std:.2f}'}\n"
        f"steps/s: {result.sps:.1f}\nwall time: {result.wall_time:.1f} s"
    )
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from fastsac.training import evaluate
    from fastsac.training.checkpoint import atomic_write_bytes

    res = evaluate(args.run_dir, episodes=args.episodes, video=args.video, seed=args.seed, device=args.device)
    print(f"device: {res.device}")
    for i, (r, n) in enumerate(zip(res.returns, res.lengths)):
        print(f"episode {i}: return {r:.2f}, length {n}")
    print(f"mean return over {len(res.returns)} episodes at step {res.step}: {res.mean_return:.2f} ± {res.std_return:.2f}")
    if res.video_dir is not None:
        print(f"videos: {res.video_dir}")
    record = {"step": res.step, "mean_return": res.mean_return, "std_return": res.std_return,
              "returns": res.returns, "lengths": res.lengths, "seed": args.seed}  # fmt: skip
    atomic_write_bytes(os.path.join(args.run_dir, "eval.json"), (json.dumps(record, indent=2) + "\n").encode())
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from fastsac.training.curves import plot_runs

    try:
        path = plot_runs(args.runs, args.out, x=args.x)
    except FileNotFoundError as exc:
        return _err(str(exc))
    print(f"plot: {path}")
    return 0


def _cmd_presets() -> int:
    from fastsac.training.presets import PRESETS_DIR, available_presets

    for name in available_presets():
        first = ""
        for line in (PRESETS_DIR / f"{name}.toml").read_text().splitlines():
            if line.startswith("#"):
                first = line.lstrip("# ").strip()
                break
        print(f"{name:<28} {first}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fastsac`` script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        return bench_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    from fastsac.ops import BackendUnavailableError
    from fastsac.training import CheckpointError, ConfigError, DistributedError, TrainingInterrupted

    try:
        if args.command == "train":
            return _cmd_train(args, parser)
        if args.command == "eval":
            return _cmd_eval(args)
        if args.command == "presets":
            return _cmd_presets()
        if args.command == "plot":
            return _cmd_plot(args)
    except TrainingInterrupted as exc:
        print(f"fastsac: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("fastsac: aborted (the last checkpoint written, if any, is intact)", file=sys.stderr)
        return 130
    except DistributedError as exc:  # a peer rank died, hung or failed (data-parallel runs)
        print(f"fastsac: error: {exc}", file=sys.stderr)
        return 1
    except (ConfigError, CheckpointError, FileExistsError, BackendUnavailableError) as exc:
        return _err(str(exc))
    except (ImportError, ValueError, TypeError) as exc:  # bad env ids and values, buffer too large, missing packages
        if os.environ.get("FASTSAC_DEBUG"):
            raise
        return _err(f"{exc}\n(set FASTSAC_DEBUG=1 to see the traceback)")
    except (RuntimeError, OSError, MemoryError) as exc:  # not the input: CUDA out of memory, a strict fallback, ...
        if os.environ.get("FASTSAC_DEBUG"):
            raise
        return _failed(exc)
    parser.error(f"unknown command {args.command!r}")
    return 2


# ------------------------------------------------------------------------------------------------------------
# fastsac bench


def build_bench_parser() -> argparse.ArgumentParser:
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
    p.add_argument("--only", nargs="+", metavar="LABEL",
                   help="run only these entries (labels or env ids); the report still covers the whole suite")
    p.add_argument("--device", help="training device passed to each new run (e.g. cpu, cuda); default: the trainer's")
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="runs at once, each its own process (default 1)")
    p.add_argument("--out", type=Path, help="output folder (default: bench/suites/<suite>)")
    p.add_argument("--report-only", action="store_true", help="do not train; aggregate the runs already in --out "
                   "(or, when their folders are gone, rebuild the report and plots from --out/results.csv)")
    return p


def bench_main(argv: Sequence[str] | None = None, *, train_command: Sequence[str] | None = None) -> int:
    """``fastsac bench``. Returns 0 on success, 1 if runs failed, 2 on bad input, 130 when interrupted.
    ``train_command`` replaces ``python -m fastsac train`` for each run (tests pass a fake trainer)."""
    from fastsac.suite import REFERENCES_FILE, SuiteError, available_suites, describe_suite, load_suite, plan_runs
    from fastsac.suite import run_suite, write_outputs
    from fastsac.suite.runner import TRAIN_COMMAND, check_existing, safe_name

    parser = build_bench_parser()
    args = parser.parse_args(argv)
    if args.list:
        lines = [line for name in available_suites() for line in (*describe_suite(name), "")]
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
        runs = plan_runs(suite, out, seeds=seeds, total_steps=args.total_steps, only=args.only)
        from_results = args.report_only and not any((out / "runs" / safe_name(e.label)).is_dir() for e in suite.envs)
        if from_results and not (out / "results.csv").is_file():
            raise SuiteError(f"--report-only: no runs of suite {suite.name!r} under {out / 'runs'} and no "
                             f"{out / 'results.csv'} (see --out)")
        if not args.report_only:
            check_existing(runs)
    except SuiteError as e:
        print(f"fastsac bench: error: {e}", file=sys.stderr)
        return 2
    command = "fastsac bench " + shlex.join(list(argv) if argv is not None else sys.argv[1:])
    if args.report_only:
        paths = write_outputs(suite, out, command=command, from_results=from_results)
        print(f"report: {paths['report']}" + (f" (from {paths['results']}: no run folders)" if from_results else ""))
        return 0
    return run_suite(suite, runs, out, jobs=args.jobs, device=args.device,
                     train_command=TRAIN_COMMAND if train_command is None else train_command, command=command)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
