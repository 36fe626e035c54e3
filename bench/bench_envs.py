"""Environment throughput: EnvPool vs gymnasium through fastsac.data.envs (and the raw libraries underneath).

Env steps per second (iterations x num_envs) with uniform random actions in [-1, 1], after a burn-in; repeats
are interleaved across configurations and the median is printed, then the EnvPool/gymnasium ratio. The "raw"
column steps the library directly with numpy actions (no torch conversion, no wrapper). The gap between the two
is not all Python work (the wrapper's own CPU time is ~50-60 us a step on the 2-core CI machine): EnvPool's worker
threads stop spinning once the host does anything between steps, so a raw tight loop flatters EnvPool, and a
training loop (an update between steps) sees the wrapped figure or less.

    python bench/bench_envs.py                       # HalfCheetah-v5, 1 and 16 envs
    python bench/bench_envs.py --env Hopper-v5 --num-envs 1 4 64 --seconds 2 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import torch

from fastsac.data import envs


def run_wrapped(env_id: str, backend: str, num_envs: int, seconds: float) -> float:
    env = envs.make(env_id, num_envs=num_envs, seed=0, backend=backend)
    g = torch.Generator().manual_seed(0)
    env.reset()
    shape = (num_envs, env.action_dim)
    for _ in range(20):  # burn-in
        env.step(torch.rand(shape, generator=g) * 2 - 1)
    steps, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        for _ in range(10):
            env.step(torch.rand(shape, generator=g) * 2 - 1)
        steps += 10
    env.close()
    return steps * num_envs / elapsed


def run_raw(env_id: str, backend: str, num_envs: int, seconds: float) -> float:
    if backend == "envpool":
        import envpool

        env = envpool.make(env_id, env_type="gymnasium", num_envs=num_envs, seed=0)
    else:
        import gymnasium
        from gymnasium.vector import AutoresetMode

        env = gymnasium.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync",
                                 vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP})  # fmt: skip
    rng = np.random.default_rng(0)
    low, high = env.action_space.low, env.action_space.high
    shape = (num_envs, *env.single_action_space.shape) if backend == "gymnasium" else (num_envs, *low.shape)
    dtype = env.action_space.dtype
    env.reset(seed=0) if backend == "gymnasium" else env.reset()
    for _ in range(20):
        env.step(rng.uniform(low, high, shape).astype(dtype))
    steps, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        for _ in range(10):
            env.step(rng.uniform(low, high, shape).astype(dtype))
        steps += 10
    env.close()
    return steps * num_envs / elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="HalfCheetah-v5")
    p.add_argument("--num-envs", type=int, nargs="+", default=[1, 16])
    p.add_argument("--seconds", type=float, default=1.5, help="timed seconds per measurement")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats; the median is reported")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=".*precision lowered by casting")

    backends = ["envpool", "gymnasium"] if envs.envpool_available() else ["gymnasium"]
    results: dict[tuple, list[float]] = {}
    for _ in range(args.repeats):
        for n in args.num_envs:
            for b in backends:
                for kind, fn in (("wrapped", run_wrapped), ("raw", run_raw)):
                    results.setdefault((n, b, kind), []).append(fn(args.env, b, n, args.seconds))

    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"{args.env}, random actions, env steps/s (median of {args.repeats}, {args.seconds}s each, "
          f"torch threads={args.threads})")  # fmt: skip
    print(f"{'num_envs':>8} {'backend':>10} {'fastsac.data':>13} {'raw':>10} {'wrapper cost':>13}")
    for n in args.num_envs:
        for b in backends:
            w, r = med[(n, b, "wrapped")], med[(n, b, "raw")]
            print(f"{n:>8} {b:>10} {w:>13,.0f} {r:>10,.0f} {100 * (1 - w / r):>12.0f}%")
        if len(backends) == 2:
            ratio = med[(n, "envpool", "wrapped")] / med[(n, "gymnasium", "wrapped")]
            print(f"{n:>8} {'ratio':>10} {ratio:>12.2f}x  (envpool / gymnasium, through fastsac.data.envs)")


if __name__ == "__main__":
    main()
