"""Where a run runs: one process (:class:`SingleProcess`) or one rank of a data-parallel job (:class:`DataParallel`,
under torchrun). The session and the entry points talk to a scope, never to ``torch.distributed``:

==========================  ================================  ==================================================
hook                        one process                       data parallel (``fastsac.training.distributed``)
==========================  ================================  ==================================================
``device(config)``          the config's device               ``cuda:LOCAL_RANK`` or cpu
``env_seed``, ``rank_seed`` the seed                          ``seed + rank * num_envs``, ``seed + rank``
``world_size``, ``is_main`` 1, True                           N, rank == 0 (the rank that logs and evaluates)
``agreed(what, fn)``        ``fn()``                          ``fn()`` on every rank; a failure on one fails all
``on_main(what, fn)``       ``fn()``                          rank 0's ``fn()``, its result sent to every rank
``make_replica(learner)``   nothing                           rank 0's state broadcast, gradients averaged
``restored(learner, ex)``   ``ex``                            replicas checked identical; exact if all ranks are
``agreed_stop(sigint)``     the Ctrl-C flag                   set on every rank at the same log row
``reduce_row(m, window)``   as given                          averaged / summed over the ranks (one all-reduce)
``save_checkpoint``         one file (checkpoint.py)          a set, committed by rank 0 (checkpoint_set.py)
``load_checkpoint``         ``latest.pt``, world size 1       this rank's file of the committed set
==========================  ================================  ==================================================

:func:`open_scope` gives the run's scope: a process group only where torchrun started several processes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import torch

from fastsac.training.checkpoint import save_checkpoint
from fastsac.training.checkpoint_format import Checkpoint, read_checkpoint
from fastsac.training.checkpoint_set import check_world_size, load_set, save_set
from fastsac.training.config import TrainConfig
from fastsac.training.distributed import DistContext, Launch, open_context
from fastsac.training.resolve import resolve_device
from fastsac.training.rundir import CHECKPOINT_FILE, run_directory

__all__ = ["DataParallel", "RunScope", "SingleProcess", "open_scope"]

T = TypeVar("T")


class SingleProcess:
    """One process: every hook is the identity, the checkpoint one file."""

    data_parallel = False
    world_size = 1
    is_main = True

    def device(self, config: TrainConfig) -> torch.device:
        return resolve_device(config)

    def env_seed(self, seed: int, num_envs: int) -> int:
        return seed

    def rank_seed(self, seed: int) -> int:
        return seed

    def describe(self) -> dict[str, Any] | None:
        """For summary.json's ``distributed``."""
        return None

    def agreed(self, what: str, fn: Callable[[], T], cleanup: Callable[[T], None] | None = None) -> T:
        return fn()

    def on_main(self, what: str, fn: Callable[[], T]) -> T:
        return fn()

    def broadcast(self, obj: T) -> T:
        return obj

    def make_replica(self, learner) -> None:
        pass

    def restored(self, learner, exact: bool | None) -> bool | None:
        return exact

    def agreed_stop(self, local):
        return local

    def reduce_row(self, metrics: dict[str, float], window: dict[str, Any]) -> tuple[dict[str, float], dict]:
        return metrics, window

    def save_checkpoint(self, path: Path, state: dict[str, Any]) -> Path:
        return save_checkpoint(path, state)

    def load_checkpoint(self, run_dir: str | Path) -> Checkpoint:
        run_dir = run_directory(run_dir)
        ckpt = read_checkpoint(run_dir / CHECKPOINT_FILE, run_dir)
        check_world_size(ckpt.distributed, 1, run_dir)
        return ckpt


class DataParallel:
    """This rank of a torchrun job (``fastsac.training.distributed.DistContext``)."""

    data_parallel = True

    def __init__(self, ctx: DistContext):
        self.ctx = ctx

    @property
    def world_size(self) -> int:
        return self.ctx.world_size

    @property
    def is_main(self) -> bool:
        return self.ctx.is_main

    def device(self, config: TrainConfig) -> torch.device:
        return self.ctx.device

    def env_seed(self, seed: int, num_envs: int) -> int:
        return self.ctx.env_seed(seed, num_envs)

    def rank_seed(self, seed: int) -> int:
        return self.ctx.rank_seed(seed)

    def describe(self) -> dict[str, Any] | None:
        return self.ctx.describe()

    def agreed(self, what: str, fn: Callable[[], T], cleanup: Callable[[T], None] | None = None) -> T:
        return self.ctx.agreed(what, fn, cleanup)

    def on_main(self, what: str, fn: Callable[[], T]) -> T:
        return self.ctx.broadcast_object(self.ctx.agreed(what, fn if self.is_main else lambda: None))

    def broadcast(self, obj: T) -> T:
        return self.ctx.broadcast_object(obj)

    def make_replica(self, learner) -> None:
        self.ctx.attach(learner)  # before a restore: attach takes a fresh learner

    def restored(self, learner, exact: bool | None) -> bool | None:
        """After every rank restored its file: the replicas must be identical; the resume is exact if every rank's
        envs replayed exactly."""
        self.ctx.check_replicas(learner, "restoring the checkpoint set")
        every = self.ctx.all_gather_object(exact)
        return None if None in every else all(every)

    def agreed_stop(self, local):
        return self.ctx.agreed_stop(local)

    def reduce_row(self, metrics: dict[str, float], window: dict[str, Any]) -> tuple[dict[str, float], dict]:
        return self.ctx.reduce_row(metrics, window)

    def save_checkpoint(self, path: Path, state: dict[str, Any]) -> Path:
        return save_set(self.ctx, path, state)

    def load_checkpoint(self, run_dir: str | Path) -> Checkpoint:
        return load_set(self.ctx, run_dir)


RunScope = SingleProcess | DataParallel


@contextlib.contextmanager
def open_scope(config: TrainConfig, launch: Launch | None = None) -> Iterator[RunScope]:
    """The run's scope, closed at the end (see ``fastsac.training.distributed.open_context``)."""
    with open_context(config, launch) as ctx:
        yield SingleProcess() if ctx is None else DataParallel(ctx)
