"""What compiling the update costs and saves on this machine: the numbers behind ``fastsac train``'s compile rule.

For each network width: fastsac's eager and compiled update (ms per update, interleaved rounds, fixed threads) and
the saving per update; then the first compile of the update in fresh processes, once with torch's on-disk caches
cold (a private, empty ``TORCHINDUCTOR_CACHE_DIR``) and once warm (the same directory again). The break-even
number of updates is ``compile seconds / saving per update``. The rule in ``fastsac.training.resolve`` uses the
cold compile time (a run must decide the same way whatever the cache holds: compiled and eager updates differ
in their last bits, so a seeded run's results must not depend on the cache).

    python bench/bench_compile.py                     # widths 64 128 256, 1 thread
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

OBS, ACT, BATCH = 17, 6, 256


def first_compile_seconds(width: int, threads: int, cache_dir: str) -> float:
    """Seconds of the first compiled update in a fresh process with ``cache_dir`` as torch's compile cache."""
    code = (
        "import sys, time, torch; sys.path.insert(0, %r); sys.path.insert(0, %r)\n"
        "torch.set_num_threads(%d)\n"
        "from bench_update import make_batches\n"
        "from fastsac.agents import LearnerConfig, SACLearner\n"
        "L = SACLearner(%d, %d, LearnerConfig(hidden_sizes=(%d, %d), compile=True))\n"
        "b = make_batches(1, %d, %d, %d)[0]\n"
        "t = time.perf_counter(); L.update(b); print(time.perf_counter() - t)\n"
    ) % (str(ROOT), str(ROOT / "bench"), threads, OBS, ACT, width, width, BATCH, OBS, ACT)
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--widths", type=int, nargs="+", default=[64, 128, 256])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--compile-width", type=int, default=256, help="width whose first compile is timed cold/warm")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    batches = make_batches(8, BATCH, OBS, ACT)
    rows = []
    for width in args.widths:
        cfg = dict(hidden_sizes=(width, width))
        eager = SACLearner(OBS, ACT, LearnerConfig(**cfg, compile=False)).update
        compiled = SACLearner(OBS, ACT, LearnerConfig(**cfg, compile=True)).update
        for f in (eager, compiled):
            time_updates(f, batches, 10)
        e, c = [], []
        for _ in range(args.repeats):
            e.append(time_updates(eager, batches, args.iters))
            c.append(time_updates(compiled, batches, args.iters))
        row = {"width": width, "eager_ms": statistics.median(e), "compiled_ms": statistics.median(c)}
        row["saving_ms"] = row["eager_ms"] - row["compiled_ms"]
        rows.append(row)
    with tempfile.TemporaryDirectory() as cache:
        cold = first_compile_seconds(args.compile_width, args.threads, cache)
        warm = first_compile_seconds(args.compile_width, args.threads, cache)
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {BATCH}, obs {OBS}, act {ACT}; "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    print(f"first compile of the 2x{args.compile_width} update: cold cache {cold:.1f} s, warm cache {warm:.1f} s")
    print(f"{'width':>6}{'eager ms':>10}{'compiled ms':>13}{'saving ms':>11}{'break-even (cold)':>19}"
          f"{'break-even (warm)':>19}")
    for r in rows:
        s = r["saving_ms"] / 1e3
        be_cold = f"{cold / s:,.0f}" if s > 0 else "never"
        be_warm = f"{warm / s:,.0f}" if s > 0 else "never"
        print(f"{r['width']:>6}{r['eager_ms']:>10.2f}{r['compiled_ms']:>13.2f}{r['saving_ms']:>11.2f}"
              f"{be_cold:>19}{be_warm:>19}")
    if args.json:
        Path(args.json).write_text(json.dumps({"cold_s": cold, "warm_s": warm, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
