"""Where a learner's compiled update spends its time: matrix products, Inductor's generated kernels, the rest.

Builds ``make_learner(obs_dim, act_dim, LearnerConfig().with_agent(AGENT))`` with ``update="compile"``, runs the
first call (the compile) and ``--warmup`` calls, then profiles ``--iters`` updates with ``torch.profiler`` and
Inductor's per-kernel records (``torch._inductor.config.cpp.enable_kernel_profile``, set before the compile, so
each generated C++ kernel is one profiler event). It prints the ms per update of:

* products: ``aten::bmm``, ``mm``, ``addmm``, ``baddbmm`` (the BLAS calls the compiled graphs make);
* Inductor's C++ kernels (every ``cpp_fused_*`` event: normalizations, activations, optimizer steps, ...);
* everything else the profiler saw as self time (the compiled wrapper's Python, guards, custom ops);

and the ``--top`` largest events. ``--iters`` should be a multiple of the policy delay, so that each of the
update's graphs (with and without the actor step) runs equally often. The profiled update is a little slower than
an unprofiled one (a record per kernel); the untimed rounds before the profile give the plain ms per update.

    python bench/profile_update.py --agent flashsac --threads 1
    python bench/profile_update.py --agent sac --batch-size 256 --threads 2 --top 30
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_update import make_batches, time_updates  # noqa: E402

PRODUCTS = ("aten::bmm", "aten::mm", "aten::addmm", "aten::baddbmm")
KERNEL_MARK = "cpp_fused"


def self_ms(events) -> dict[str, tuple[float, int]]:
    """Self CPU time (ms) and call count per event name."""
    return {e.key: (e.self_cpu_time_total / 1e3, e.count) for e in events}


def breakdown(per_name: dict[str, tuple[float, int]], updates: int) -> dict[str, float]:
    """ms per update of the products, Inductor's kernels and the rest."""
    products = sum(ms for name, (ms, _) in per_name.items() if name in PRODUCTS)
    kernels = sum(ms for name, (ms, _) in per_name.items() if KERNEL_MARK in name)
    total = sum(ms for ms, _ in per_name.values())
    return {"products": products / updates, "kernels": kernels / updates,
            "other": (total - products - kernels) / updates, "total": total / updates}


def compiled_config(agent: str, iters: int):
    """``agent``'s default LearnerConfig with the compiled update; ValueError for an unknown agent or for ``iters``
    that is not a multiple of its policy delay."""
    from fastsac.agents import LearnerConfig

    cfg = dataclasses.replace(LearnerConfig().with_agent(agent), update="compile")
    if iters % cfg.policy_delay:
        raise ValueError(f"iters must be a multiple of the policy delay ({cfg.policy_delay}), got {iters}")
    return cfg


def profile_update(agent: str, batch_size: int = 512, obs_dim: int = 17, act_dim: int = 6, warmup: int = 6,
                   rounds: int = 3, iters: int = 10) -> dict:
    """Compile and profile ``agent``'s update (see the module docstring) on the current thread count: ``first_s``
    (the first call), ``rounds_ms`` (unprofiled ms per update), ``events`` (name -> (self ms, calls) over ``iters``
    profiled updates) and ``parts`` (:func:`breakdown`). Inductor's kernel records are on only for this compile."""
    import torch._inductor.config as inductor_config
    from torch.profiler import ProfilerActivity, profile

    from fastsac.agents import make_learner

    cfg = compiled_config(agent, iters)
    with inductor_config.patch({"cpp.enable_kernel_profile": True}):
        learner = make_learner(obs_dim, act_dim, cfg)
        batches = make_batches(8, batch_size, obs_dim, act_dim, seed=0)
        start = time.perf_counter()
        learner.update(batches[0])
        first = time.perf_counter() - start
        time_updates(learner.update, batches, warmup)
        timed = [time_updates(learner.update, batches, iters) for _ in range(rounds)]
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            time_updates(learner.update, batches, iters)
    events = self_ms(prof.key_averages())
    return {"first_s": first, "rounds_ms": timed, "events": events, "parts": breakdown(events, iters)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--agent", default="flashsac", help="LearnerConfig agent (default flashsac)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--obs-dim", type=int, default=17)
    p.add_argument("--act-dim", type=int, default=6)
    p.add_argument("--warmup", type=int, default=6, help="untimed calls after the first")
    p.add_argument("--rounds", type=int, default=3, help="unprofiled timed rounds of --iters calls")
    p.add_argument("--iters", type=int, default=10, help="calls per round and in the profile")
    p.add_argument("--top", type=int, default=20, help="largest events to list")
    a = p.parse_args(argv)

    torch.set_num_threads(a.threads)
    try:
        compiled_config(a.agent, a.iters)
    except ValueError as e:
        p.error(str(e))
    out = profile_update(a.agent, a.batch_size, a.obs_dim, a.act_dim, a.warmup, a.rounds, a.iters)
    parts = out["parts"]
    print(f"{a.agent}, batch {a.batch_size}, obs {a.obs_dim}, act {a.act_dim}, {a.threads} thread(s), torch "
          f"{torch.__version__}; first call {out['first_s']:.1f} s")
    print("unprofiled ms/update per round: " + ", ".join(f"{ms:.1f}" for ms in out["rounds_ms"]))
    print(f"profiled, ms/update over {a.iters} updates: products {parts['products']:.1f}, Inductor kernels "
          f"{parts['kernels']:.1f}, other {parts['other']:.1f}, total {parts['total']:.1f} "
          f"(products {parts['products'] / parts['total']:.0%})")
    print(f"{'ms/update':>10} {'calls':>6}  event")
    for name, (ms, calls) in sorted(out["events"].items(), key=lambda kv: -kv[1][0])[: a.top]:
        print(f"{ms / a.iters:10.2f} {calls:6d}  {name[:160]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
