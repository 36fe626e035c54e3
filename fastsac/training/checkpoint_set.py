"""Checkpoint sets of data-parallel runs: every rank's own state, committed as a whole.

::

    checkpoints/latest.pt                  rank 0's checkpoint, exactly as a single-process run writes it, plus the
                                           manifest ``distributed = {world_size, step, set, rank}``: the commit
    checkpoints/set-<step>/rank<r>.pt      rank r's checkpoint (r = 1 .. N-1), the same layout and manifest

Each file is that rank's whole session state (``Session.checkpoint``; its parts: ``checkpoint_format``): its env
action log (exact replay), its replay buffer when saved, its RNG streams, its share of the episode window, and its
learner (the same on every rank but for the noise generator: a copy per rank costs a few MB and lets every rank
restore with the single-process code).

Writing (:func:`save_set`): ranks >= 1 write their files atomically; every rank reports success (an all-gather, so
this is also the barrier); only then rank 0 writes ``latest.pt`` atomically, and removes the sets older than it.
A crash at any moment leaves ``latest.pt`` naming a complete set; a set written without its commit is ignored,
and rewritten when the run reaches that step again. ``fastsac eval RUN`` reads ``latest.pt`` as for any run.

Reading (:func:`load_set`): rank 0 reads ``latest.pt`` and checks the world size (:func:`check_world_size`: a
resume with another number of processes fails with a message saying how to resume); the others learn the set from
rank 0, read their own file and check that it belongs to the set. Each file is checked as a single process's is
(``checkpoint_format.read_checkpoint``). A failure on any rank raises on every rank.
The run directory must be one directory that every node sees (a shared filesystem) when the run spans nodes.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from fastsac.training.checkpoint import CheckpointError, save_checkpoint
from fastsac.training.checkpoint_format import Checkpoint, read_checkpoint
from fastsac.training.distributed import DistContext
from fastsac.training.rundir import CHECKPOINT_FILE, run_directory

__all__ = ["MANIFEST", "check_world_size", "load_set", "save_set", "world_size_of"]

MANIFEST = "distributed"


def _set_dir(checkpoint: Path, step: int) -> Path:
    return checkpoint.parent / f"set-{step:012d}"


def _rank_file(set_dir: Path, rank: int) -> Path:
    return set_dir / f"rank{rank}.pt"


def world_size_of(manifest: dict[str, Any] | None) -> int:
    """The number of processes a checkpoint's run was trained with (1 without a manifest)."""
    return int((manifest or {}).get("world_size", 1))


def check_world_size(manifest: dict[str, Any] | None, world_size: int, run_dir: Path) -> None:
    """Raise CheckpointError unless the run (whose checkpoint has ``manifest``) is resumed by as many processes as
    trained it."""
    saved = world_size_of(manifest)
    if saved == world_size:
        return
    how = (f"torchrun with {saved} processes in all (e.g. torchrun --nproc-per-node {saved} -m fastsac train "
           f"--resume {run_dir})" if saved > 1 else f"one process: fastsac train --resume {run_dir}")  # fmt: skip
    raise CheckpointError(
        f"the run in {run_dir} was trained by {saved} process(es) and this resume has {world_size}; every rank's "
        f"envs, replay buffer and random streams are part of its checkpoint set, so it resumes only with {how}"
    )


def save_set(ctx: DistContext, path: Path, state: dict[str, Any]) -> Path:
    """Write this rank's part of the set for the state's step; rank 0 commits it as ``path`` (latest.pt)."""
    step = int(state["counters"]["step"])
    set_dir = _set_dir(path, step)
    manifest = {"world_size": ctx.world_size, "step": step, "set": set_dir.name, "rank": ctx.rank}
    own = path if ctx.is_main else _rank_file(set_dir, ctx.rank)
    if not ctx.is_main:
        ctx.agreed("writing its checkpoint", lambda: save_checkpoint(own, {**state, MANIFEST: manifest}))
        return own
    ctx.agreed("writing its checkpoint", lambda: None)  # every rank file of the set is complete
    save_checkpoint(path, {**state, MANIFEST: manifest})  # the commit
    for old in path.parent.glob("set-*"):
        if old.name < set_dir.name:  # fixed-width step numbers sort as numbers
            shutil.rmtree(old, ignore_errors=True)
    return own


def load_set(ctx: DistContext, run_dir: str | Path) -> Checkpoint:
    """This rank's checkpoint of the committed set of a data-parallel run in ``run_dir``."""
    run_dir = Path(run_dir)

    def read_commit() -> Checkpoint:
        ckpt = read_checkpoint(run_directory(run_dir) / CHECKPOINT_FILE, run_dir)
        check_world_size(ckpt.distributed, ctx.world_size, run_dir)
        return ckpt

    main = ctx.agreed("reading the checkpoint", read_commit if ctx.is_main else lambda: None)
    manifest = ctx.broadcast_object(main.distributed if ctx.is_main else None)

    def read_own() -> Checkpoint:
        if ctx.is_main:
            return main
        path = _rank_file(run_dir / CHECKPOINT_FILE.parent / manifest["set"], ctx.rank)
        ckpt = read_checkpoint(path, run_dir)
        own = ckpt.distributed or {}
        expected = {**manifest, "rank": ctx.rank}
        if own != expected:
            raise CheckpointError(f"{path} does not belong to the committed set {expected} (it says {own})")
        return ckpt

    return ctx.agreed("reading its checkpoint", read_own)
