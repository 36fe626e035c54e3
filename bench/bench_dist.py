"""Data-parallel cost: the all-reduce per update measured on this CPU (gloo, 2 ranks), and a model for GPUs and nodes.

Measured (the script starts ``torch.distributed.run --standalone`` itself; every figure is the median over
``--repeats`` rounds of the slowest rank's time, all ranks starting each round together):

1. the gloo all-reduce of a float32 buffer against its size, fitted to ``t = a + bytes / bw``; and, run eagerly
   on the critics' buffer, the in-place c10d all-reduce against the functional collective;
2. one SAC update (HalfCheetah sizes: obs 17, act 6, 2x256, batch 256 per rank; eager) without and with the
   gradient averaging (``GradientAverager``: one flat all-reduce for the critics, one for actor + log_alpha): the
   difference is what averaging costs per update; the same update with DDP instead (``DistributedDataParallel``
   around actor and critics, ``loss.backward()``, log_alpha's gradient reduced by hand), the design it was chosen
   against.

The model (``--model-only`` prints it alone) predicts, for 1-8 GPUs on NVLink and 2-16 nodes of 8 GPUs with 100
or 400 Gb/s between nodes: bytes reduced per update, all-reduce and update time, and the speedup of env steps/s
and of updates/s. Its formula and inputs are in docs/distributed.md (and printed).

    python bench/bench_dist.py --threads 1 [--json dist_cpu.json]
    python bench/bench_dist.py --model-only
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
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastsac import ops  # noqa: E402
from fastsac.agents import LearnerConfig, SACLearner  # noqa: E402

OBS, ACT, HIDDEN, BATCH = 17, 6, (256, 256), 256
SIZES = [2**10, 2**14, 2**16, 2**18, 2**20, 2**22]  # float32 elements


def make_learner(seed: int = 0) -> SACLearner:
    return SACLearner(OBS, ACT, LearnerConfig(hidden_sizes=HIDDEN, update="eager", seed=seed), "cpu")


def reduced_bytes(learner) -> dict[str, int]:
    """Bytes each all-reduce of one update carries: critics; actor with log_alpha (float32)."""
    critic = sum(p.numel() for p in learner.critic_params)
    actor = sum(p.numel() for p in learner.actor_params) + (1 if learner.alpha_optim is not None else 0)
    return {"critic": 4 * critic, "actor_alpha": 4 * actor}


# ------------------------------------------------------------------------------------------------ the model
@dataclass(frozen=True)
class Link:
    name: str
    latency_s: float  #: per ring step (launch + hop)
    bandwidth: float  #: bytes/s per direction that a ring step reaches


NVLINK = Link("NVLink (H100 SXM)", 2e-6, 350e9)
NET_100G = Link("100 Gb/s", 5e-6, 12.5e9 * 0.9)
NET_400G = Link("400 Gb/s", 5e-6, 50e9 * 0.9)
GPUS_PER_NODE = 8


def ring_allreduce_s(n: int, nbytes: float, link: Link) -> float:
    """Ring all-reduce (reduce-scatter + all-gather): 2(n-1) steps, each one latency and nbytes/n on the link."""
    return 0.0 if n <= 1 else 2 * (n - 1) * (link.latency_s + nbytes / n / link.bandwidth)


def allreduce_s(gpus: int, nbytes: float, net: Link | None) -> float:
    """Within a node: a ring over NVLink. Across M nodes (hierarchical, as NCCL does): the node's ring, plus a ring
    over the M nodes of the whole buffer through the node's one link."""
    if gpus <= GPUS_PER_NODE:
        return ring_allreduce_s(gpus, nbytes, NVLINK)
    nodes = gpus // GPUS_PER_NODE
    return ring_allreduce_s(GPUS_PER_NODE, nbytes, NVLINK) + ring_allreduce_s(nodes, nbytes, net)


@dataclass(frozen=True)
class Scenario:
    t_update_s: float = 0.5e-3  #: one compiled, CUDA-graph-replayed update on one GPU (assumed: bench_update on CUDA)
    t_env_s: float = 1.0e-3  #: one step of the rank's num_envs envs (assumed: EnvPool MuJoCo, 16 envs on its CPU cores)
    updates_per_iteration: float = 4.0  #: utd * num_envs (e.g. 16 envs, utd 0.25)


