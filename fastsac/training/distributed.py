"""Data-parallel training under torchrun: one learner replica per rank, gradients averaged, replicas identical.

::

    torchrun --nproc-per-node N -m fastsac train ...      # the same flags as a single-process run

:func:`open_context` reads what the launcher put in the environment (:class:`Launch`: ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``TORCHELASTIC_RESTART_COUNT``, ``TORCHELASTIC_MAX_RESTARTS``). With one
process it returns None: no process group, no copies, nothing changes. Otherwise it returns a
:class:`DistContext`: the process group (NCCL on CUDA with device ``cuda:LOCAL_RANK``, gloo on CPU) with a bounded
collective timeout (``TrainConfig.dist_timeout``), a gloo group for host-side messages, and

- per-rank seeds: rank r's envs get ``seed + r * num_envs`` (so the ranks' envs are exactly the envs of one run
  with ``N * num_envs`` envs), its global RNGs (buffer sampling, random actions) and its learner's noise generator
  ``seed + r``; rank 0 therefore draws what a single-process run with the same seed draws;
- :meth:`DistContext.attach`: rank 0's learner state (networks, targets, log_alpha, optimizer moments) broadcast to
  every rank, and the learner's ``grad_reducer`` hook set to a :class:`GradientAverager`: after each backward pass
  ONE all-reduce of one flat buffer per model (the critics'; the actor's together with log_alpha's), divided by N.
  Every rank then applies the same bits to the same parameters, so the replicas stay identical;
- :meth:`DistContext.reduce_row`: what rank 0 logs is over all ranks (learner metrics averaged, episodes summed),
  and a Ctrl-C on any rank is agreed on at that same all-reduce, so every rank stops at the same step;
- :meth:`DistContext.agreed`: a step that can fail on one rank (building the envs, loading a checkpoint) raises on
  every rank, instead of leaving the others waiting in a collective;
- a heartbeat in the rendezvous store: when a collective fails (a dead peer closes gloo's connections at once; a
  hung one runs into the timeout) the error names the ranks whose heartbeat stopped.

The all-reduce is a functional collective (``torch.distributed._functional_collectives``), which dynamo traces:
the compiled update stays ONE graph per rank with the collective inside (checked with gloo on CPU under inductor),
and on CUDA that graph is captured in a CUDA graph, NCCL kernels included. Semantics, checkpoints, faults and the
scaling model: docs/distributed.md.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from fastsac.training.config import ConfigError, TrainConfig

__all__ = ["DistContext", "DistributedError", "GradientAverager", "Launch", "learner_tensors", "open_context", "rank_device",
           "replica_digest"]

T = TypeVar("T")

HEARTBEAT_SECONDS = 1.0  # how often each rank bumps its counter in the store
SILENCE_SECONDS = 3.0  # a rank whose counter did not move for this long after a failure is named as dead or hung


class DistributedError(RuntimeError):
    """A data-parallel run cannot go on: a peer rank died, hung, or failed; the message names the rank."""


def _env_int(environ, name: str, default: int | None) -> int | None:
    text = environ.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"environment variable {name}={text!r} is not an integer (set by torchrun)") from None


@dataclass(frozen=True)
class Launch:
    """What the launcher says about this process (torchrun's environment variables; defaults: one process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    restart_count: int | None = None  #: None when not started by torchrun (torchelastic)
    max_restarts: int | None = None

    @classmethod
    def from_env(cls, environ=None) -> Launch:
        env = os.environ if environ is None else environ
        world = _env_int(env, "WORLD_SIZE", 1)
        launch = cls(
            rank=_env_int(env, "RANK", 0),
            world_size=world,
            local_rank=_env_int(env, "LOCAL_RANK", 0),
            local_world_size=_env_int(env, "LOCAL_WORLD_SIZE", world),
            restart_count=_env_int(env, "TORCHELASTIC_RESTART_COUNT", None),
            max_restarts=_env_int(env, "TORCHELASTIC_MAX_RESTARTS", None),
        )
        if not (world >= 1 and 0 <= launch.rank < world and 0 <= launch.local_rank < launch.local_world_size):
            raise ConfigError(f"inconsistent launcher environment: RANK={launch.rank}, WORLD_SIZE={world}, "
                              f"LOCAL_RANK={launch.local_rank}, LOCAL_WORLD_SIZE={launch.local_world_size}")
        return launch

    @property
    def elastic(self) -> bool:
        """Started by torchrun's elastic agent (which may restart the job)."""
        return self.restart_count is not None


def rank_device(requested: str, launch: Launch) -> torch.device:
    """This rank's device: ``cuda``/``auto`` become ``cuda:LOCAL_RANK`` (``cuda:0`` where each process sees one
    GPU); an explicit ``cuda:k`` is kept when the node runs one rank; ``cpu`` stays."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(requested)
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ConfigError(f"data-parallel runs use cpu (gloo) or cuda (nccl) devices, got --device {requested}")
    if device.index is not None and launch.local_world_size > 1:
        raise ConfigError(f"--device {requested} would put all {launch.local_world_size} ranks of this node on one "
                          "GPU; pass --device cuda (each rank then uses cuda:LOCAL_RANK)")
    if not torch.cuda.is_available():
        raise ConfigError(f"device {requested!r} was requested but CUDA is not available here; use --device cpu")
    if device.index is not None:
        return device
    visible = torch.cuda.device_count()
    if visible >= launch.local_world_size:
        return torch.device("cuda", launch.local_rank)
    if visible == 1:
        return torch.device("cuda", 0)
    raise ConfigError(
        f"{launch.local_world_size} ranks on this node but {visible} visible GPUs: every rank needs its own GPU "
        f"(NCCL cannot share one); start at most --nproc-per-node {visible}"
    )


class GradientAverager:
    """``grads -> grads averaged over the ranks``: one all-reduce of one flat buffer, then views of it.

    Traced by ``torch.compile(fullgraph=True)``, the all-reduce is the functional collective, which becomes a node
    of the graph; run eagerly, it is the in-place c10d all-reduce of the buffer (no copy; eagerly the functional one
    was 0.1-0.6 ms slower per call with gloo here: bench/RESULTS.md). Both are the backend's same sum."""

    def __init__(self, group: dist.ProcessGroup, world_size: int):
        from torch.distributed import _functional_collectives  # imported here: single-process runs never pay it

        self.group, self.world_size = group, world_size
        self._functional_all_reduce = _functional_collectives.all_reduce

    def __call__(self, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        flat = torch.cat([g.reshape(-1) for g in grads])
        if torch.compiler.is_compiling():
            flat = self._functional_all_reduce(flat, "sum", self.group)
        else:
            dist.all_reduce(flat, group=self.group)  # in place: the buffer is ours
        flat = flat / self.world_size
        out, start = [], 0
        for g in grads:
            out.append(flat[start : start + g.numel()].view_as(g))
            start += g.numel()
        return out


def learner_tensors(learner) -> list[torch.Tensor]:
    """Every tensor of a learner's state that must agree across replicas: networks (parameters and buffers),
    target critics, log_alpha and the optimizers' state; not its noise generator nor its metric sums (per rank)."""
    tensors = [*learner.actor.state_dict().values(), *learner.critic.state_dict().values(),
               *learner.target_critic.state_dict().values(), learner.entropy.log_alpha]  # fmt: skip
    for opt in (learner.actor_optim, learner.critic_optim, learner.alpha_optim):
        if opt is not None:
            tensors += opt.state_tensors()
    return tensors


def replica_digest(learner) -> str:
    """A SHA-256 of the bytes of :func:`learner_tensors` (equal digests: bit-identical replicas)."""
    h = hashlib.sha256()
    for t in learner_tensors(learner):
        h.update(t.detach().reshape(-1).cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class _AgreedStop:
    """The loop's stop flag in a data-parallel run: set on every rank at the same log row (see reduce_row)."""

    def __init__(self, local):
        self.local, self.requested = local, False


class _Heartbeat:
    """A daemon thread adding 1 to ``fastsac/heartbeat/<rank>`` in the rendezvous store every HEARTBEAT_SECONDS."""

    def __init__(self, rank: int, world_size: int):
        self.rank, self.world_size = rank, world_size
        self.address = (os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT"))
        self._stop = threading.Event()
        self._store = None
        if None not in self.address:
            try:
                self._store = dist.TCPStore(self.address[0], int(self.address[1]), is_master=False,
                                            timeout=datetime.timedelta(seconds=10), wait_for_workers=False)
            except Exception:  # no store to beat in: failures are still reported, without naming the rank
                self._store = None
        self._thread = threading.Thread(target=self._beat, name="fastsac-heartbeat", daemon=True)
        if self._store is not None:
            self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                self._store.add(f"fastsac/heartbeat/{self.rank}", 1)
            except Exception:
                return

    def silent_ranks(self) -> list[int] | str:
        """Other ranks whose heartbeat did not move for SILENCE_SECONDS, or why that cannot be told."""
        if self._store is None:
            return "no rendezvous store to read heartbeats from (MASTER_ADDR/MASTER_PORT unset)"
        try:
            keys = [f"fastsac/heartbeat/{r}" for r in range(self.world_size)]
            before = [self._store.add(k, 0) for k in keys]
            time.sleep(SILENCE_SECONDS)
            after = [self._store.add(k, 0) for k in keys]
        except Exception as exc:
            return (f"the rendezvous store at {self.address[0]}:{self.address[1]} is unreachable ({exc}); without "
                    "torchrun rank 0 hosts it, so rank 0 has probably died")
        return [r for r in range(self.world_size) if r != self.rank and after[r] == before[r]]

    def close(self) -> None:
        """Stop and join the thread, so that it is never inside a store call while the interpreter exits (before
        this join a worker aborted once, in about 30 runs of the kill test, at about its exit with "terminate
        called without an active exception")."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15)
        self._store = None


class DistContext:
    """This rank's view of a data-parallel run (see the module docstring)."""

    def __init__(self, launch: Launch, device: torch.device, timeout_s: float):
        self.launch = launch
        self.device = device
        self.backend = "nccl" if device.type == "cuda" else "gloo"
        self.timeout_s = float(timeout_s)
        timeout = datetime.timedelta(seconds=self.timeout_s)
        self._owns_group = not dist.is_initialized()
        if device.type == "cuda":
            torch.cuda.set_device(device)
        if self._owns_group:
            # torchrun keeps one store for all attempts of a job, and a process group's keys do not name the attempt:
            # a restarted rank could read a dead rank's address and wait for it until the store's timeout (seen
            # with gloo on about half the restarts here). Each attempt gets keys of its own.
            store, rank, world = next(dist.rendezvous("env://", timeout=timeout))
            store = dist.PrefixStore(f"fastsac/attempt-{launch.restart_count or 0}", store)
            dist.init_process_group(self.backend, store=store, rank=rank, world_size=world, timeout=timeout,
                                    device_id=device if device.type == "cuda" else None)  # fmt: skip
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.group = dist.group.WORLD
        # Host-side messages (decisions, errors, log rows) go through gloo whatever the gradients use.
        self.control = self.group if dist.get_backend() == "gloo" else dist.new_group(backend="gloo", timeout=timeout)
        self.stop: _AgreedStop | None = None
        self._heartbeat = _Heartbeat(self.rank, self.world_size)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def describe(self) -> dict[str, Any]:
        """For summary.json."""
        return {"rank": self.rank, "world_size": self.world_size, "backend": self.backend,
                "local_world_size": self.launch.local_world_size, "restart_count": self.launch.restart_count}

    # --- seeds -------------------------------------------------------------------------------------------------
    def env_seed(self, seed: int, num_envs: int) -> int:
        return seed + self.rank * num_envs

    def rank_seed(self, seed: int) -> int:
        return seed + self.rank

    # --- the learner -------------------------------------------------------------------------------------------
    def attach(self, learner) -> None:
        """Make ``learner`` a replica: rank 0's state broadcast, gradients averaged after every backward pass."""
        if learner.num_updates != 0:
            raise RuntimeError("DistContext.attach: attach the learner before its first update")
        tensors = learner_tensors(learner)
        with torch.no_grad():
            for dtype in sorted({t.dtype for t in tensors}, key=str):  # one broadcast per dtype
                group = [t for t in tensors if t.dtype == dtype]
                flat = torch.cat([t.reshape(-1) for t in group])
                dist.broadcast(flat, src=0, group=self.group)
                torch._foreach_copy_(group, [v.view_as(t) for v, t in zip(flat.split([t.numel() for t in group]),
                                                                           group)])  # fmt: skip
        learner.grad_reducer = GradientAverager(self.group, self.world_size)

    def check_replicas(self, learner, what: str) -> None:
        """Raise DistributedError on every rank unless all replicas hold bit-identical state."""
        digests = self.all_gather_object(replica_digest(learner))
        differ = [r for r, d in enumerate(digests) if d != digests[0]]
        if differ:
            raise DistributedError(f"rank {self.rank}: the learner replicas differ after {what} (ranks {differ} "
                                   "differ from rank 0); the checkpoint set is inconsistent")

    # --- host-side collectives ---------------------------------------------------------------------------------
    def all_gather_object(self, obj: T) -> list[T]:
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj, group=self.control)
        return out

    def broadcast_object(self, obj: T) -> T:
        """Rank 0's ``obj`` on every rank."""
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0, group=self.control)
        return box[0]

    def agreed(self, what: str, fn: Callable[[], T], cleanup: Callable[[T], None] | None = None) -> T:
        """``fn()`` on every rank; when it raised on any rank, raise on every rank: the failing rank its own
        exception, the others a DistributedError naming it (``cleanup(result)`` first on those that succeeded)."""
        try:
            result, error = fn(), None
        except Exception as exc:
            result, error = None, exc
        messages = self.all_gather_object(None if error is None else f"{type(error).__name__}: {error}")
        failed = [(r, m) for r, m in enumerate(messages) if m is not None]
        if not failed:
            return result
        if error is not None:
            raise error
        if cleanup is not None:
            cleanup(result)
        r, message = failed[0]
        raise DistributedError(f"rank {self.rank}: stopping because rank {r} failed {what}: {message}")

    def agreed_stop(self, local) -> _AgreedStop:
        """The stop flag the loop polls: set on every rank at the log row after any rank's ``local`` was set."""
        self.stop = _AgreedStop(local)
        return self.stop

    def reduce_row(self, metrics: dict[str, float], window: dict[str, Any]) -> tuple[dict[str, float], dict]:
        """One all-reduce per log row: the learner metrics averaged over ranks (alpha and the update count are the
        same everywhere), the episode window summed, and the stop requests combined into :attr:`stop`."""
        keys = sorted(k for k in metrics if k not in ("alpha", "num_updates"))
        local_stop = bool(self.stop is not None and self.stop.local.requested)
        values = [metrics[k] for k in keys] + [window["episodes"], window["return_sum"], window["length_sum"],
                                               float(local_stop)]  # fmt: skip
        total = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(total, group=self.control)
        total = total.tolist()
        out = dict(metrics)
        out.update({k: v / self.world_size for k, v in zip(keys, total)})
        n = len(keys)
        summed = {**window, "episodes": int(total[n]), "return_sum": total[n + 1], "length_sum": int(total[n + 2])}
        if self.stop is not None and total[n + 3] > 0:
            self.stop.requested = True
        return out, summed

    # --- faults ------------------------------------------------------------------------------------------------
    def explain(self, exc: BaseException) -> DistributedError:
        """A DistributedError for a failed collective, naming the ranks whose heartbeat stopped."""
        silent = self._heartbeat.silent_ranks()
        if isinstance(silent, str):
            who = silent
        elif silent:
            who = f"rank(s) {', '.join(map(str, silent))} stopped responding (died or hung)"
        else:
            who = "every other rank's heartbeat is still alive (a rank may be stuck outside a collective)"
        return DistributedError(f"rank {self.rank}: a collective failed ({type(exc).__name__}: {exc}); {who}. "
                                f"Collectives wait at most --dist-timeout {self.timeout_s:g} s")

    def close(self) -> None:
        self._heartbeat.close()
        if self._owns_group and dist.is_initialized():
            dist.destroy_process_group()


@contextlib.contextmanager
def open_context(config: TrainConfig, launch: Launch | None = None) -> Iterator[DistContext | None]:
    """The run's DistContext (None for a single process), closed at the end. A RuntimeError from inside (a failed
    collective) becomes a :class:`DistributedError` naming the ranks that stopped responding."""
    launch = Launch.from_env() if launch is None else launch
    if launch.world_size == 1:
        yield None
        return
    if not torch.distributed.is_available():
        raise ConfigError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    ctx = DistContext(launch, rank_device(config.device, launch), config.dist_timeout)
    try:
        yield ctx
    except DistributedError:
        raise
    except RuntimeError as exc:
        # gloo reports a closed connection or a timeout as a plain RuntimeError whose text names its gloo source.
        if isinstance(exc, dist.DistError) or "gloo" in str(exc):
            raise ctx.explain(exc) from exc
        raise
    finally:
        ctx.close()
