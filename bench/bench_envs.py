"""Environment throughput: EnvPool vs gymnasium through fastsac.data.envs (and the raw libraries underneath).

Env steps per second (iterations x num_envs) with uniform random actions in [-1, 1], after a burn-in; repeats
are interleaved across configurations and the median is printed, then the EnvPool/gymnasium ratio. The "raw"
column steps the library directly with numpy actions (no torch conversion, no wrapper). The gap between the two
is not all Python work (the wrapper's own CPU time is ~50-60 us a step on the 2-core CI machine): EnvPool's worker
threads stop spinning once the host does anything between steps, so a raw tight loop flatters EnvPool, and a
training loop (an update between steps) sees the wrapped figure or less.

``--gaps-ms G ...`` measures instead what a training loop sees: one env step through ``fastsac.data.envs`` (and one
``mujoco.mj_step`` of its model, where the simulator is MuJoCo's) after the host has been busy for G ms between
steps (each timed step right after an untimed one, then the gap). Busy with a Python loop that reads the clock and
touches a few KB, not with an update: so what a longer gap costs is not this process evicting its own caches, it is
what the machine does to a core's state meanwhile (on a shared VM: other tenants). Gap 0 is the tight loop.

    python bench/bench_envs.py                       # HalfCheetah-v5, 1 and 16 envs
    python bench/bench_envs.py --env Hopper-v5 --num-envs 1 4 64 --seconds 2 --repeats 5
    python bench/bench_envs.py --num-envs 1 --gaps-ms 0 0.5 2 8 20
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


def _busy(seconds: float) -> None:
    """Keep this core busy for ``seconds`` without touching more than a few KB of memory."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        pass


def run_after_gaps(env_id: str, backend: str, num_envs: int, gaps_ms: list[float], steps: int) -> dict:
    """Median microseconds of one wrapped env step (and of one ``mj_step`` of a gymnasium copy of the env's model,
    when it is a MuJoCo env) right after ``gap`` ms of busy waiting that follow one untimed step, per gap; the gaps
    interleaved step by step."""
    env = envs.make(env_id, num_envs=num_envs, seed=0, backend=backend)
    g = torch.Generator().manual_seed(0)
    env.reset()
    actions = [torch.rand((num_envs, env.action_dim), generator=g) * 2 - 1 for _ in range(16)]
    sim = None
    try:
        import gymnasium
        import mujoco

        model_env = gymnasium.make(env_id).unwrapped
        if hasattr(model_env, "model") and hasattr(model_env, "data"):
            model_env.reset(seed=0)
            sim = lambda: mujoco.mj_step(model_env.model, model_env.data)  # noqa: E731
    except ImportError:
        pass
    def timed(key, gap, fn):  # fn once untimed (its state as after a step), the gap, fn once timed
        fn()
        _busy(gap / 1e3)
        t = time.perf_counter()
        fn()
        times.setdefault((key, gap), []).append(time.perf_counter() - t)

    times: dict[tuple[str, float], list[float]] = {}
    for i in range(steps):
        for gap in gaps_ms:
            timed("env step", gap, lambda: env.step(actions[i % len(actions)]))
            if sim is not None:
                timed("mj_step", gap, sim)
    env.close()
    return {k: statistics.median(v) * 1e6 for k, v in times.items()}


def main_gaps(args, backends) -> None:
    print(f"{args.env}: one step right after the host was busy for a gap (median us of {args.steps} steps per gap, "
          f"gaps interleaved; torch threads={args.threads})")
    for n in args.num_envs:
        for b in backends:
            med = run_after_gaps(args.env, b, n, args.gaps_ms, args.steps)
            for what in ("env step", "mj_step"):
                if (what, args.gaps_ms[0]) not in med:
                    continue
                label = f"{n} env(s) {b} {what}" if what == "env step" else f"  mujoco.mj_step ({b} run)"
                row = ", ".join(f"{gap:g} ms: {med[(what, gap)]:.1f}" for gap in args.gaps_ms)
                print(f"{label:>36}  {row}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="HalfCheetah-v5")
    p.add_argument("--num-envs", type=int, nargs="+", default=[1, 16])
    p.add_argument("--seconds", type=float, default=1.5, help="timed seconds per measurement")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats; the median is reported")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--gaps-ms", type=float, nargs="+", default=None,
                   help="instead: one step after each of these busy gaps (ms), as a training loop steps")
    p.add_argument("--steps", type=int, default=200, help="steps per gap with --gaps-ms")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=".*precision lowered by casting")

    backends = ["envpool", "gymnasium"] if envs.envpool_available() else ["gymnasium"]
    if args.gaps_ms:
        main_gaps(args, backends)
        return
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