def predict(gpus: int, nbytes: dict[str, int], sc: Scenario, net: Link | None) -> dict[str, float]:
    """Per rank and iteration: T(N) = t_env + U * (t_update + sum over models of allreduce(N, bytes)).
    env steps/s scale as N * T(1) / T(N); updates/s (each on N times the batch) as T(1) / T(N)."""
    t_ar = sum(allreduce_s(gpus, b, net) for b in nbytes.values())
    t1 = sc.t_env_s + sc.updates_per_iteration * sc.t_update_s
    tn = sc.t_env_s + sc.updates_per_iteration * (sc.t_update_s + t_ar)
    sent = sum(2 * (gpus - 1) / gpus * b for b in nbytes.values()) if gpus > 1 else 0.0
    return {"gpus": gpus, "allreduce_us": t_ar * 1e6, "update_ms": (sc.t_update_s + t_ar) * 1e3,
            "sent_kb": sent / 1e3, "env_speedup": gpus * t1 / tn, "update_speedup": t1 / tn}  # fmt: skip


def model_tables(nbytes: dict[str, int], sc: Scenario) -> str:
    total = sum(nbytes.values())
    lines = [f"bytes reduced per update: {total:,} ({', '.join(f'{k} {v:,}' for k, v in nbytes.items())})",
             f"scenario: t_update {sc.t_update_s * 1e3:g} ms, t_env {sc.t_env_s * 1e3:g} ms per iteration, "
             f"{sc.updates_per_iteration:g} updates per iteration", "",
             "| GPUs | link between nodes | sent per rank per update | all-reduce per update | update | "
             "env steps/s vs 1 GPU | updates/s vs 1 GPU |", "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    rows = [(g, None) for g in (1, 2, 4, 8)]
    rows += [(GPUS_PER_NODE * m, net) for net in (NET_100G, NET_400G) for m in (2, 4, 8, 16)]
    for gpus, net in rows:
        p = predict(gpus, nbytes, sc, net)
        where = "NVLink only" if net is None else f"{gpus // GPUS_PER_NODE} nodes, {net.name}"
        lines.append(f"| {gpus} | {where} | {p['sent_kb']:.0f} kB | {p['allreduce_us']:.0f} us | "
                     f"{p['update_ms']:.3f} ms | {p['env_speedup']:.1f}x | {p['update_speedup']:.2f}x |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ measured (ranks)
def _timed(fn, iters: int) -> float:
    """Seconds per call of the slowest rank, all ranks starting together."""
    import torch.distributed as dist

    dist.barrier()
    t = time.perf_counter()
    for _ in range(iters):
        fn()
    elapsed = torch.tensor([(time.perf_counter() - t) / iters], dtype=torch.float64)
    dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)
    return float(elapsed)


def _ddp_update(learner, ddp_actor, ddp_critic, batch, noise, world: int) -> None:
    """The SAC update with DDP doing the averaging: backward() fills .grad (DDP all-reduces in buckets meanwhile),
    then the same ForeachAdam steps. log_alpha is not in a DDP module: its gradient is reduced by hand."""
    import torch.distributed as dist

    obs, action, reward, next_obs, terminated = batch
    q_target = learner.critic_target(reward, terminated, next_obs, noise[0])
    for p in learner.critic_params + learner.actor_params:
        p.grad = None
    critic_loss = (ddp_critic(obs, action) - q_target).square().mean(dim=1).sum()
    critic_loss.backward()
    learner.critic_optim.step([p.grad for p in learner.critic_params])
    mean, log_std = ddp_actor(obs)
    a, log_prob, alpha_loss = ops.squashed_gaussian_with_alpha_loss(
        mean, log_std, noise[1], learner.entropy.log_alpha, learner.entropy.target_tensor,
        log_std_bounds=learner.log_std_bounds)
    actor_loss = (learner.alpha * log_prob - learner.critic(obs, a).amin(dim=0)).mean()
    (g_alpha,) = torch.autograd.grad(alpha_loss, [learner.entropy.log_alpha])
    actor_loss.backward()
    dist.all_reduce(g_alpha)
    learner.actor_optim.step([p.grad for p in learner.actor_params])
    learner.alpha_optim.step([g_alpha / world])
    learner._update_target()


def worker(out: Path, repeats: int, iters: int) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from fastsac.training.distributed import GradientAverager

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    averager = GradientAverager(dist.group.WORLD, world)
    result: dict = {"world_size": world, "threads": torch.get_num_threads(), "allreduce": {}}
    for n in SIZES:
        grads = [torch.randn(n)]
        averager(grads)
        result["allreduce"][n * 4] = statistics.median(_timed(lambda: averager(grads), iters) for _ in range(repeats))
    # Eager: the in-place c10d all-reduce (what GradientAverager runs outside a compiled graph) against the
    # functional collective (what it traces into one), on a buffer the size of the critics' gradients.
    from torch.distributed import _functional_collectives as funcol

    buf = torch.randn(reduced_bytes(make_learner())["critic"] // 4)
    eager = {"c10d in place": lambda: dist.all_reduce(buf),
             "functional": lambda: funcol.all_reduce(buf, "sum", dist.group.WORLD) / world}  # fmt: skip
    for fn in eager.values():
        fn()
    result["eager_allreduce"] = {k: [] for k in eager}
    for _ in range(repeats):
        for name, fn in eager.items():
            result["eager_allreduce"][name].append(_timed(fn, iters))
    result["eager_allreduce"] = {k: statistics.median(v) for k, v in result["eager_allreduce"].items()}
    learner = make_learner(rank)
    g = torch.Generator().manual_seed(rank)
    batch = (torch.randn(BATCH, OBS, generator=g), torch.rand(BATCH, ACT, generator=g) * 2 - 1,
             torch.randn(BATCH, generator=g), torch.randn(BATCH, OBS, generator=g), torch.zeros(BATCH))  # fmt: skip
    noise = torch.randn(2, BATCH, ACT, generator=g)
    ddp_actor = DDP(learner.actor, gradient_as_bucket_view=True)
    ddp_critic = DDP(learner.critic, gradient_as_bucket_view=True)

    def plain():
        learner.grad_reducer = None
        learner.update(batch)

    def averaged():
        learner.grad_reducer = averager
        learner.update(batch)

    variants = {"no averaging": plain, "flat all-reduce per model": averaged,
                "DDP": lambda: _ddp_update(learner, ddp_actor, ddp_critic, batch, noise, world)}  # fmt: skip
    for fn in variants.values():
        fn()
    rounds: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeats):  # interleaved: load changes hit every variant alike
        for name, fn in variants.items():
            rounds[name].append(_timed(fn, iters))
    result["update"] = {k: statistics.median(v) for k, v in rounds.items()}
    result["bytes"] = reduced_bytes(learner)
    if rank == 0:
        out.write_text(json.dumps(result))
    dist.destroy_process_group()


def fit(points: dict[int, float]) -> tuple[float, float]:
    """Least squares ``t = a + bytes / bw``: (a seconds, bw bytes/s)."""
    xs, ys = list(points), list(points.values())
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return my - slope * mx, 1.0 / slope


def report(res: dict) -> str:
    a, bw = fit({int(k): v for k, v in res["allreduce"].items()})
    up = res["update"]
    base = up["no averaging"]
    lines = [f"gloo all-reduce on this CPU, {res['world_size']} ranks, {res['threads']} thread(s) each:", "",
             "| bytes | time |", "| --- | --- |"]  # fmt: skip
    lines += [f"| {int(k):,} | {v * 1e6:.0f} us |" for k, v in res["allreduce"].items()]
    lines += ["", f"fit t = a + bytes/bw: a = {a * 1e6:.0f} us, bw = {bw / 1e9:.2f} GB/s", "",
              "eager all-reduce of the critics' buffer: " + ", ".join(
                  f"{k} {v * 1e6:.0f} us" for k, v in res["eager_allreduce"].items()), "",
              f"one SAC update (obs {OBS}, act {ACT}, 2x256, batch {BATCH} per rank, eager), bytes reduced "
              f"{sum(res['bytes'].values()):,}:", "", "| variant | ms/update | cost of averaging |",
              "| --- | --- | --- |"]
    lines += [f"| {k} | {v * 1e3:.2f} | {(v - base) * 1e3:+.2f} ms |" for k, v in up.items()]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--model-only", action="store_true")
    p.add_argument("--json", type=Path)
    p.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker is not None:
        return worker(args.worker, args.repeats, args.iters)
    nbytes = reduced_bytes(make_learner())
    print(model_tables(nbytes, Scenario()))
    if args.model_only:
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                        str(args.nproc), __file__, "--worker", str(out), "--threads", str(args.threads), "--repeats",
                        str(args.repeats), "--iters", str(args.iters)], check=True, env=env)  # fmt: skip
        res = json.loads(out.read_text())
    print()
    print(report(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
