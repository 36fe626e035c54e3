"""CrossQ on a CPU: fastsac against SBX's CrossQ (its reference home, JAX), end to end and per update, in one run.

Sizes (issue 24): HalfCheetah-v5, 1 env, actor 256x256, critics 512x512 (``HalfCheetah-v5-crossq-512``), batch
256, policy delay 3, Adam beta1 0.5, lr 1e-3, batch renorm momentum 0.99, UTD 1.

Parts (``--parts``):

* ``e2e``     training steps/s after ``--learning-starts`` random steps and ``--burn-in`` untimed training steps
              (JAX's jit and our first-call check), over ``--measure`` timed steps. Providers, each in its own
              process pinned to the first N cores (``os.sched_setaffinity``) with N threads (torch:
              ``--threads``; JAX: ``intra_op_parallelism_threads=1`` without Eigen's pool at N = 1, its pool on the
              N pinned cores otherwise; both: ``OMP_NUM_THREADS=N``), interleaved round by round:

              - ``sbx``: ``sbx.CrossQ("MlpPolicy", gymnasium HalfCheetah-v5, net_arch pi 256x256, qf 512x512,
                batch 256, policy_delay 3, lr 1e-3, SBX's defaults otherwise: Adam b1 0.5, momentum 0.99)``,
                ``train_freq=1``, ``gradient_steps=1``; run by ``--sbx-python`` (a venv holding
                ``sbx-rl jax jaxlib``, so the main environment's torch is never touched);
              - ``fastsac``: the trainer with the ``HalfCheetah-v5-crossq-512`` preset and the update its rule
                picks (``auto``: the native C++ update), steps/s from its ``metrics.csv``; EnvPool's env where
                installed (1 env: ~5k random steps/s against gymnasium's ~4.8k, NOTES.md: 0.01 ms a step apart);
              - ``fastsac-compile`` (with ``--with-compile``): the same with ``update="compile"``.

* ``update``  ms per update of fastsac's CrossQ at these sizes (native, and eager; compile with
              ``--with-compile``), averaged over whole policy-delay cycles, interleaved rounds, and the
              matrix-product floor: ``fastsac.agents.cost.crossq_update_flops`` at the rate a lone 512^3
              ``torch.mm`` reaches in the same rounds, and the fraction of it the native update reaches.

    python -m venv --system-site-packages /tmp/sbxvenv && /tmp/sbxvenv/bin/pip install sbx-rl jax jaxlib
    python bench/bench_crossq_sbx.py --sbx-python /tmp/sbxvenv/bin/python --threads 1 2 --rounds 2
    python bench/bench_crossq_sbx.py --parts update --threads 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from pinned import run_pinned  # noqa: E402

ENV_ID, PRESET = "HalfCheetah-v5", "HalfCheetah-v5-crossq-512"
ACTOR, CRITIC, BATCH, DELAY, LR = (256, 256), (512, 512), 256, 3, 1e-3


# ------------------------------------------------------------------------------------------------ providers
def run_sbx(args) -> float:
    import gymnasium
    from sbx import CrossQ
    from stable_baselines3.common.callbacks import BaseCallback

    start_at = args.learning_starts + args.burn_in

    class Timer(BaseCallback):
        def __init__(self):
            super().__init__()
            self.start: tuple[int, float] | None = None

        def _on_step(self) -> bool:
            if self.start is None and self.num_timesteps >= start_at:
                self.start = (self.num_timesteps, time.perf_counter())
            return True

    total = start_at + args.measure
    model = CrossQ("MlpPolicy", gymnasium.make(ENV_ID), learning_rate=LR, batch_size=BATCH, policy_delay=DELAY,
                   buffer_size=total, learning_starts=args.learning_starts, train_freq=1, gradient_steps=1,
                   policy_kwargs={"net_arch": {"pi": list(ACTOR), "qf": list(CRITIC)}}, seed=0, verbose=0)
    timer = Timer()
    model.learn(total_timesteps=total, callback=timer, progress_bar=False)
    end = (model.num_timesteps, time.perf_counter())
    return (end[0] - timer.start[0]) / (end[1] - timer.start[1])


def run_fastsac(args, update: str | None) -> float:
    sys.path.insert(0, str(ROOT))
    from train_metrics import timed_preset_run

    sps, ran = timed_preset_run(PRESET, args.learning_starts, args.burn_in, args.measure, args.threads[0], update,
                                (17, 6, False))
    print(f"fastsac update: {ran}", file=sys.stderr)
    return sps


def run_child(python: str, provider: str, threads: int, args) -> float:
    cmd = [python, str(Path(__file__).resolve()), "--provider", provider, "--threads", str(threads),
           "--learning-starts", str(args.learning_starts), "--burn-in", str(args.burn_in),
           "--measure", str(args.measure)]
    done = run_pinned(cmd, threads)
    for line in done.stderr.splitlines():
        if line.startswith("fastsac update:"):
            print(f"  ({provider}, {threads} thread(s): {line})", flush=True)
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            return json.loads(line)["sps"]
    raise RuntimeError(f"{provider} at {threads} thread(s) failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def e2e(args) -> dict:
    providers = {"sbx": args.sbx_python, "fastsac": sys.executable}
    if args.with_compile:
        providers["fastsac-compile"] = sys.executable
    results = {}
    for threads in args.threads:
        rounds = {name: [] for name in providers}
        for r in range(args.rounds):
            order = list(providers) if r % 2 == 0 else list(reversed(providers))  # interleaved, alternating
            for name in order:
                rounds[name].append(run_child(providers[name], name, threads, args))
                print(f"  threads {threads} round {r + 1}: {name} {rounds[name][-1]:.1f} steps/s", flush=True)
        ratios = [f / s for f, s in zip(rounds["fastsac"], rounds["sbx"])]
        results[threads] = {"rounds": rounds, "ratios": ratios}
        med = {name: statistics.median(v) for name, v in rounds.items()}
        print(f"threads {threads}: " + ", ".join(f"{n} {v:.1f}" for n, v in med.items()) +
              f" steps/s; fastsac / sbx per round: {', '.join(f'{x:.2f}x' for x in ratios)} "
              f"(median {statistics.median(ratios):.2f}x)", flush=True)
    return results


# ------------------------------------------------------------------------------------------------ update part
def direct_native(learner):
    """``learner.update`` with its native update called directly, without the runner's first-call check against the
    eager update (at these widths a ReLU kink crossed by float32 rounding can move one sample's share, 1/256, of a
    gradient and trip it: bench/RESULTS.md), so that the native update is what is timed."""
    native = learner.native_update()

    def update(batch):
        obs = batch[0]
        native(*batch, learner._draw_noise(obs.shape[0]), learner.num_updates % learner.cfg.policy_delay == 0)
        learner.num_updates += 1

    return update


def update_part(args) -> dict:
    import dataclasses

    import torch

    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_update import gemm_gflops, make_batches, time_updates

    from fastsac.agents import LearnerConfig, make_learner
    from fastsac.agents.cost import crossq_update_flops

    results = {}
    for threads in args.threads:
        torch.set_num_threads(threads)
        cfg = dataclasses.replace(LearnerConfig().with_agent("crossq"), critic_hidden_sizes=CRITIC)
        kinds = ["native", "eager"] + (["compile"] if args.with_compile else [])
        learners = {k: make_learner(17, 6, dataclasses.replace(cfg, update=k)) for k in kinds}
        batches = make_batches(6, BATCH, 17, 6)
        calls = {k: learner.update for k, learner in learners.items()}
        calls["native"] = direct_native(learners["native"])
        for call in calls.values():
            time_updates(call, batches, 2 * DELAY)  # burn-in: compile, first-call check
        rounds = {k: [] for k in kinds}
        gemm = []
        for _ in range(args.update_rounds):
            for k, call in calls.items():
                rounds[k].append(time_updates(call, batches, DELAY * args.cycles))
            gemm.append(gemm_gflops(512, torch.device("cpu"), lambda: None, seconds=0.3))
        flops = crossq_update_flops(17, 6, ACTOR, CRITIC, BATCH, policy_delay=DELAY)
        rate = statistics.median(gemm)
        floor_ms = flops / (rate * 1e9) * 1e3
        ms = {k: statistics.median(v) for k, v in rounds.items()}
        results[threads] = {"ms": ms, "rounds": rounds, "gflop": flops / 1e9, "gemm_gflops": rate,
                            "floor_ms": floor_ms}
        print(f"threads {threads}: " + ", ".join(f"{k} {v:.2f} ms" for k, v in ms.items()) +
              f" per update (median of {args.update_rounds} rounds x {DELAY * args.cycles}); floor "
              f"{flops / 1e9:.2f} GFLOP at {rate:.0f} GFLOP/s (512^3 mm) = {floor_ms:.2f} ms: native reaches "
              f"{floor_ms / ms['native']:.0%} of it; native vs eager {ms['eager'] / ms['native']:.2f}x", flush=True)
        del learners
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", nargs="+", default=["e2e", "update"], choices=("e2e", "update"))
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--sbx-python", default="/tmp/sbxvenv/bin/python", help="a Python with sbx-rl, jax and jaxlib")
    p.add_argument("--rounds", type=int, default=2, help="e2e rounds per thread count (interleaved)")
    p.add_argument("--learning-starts", type=int, default=1000)
    p.add_argument("--burn-in", type=int, default=300)
    p.add_argument("--measure", type=int, default=1500)
    p.add_argument("--with-compile", action="store_true", help="also fastsac with update='compile'")
    p.add_argument("--update-rounds", type=int, default=5)
    p.add_argument("--cycles", type=int, default=4, help="policy-delay cycles per timed update round")
    p.add_argument("--json", help="save the results here")
    p.add_argument("--provider", help=argparse.SUPPRESS)  # a child process: one provider, prints {"sps": ...}
    args = p.parse_args(argv)
    if args.provider:
        sps = run_sbx(args) if args.provider == "sbx" else run_fastsac(
            args, "compile" if args.provider == "fastsac-compile" else None)
        print(json.dumps({"sps": sps}))
        return 0
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    print(f"bench_crossq_sbx: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, git {rev.strip()}, "
          f"{os.cpu_count()} CPUs, learning starts {args.learning_starts}, burn-in {args.burn_in}, measure "
          f"{args.measure}", flush=True)
    out = {}
    if "update" in args.parts:
        out["update"] = update_part(args)
    if "e2e" in args.parts:
        out["e2e"] = e2e(args)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
