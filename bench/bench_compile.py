"""What compiling the update costs and saves on this machine: the numbers behind ``fastsac train``'s compile rule.

A run's fast path on a CPU is one of two things: the native update (``fastsac.agents.sac_native``: one C++ call,
nothing to compile) where it applies, else torch.compile. So, for each network width, three updates in
interleaved rounds at a fixed thread count, each named by its ``LearnerConfig.update``: ``eager``, ``compile``
(torch.compile) and ``native`` (where the C++ extension has it), in ms per update, and each one's saving over
eager. Then each one's first call in a fresh process: torch.compile's with torch's
on-disk caches cold (a private, empty ``TORCHINDUCTOR_CACHE_DIR``) and warm (the same directory again), and the
native update's (it compiles nothing, so it has no cache to be warm). The break-even number of updates is
``first-call seconds / saving per update``. The rule in ``fastsac.training.resolve`` uses the cold compile time
(a run must decide the same way whatever the cache holds: compiled and eager updates differ in their last
bits, so a seeded run's results must not depend on the cache).

    python bench/bench_compile.py                               # HalfCheetah sizes, widths 64 128 256, 1 thread
    python bench/bench_compile.py --obs-dim 3 --act-dim 1 --widths 64   # the Pendulum quick start's update
    python bench/bench_compile.py --widths 64 256 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_update import make_batches, time_updates  # noqa: E402

from fastsac.agents import LearnerConfig, SACLearner  # noqa: E402

BATCH = 256
KINDS = ("eager", "compile", "native")


def _learner(kind: str, obs: int, act: int, width: int) -> SACLearner | None:
    """A learner whose update is ``kind`` (``LearnerConfig.update``), or None where that kind does not run here
    (native without the extension's native update)."""
    cfg = LearnerConfig(hidden_sizes=(width, width), update=kind)
    if kind == "native" and SACLearner.native_unsupported(cfg, torch.device("cpu")) is not None:
        return None
    return SACLearner(obs, act, cfg)


def first_call_seconds(kind: str, obs: int, act: int, width: int, threads: int, cache_dir: str) -> float:
    """Seconds of the first update of ``kind`` in a fresh process with ``cache_dir`` as torch's compile cache."""
    code = (
        "import sys, time, torch; sys.path.insert(0, %r); sys.path.insert(0, %r)\n"
        "torch.set_num_threads(%d)\n"
        "from bench_update import make_batches\n"
        "from bench_compile import _learner\n"
        "L = _learner(%r, %d, %d, %d)\n"
        "b = make_batches(1, %d, %d, %d)[0]\n"
        "t = time.perf_counter(); L.update(b); print(time.perf_counter() - t)\n"
        "assert L.runner.kind == %r, L.runner.kind\n"
    ) % (str(ROOT), str(ROOT / "bench"), threads, kind, obs, act, width, BATCH, obs, act, kind)
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--widths", type=int, nargs="+", default=[64, 128, 256])
    p.add_argument("--obs-dim", type=int, default=17)
    p.add_argument("--act-dim", type=int, default=6)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--compile-width", type=int, default=None,
                   help="width whose first calls are timed (default: the last of --widths)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    obs, act = args.obs_dim, args.act_dim
    args.compile_width = args.compile_width or args.widths[-1]
    batches = make_batches(8, BATCH, obs, act)
    rows = []
    for width in args.widths:
        updates = {k: lr.update for k in KINDS if (lr := _learner(k, obs, act, width)) is not None}
        for f in updates.values():
            time_updates(f, batches, 10)  # compiles (and checks against eager)
        times = {k: [] for k in updates}
        for _ in range(args.repeats):
            for k, f in updates.items():
                times[k].append(time_updates(f, batches, args.iters))
        row = {"width": width, **{f"{k}_ms": statistics.median(t) for k, t in times.items()}}
        for k in updates:
            if k != "eager":
                row[f"{k}_saving_ms"] = row["eager_ms"] - row[f"{k}_ms"]
        rows.append(row)
    first = {}
    with tempfile.TemporaryDirectory() as cache:
        first["compile_cold_s"] = first_call_seconds("compile", obs, act, args.compile_width, args.threads, cache)
        first["compile_warm_s"] = first_call_seconds("compile", obs, act, args.compile_width, args.threads, cache)
        if "native_ms" in rows[0]:
            first["native_s"] = first_call_seconds("native", obs, act, args.compile_width, args.threads, cache)
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {BATCH}, obs {obs}, act {act}; "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    print(f"first call of the 2x{args.compile_width} update: torch.compile {first['compile_cold_s']:.1f} s with a "
          f"cold cache, {first['compile_warm_s']:.1f} s warm"
          + (f"; native {first['native_s']:.3f} s" if "native_s" in first else "; native: does not run here"))
    cost = {"compile": first["compile_cold_s"], "native": first.get("native_s")}
    header = f"{'width':>6}{'eager ms':>10}{'compile ms':>12}{'saving':>8}{'break-even':>12}"
    header += f"{'native ms':>11}{'saving':>8}{'break-even':>12}" if "native_s" in first else ""
    print(header + "   (break-even: updates to repay the first call; torch.compile's with a cold cache)")
    for r in rows:
        line = f"{r['width']:>6}{r['eager_ms']:>10.2f}"
        for k in ("compile", "native"):
            if f"{k}_ms" not in r:
                continue
            s = r[f"{k}_saving_ms"] / 1e3
            line += f"{r[f'{k}_ms']:>{12 if k == 'compile' else 11}.2f}{r[f'{k}_saving_ms']:>8.2f}"
            line += f"{cost[k] / s:>12,.0f}" if s > 0 else f"{'never':>12}"
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps({**first, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
