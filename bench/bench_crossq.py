"""Per-update cost of CrossQ against SAC: the compiled update, timed in one run, at several critic widths.

CrossQ's paper uses critics of 2048 x 2048 (16x the hidden-layer FLOPs of SAC's 256 x 256) and one joint critic
pass over 2 x batch rows; on a small CPU the width decides whether a 100k-step run takes minutes or hours. This
prints ms per update (averaged over whole policy-delay cycles, so CrossQ's actor step every 3rd update is counted
in proportion) and the implied update time of a 100k-step run at UTD 1 (updates only: env steps, evaluation and
the ~1 min compile come on top).

Providers: ``sac`` (fastsac SAC, 2x256, policy_delay 1: the MuJoCo presets) and ``crossq-W`` (CrossQ's defaults
with critics W x W) for each ``--widths`` entry. HalfCheetah sizes (obs 17, act 6), batch 256, random batches.

    python bench/bench_crossq.py --threads 1 --clock cpu
    python bench/bench_crossq.py --widths 2048 512 --rounds 3
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_update import make_batches, time_updates  # noqa: E402
from fastsac.agents import LearnerConfig, make_learner  # noqa: E402


def learners(widths, obs_dim, act_dim, device):
    yield "sac", make_learner(obs_dim, act_dim, LearnerConfig(update="compile"), device)
    for w in widths:
        cfg = dataclasses.replace(LearnerConfig(update="compile").with_agent("crossq"), critic_hidden_sizes=(w, w))
        yield f"crossq-{w}", make_learner(obs_dim, act_dim, cfg, device)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--widths", type=int, nargs="+", default=[2048, 1024, 512, 256], help="CrossQ critic widths")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--cycles", type=int, default=4, help="policy-delay cycles (3 updates each) per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--clock", choices=("wall", "cpu"), default="cpu",
                   help="cpu: process CPU time (robust on a shared machine at --threads 1); wall: perf_counter")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    batches = [tuple(t.to(device) for t in b) for b in make_batches(6, args.batch_size, 17, 6)]
    iters = 3 * args.cycles
    print(f"torch {torch.__version__}, threads {args.threads}, batch {args.batch_size}, obs 17, act 6, "
          f"{args.rounds} rounds x {iters} updates, {args.clock} clock")
    print(f"{'provider':<14}{'compile s':>10}{'ms/update':>11}{'min':>9}{'max':>9}{'vs sac':>8}{'100k updates':>14}")
    sac_ms = None
    for name, learner in learners(args.widths, 17, 6, device):
        start = time.perf_counter()
        time_updates(learner.update, batches, 3, sync=sync)  # compiles both policy-delay variants
        compile_s = time.perf_counter() - start
        rounds = [time_updates(learner.update, batches, iters, clock, sync) for _ in range(args.rounds)]
        ms = statistics.median(rounds)
        sac_ms = sac_ms or ms
        print(f"{name:<14}{compile_s:>10.0f}{ms:>11.1f}{min(rounds):>9.1f}{max(rounds):>9.1f}{ms / sac_ms:>7.1f}x"
              f"{ms * 100_000 / 3.6e6:>12.2f} h")
        del learner
    return 0


if __name__ == "__main__":
    sys.exit(main())
