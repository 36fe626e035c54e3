"""The ``fastsac`` command line (also ``python -m fastsac``).

::

    fastsac train [--env ID] [--preset NAME|PATH|none] [--num-envs N] [--total-steps N] [--seed S] [--device D]
                  [--backend B] [--compile/--no-compile] [--out DIR] [... every TrainConfig/LearnerConfig field]
    fastsac train --resume RUN_DIR [--total-steps N] [...]
    fastsac eval RUN_DIR [--episodes N] [--video] [--seed S] [--device D]
    fastsac bench SUITE [...]          (forwarded to fastsac.bench.main)
    fastsac presets                    (list the shipped presets)

The ``train`` flags are generated from the dataclasses in :mod:`fastsac.config` and :mod:`fastsac.learner`: one
flag per field, named after it (``--actor-lr``), with the field's help text; ``--env`` is short for ``--env-id``.
Precedence: dataclass defaults < preset < flags. ``--preset auto`` (the default) uses the shipped preset named
after the env when there is one (``fastsac train --env HalfCheetah-v5`` trains with ``presets/HalfCheetah-v5.toml``).

Exit codes: 0 success, 2 bad input (the message says what was wrong; nothing was written), 130 interrupted (a
checkpoint was written; resume with ``--resume``).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import sys
import types
import typing
from typing import Any, Literal, Sequence

__all__ = ["main", "build_parser", "train_overrides"]

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
    from fastsac.config import _describe

    tp = spec.type
    flags = [*_ALIASES.get(spec.path, []), _flag(spec.path, top_level)]
    dest = ".".join(spec.path)
    default = spec.default
    if isinstance(default, tuple):
        shown = " ".join(str(v) for v in default)
    elif default is None:
        shown = "auto" if spec.path[-1] in ("compile", "target_entropy") else "none"
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
    from fastsac.config import RESUME_MUTABLE, TrainConfig, field_specs

    top_level = {f.name for f in dataclasses.fields(TrainConfig)}
    parser.add_argument(
        "--preset",
        default="auto",
        metavar="NAME",
        help="hyperparameter preset: a name from `fastsac presets`, a .toml path, 'none', or 'auto' (the preset "
        "named after --env when one exists) (default: auto)",
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
        description="Train SAC. Defaults < preset < flags. Every run writes config.json, metrics.csv, tb/, "
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
        description="Forwarded to fastsac.bench.",
    )
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


def _cmd_train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from fastsac.config import resolve_config
    from fastsac.trainer import resume, train

    overrides = train_overrides(args)
    if args.resume is not None:
        if args.preset != "auto":
            return _err("--preset cannot be combined with --resume (the run keeps its configuration)")
        result = resume(args.resume, **overrides)
    else:
        config, preset = resolve_config(args.preset, overrides)
        print(f"fastsac train: {config.env_id}, preset {preset or 'none'}, seed {config.seed}", file=sys.stderr)
        result = train(config)
    ev = result.final_eval_return
    print(
        f"run: {result.run_dir}\nsteps: {result.total_steps}\n"
        f"final eval return: {'n/a' if ev is None else f'{ev:.2f} ± {result.final_eval_std:.2f}'}\n"
        f"steps/s: {result.sps:.1f}\nwall time: {result.wall_time:.1f} s"
    )
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from fastsac.checkpoint import atomic_write_bytes
    from fastsac.trainer import evaluate

    res = evaluate(args.run_dir, episodes=args.episodes, video=args.video, seed=args.seed, device=args.device)
    for i, (r, n) in enumerate(zip(res.returns, res.lengths)):
        print(f"episode {i}: return {r:.2f}, length {n}")
    print(f"mean return over {len(res.returns)} episodes at step {res.step}: {res.mean_return:.2f} ± {res.std_return:.2f}")
    if res.video_dir is not None:
        print(f"videos: {res.video_dir}")
    record = {"step": res.step, "mean_return": res.mean_return, "std_return": res.std_return,
              "returns": res.returns, "lengths": res.lengths, "seed": args.seed}  # fmt: skip
    atomic_write_bytes(os.path.join(args.run_dir, "eval.json"), (json.dumps(record, indent=2) + "\n").encode())
    return 0


def _cmd_presets() -> int:
    from fastsac.config import PRESETS_DIR, available_presets

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
        if importlib.util.find_spec("fastsac.bench") is None:
            return _err("the benchmark suites (fastsac.bench) are not installed in this copy of fastsac")
        from fastsac import bench

        return int(bench.main(argv[1:]) or 0)
    parser = build_parser()
    args = parser.parse_args(argv)
    from fastsac.checkpoint import CheckpointError
    from fastsac.config import ConfigError
    from fastsac.trainer import TrainingInterrupted

    try:
        if args.command == "train":
            return _cmd_train(args, parser)
        if args.command == "eval":
            return _cmd_eval(args)
        if args.command == "presets":
            return _cmd_presets()
    except TrainingInterrupted as exc:
        print(f"fastsac: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("fastsac: aborted (the last checkpoint written, if any, is intact)", file=sys.stderr)
        return 130
    except (ConfigError, CheckpointError, FileExistsError) as exc:
        return _err(str(exc))
    except (ImportError, RuntimeError, ValueError, TypeError) as exc:  # bad env ids, buffer too large, rendering
        if os.environ.get("FASTSAC_DEBUG"):
            raise
        return _err(f"{exc}\n(set FASTSAC_DEBUG=1 to see the traceback)")
    parser.error(f"unknown command {args.command!r}")
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
