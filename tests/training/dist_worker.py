"""Started by tests/training/test_distributed.py under torchrun (``python -m torch.distributed.run``): each rank
makes a tiny SAC learner replica, runs eager updates on batches of its own and saves what the test checks.

    python -m torch.distributed.run --nproc-per-node N tests/training/dist_worker.py OUT_DIR UPDATES [compile] [cuda]

Per rank, ``OUT_DIR/rank<r>.pt`` holds the learner state right after ``attach`` (rank 0's, broadcast), every
batch and the noise the update drew (a twin of the learner's generator replays its draw), the replica digest
after every update, and the final state (all on the CPU). ``cuda``: NCCL, one GPU per rank, the update captured
in a CUDA graph (scripts/gpu_checks.sh); the replicas are also compared after every update here, so the exit
status says whether they stayed identical.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from fastsac.agents import LearnerConfig, SACLearner
from fastsac.training.config import TrainConfig
from fastsac.training.distributed import open_context, replica_digest

OBS, ACT, BATCH = 3, 2, 8


def learner_config(seed: int, compile_: bool = False) -> LearnerConfig:
    # compile: torch.compile (the native update has no place for the gradient all-reduce, and refuses a reducer)
    return LearnerConfig(hidden_sizes=(16, 16), update="compile" if compile_ else "eager", seed=seed)


def random_batch(g: torch.Generator, n: int = BATCH) -> tuple[torch.Tensor, ...]:  # on the CPU
    return (torch.randn(n, OBS, generator=g), torch.rand(n, ACT, generator=g) * 2 - 1, torch.randn(n, generator=g),
            torch.randn(n, OBS, generator=g), (torch.rand(n, generator=g) < 0.2).float())  # fmt: skip


def _cpu(tree):
    if isinstance(tree, torch.Tensor):
        return tree.cpu()
    if isinstance(tree, dict):
        return {k: _cpu(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_cpu(v) for v in tree)
    return tree


def main(out: Path, updates: int, compile_: bool, device: str) -> None:
    torch.set_num_threads(1)
    with open_context(TrainConfig(device=device, dist_timeout=60.0)) as ctx:
        learner = SACLearner(OBS, ACT, learner_config(ctx.rank_seed(0), compile_), ctx.device)  # own init...
        ctx.attach(learner)  # ...replaced by rank 0's
        initial = learner.state_dict()
        g = torch.Generator().manual_seed(1000 + ctx.rank)
        batches, noises, digests = [], [], []
        for k in range(updates):
            batch = random_batch(g)
            twin = torch.Generator(device=ctx.device)
            twin.set_state(learner.generator.get_state())
            noises.append(torch.empty(2, BATCH, ACT, device=ctx.device).normal_(generator=twin))
            learner.update([t.to(ctx.device) for t in batch])
            batches.append(batch)
            digests.append(replica_digest(learner))
            if device == "cuda":
                ctx.check_replicas(learner, f"update {k + 1}")
        torch.save(_cpu({"initial": initial, "batches": batches, "noises": noises, "digests": digests,
                         "final": learner.state_dict(), "world_size": ctx.world_size,
                         "update_kind": learner.runner.kind, "fallbacks": [f.kind for f in learner.fallbacks]}),
                   out / f"rank{ctx.rank}.pt")


if __name__ == "__main__":
    flags = set(sys.argv[3:])
    main(Path(sys.argv[1]), int(sys.argv[2]), "compile" in flags, "cuda" if "cuda" in flags else "cpu")
