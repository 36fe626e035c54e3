"""From a :class:`~fastsac.training.config.TrainConfig` to what a process runs with: the device, the torch thread
count, how the update runs, the learner's own config, and the global seeds.

How the update runs (``--update eager|compile|native`` decides when given; ``auto``, the default, is this rule):
:func:`decide_update` asks the learner's own choice (``fastsac.agents.runners.choose_update``) for the fast path
that applies (the native C++ update where the learner has one, else torch.compile) and takes it where it pays.
On CUDA always (the update is also captured in a CUDA graph). On a CPU when the run's updates repay its first call:

- The native update (``fastsac.agents.sac_native``: continuous SAC with MLP networks) compiles nothing: its first
  call took 0.01 s (Pendulum's 2x64) to 0.04 s (HalfCheetah's 2x256), and it saved 1.1 ms per update at
  Pendulum's 2x64 networks and 3.9 ms at HalfCheetah's 2x256 (``bench/bench_compile.py``, 2-core x86-64 CI-class
  machine, 1 thread, batch 256; bench/RESULTS.md). The rule prices it at ``NATIVE_FIRST_CALL_SECONDS`` (the first
  call is also run eagerly to check it, and a busy machine is slower) against ``NATIVE_SAVING_MS +
  NATIVE_SAVING_MS_PER_GFLOP * GFLOP`` saved per update: it pays from a few hundred updates on, so the default
  Pendulum run (9,000 updates) runs it. CrossQ's native update (``fastsac.agents.crossq_native``: batch-renormalized
  MLPs) is priced alike, with CrossQ's own product count.
- torch.compile elsewhere (discrete SAC, normalized critics, observation normalization, data parallel): compiling
  costs tens of seconds once and saves a few milliseconds on every update after it. Measured with the same
  benchmark: the first compile of the 2x256 update took 23 s with torch's on-disk cache cold and 3.6 s warm, and
  compiling saved 1.7 ms per update at 2x64 (45 MFLOP of products per update) and 7.1 ms at 2x256 (582 MFLOP).
  Estimated saving per update ``COMPILE_SAVING_MS + COMPILE_SAVING_MS_PER_GFLOP * GFLOP`` against
  ``CPU_COMPILE_SECONDS``, a cold-cache cost with margin for a busy machine. The cold cost always, so that a seeded
  run decides the same way whatever the cache holds (compiled and eager updates differ in their last bits). A 2x64
  run compiles from ~30,000 updates on; a HalfCheetah run of its preset (995,000 updates of 2x256: ~2 h saved)
  compiles.

The products counted are ``fastsac.agents.cost.learner_update_flops``'s (CrossQ's with its critic widths, the joint
batch and its policy delay). A resumed run keeps the decision it started with, since switching would change its
numbers.

How many CPU threads torch uses (``--threads N`` decides when given; 0, the default, is this rule). One thread for
small networks: a 2x64 update gains nothing from a second thread and two threads stall badly when another process
shares the cores (the default Pendulum run once took 10 min on two threads and 2 min on one). For networks of
``AUTO_THREADS_MIN_GFLOP`` or more per update, every core this process may use, divided among the training
processes on the machine (``LOCAL_WORLD_SIZE`` under torchrun); ``OMP_NUM_THREADS``, when set (the suite runner
sets it to cores / jobs, torchrun to 1 for several processes), is that share. Measured side by side
(bench/RESULTS.md): the HalfCheetah preset, compiled, trains at ~150 steps/s on two threads against ~97 on one on
the 2-core machine. A resumed run keeps its thread count too (the products' summation order depends on it).
"""

from __future__ import annotations

import dataclasses
import os
import random
from dataclasses import dataclass

import numpy as np
import torch

from fastsac.agents import LearnerConfig, learner_class
from fastsac.agents.cost import learner_update_flops
from fastsac.agents.runners import UpdateChoice, choose_update
from fastsac.training.config import ConfigError, TrainConfig

__all__ = [
    "ThreadsDecision",
    "TorchThreads",
    "UpdateChoice",
    "decide_threads",
    "decide_update",
    "expected_updates",
    "learner_config",
    "resolve_device",
    "seed_everything",
]

CPU_COMPILE_SECONDS = 45.0
COMPILE_SAVING_MS = 1.2
COMPILE_SAVING_MS_PER_GFLOP = 10.1
NATIVE_FIRST_CALL_SECONDS = 0.5
NATIVE_SAVING_MS = 1.0
NATIVE_SAVING_MS_PER_GFLOP = 5.0
AUTO_THREADS_MIN_GFLOP = 0.1  # 2x64 updates are ~0.05 GFLOP, 2x256 ones ~0.6


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (every CUDA device too)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def expected_updates(config: TrainConfig) -> int:
    """Gradient updates a run will make: ``utd`` per env step after ``learning_starts`` (summed over envs)."""
    return int(max(0, config.total_steps - config.learning_starts) * config.utd)


def decide_update(config: TrainConfig, device: torch.device, obs_dim: int, action_size: int, discrete: bool, *,
                  previous: dict | None = None, data_parallel: bool = False, asymmetric: bool = False) -> UpdateChoice:
    """How the run's update runs, and why (see the module docstring; printed at the start and kept in
    summary.json). ``previous``: the decision a resumed run made (``{"backend", "reason"}``); ``data_parallel``:
    the run trains data parallel (torchrun), which the native update does not support; ``asymmetric``: its critics
    see privileged observations (nor that). A ``--update`` that cannot run here is a ConfigError."""
    cls = learner_class(config.learner.agent, discrete)

    def choice(update: str) -> UpdateChoice:
        try:
            return choose_update(cls, learner_config(config, update=update), device, data_parallel=data_parallel,
                                 asymmetric=asymmetric)
        except ValueError as exc:
            raise ConfigError(f"--update {update}: {exc}") from None

    if config.update != "auto":
        choice(config.update)  # an update that cannot run here fails now, before anything is built
        return UpdateChoice(config.update, f"--update {config.update} given")
    if previous is not None:
        kept = "kept from the run's start: "
        reason = previous["reason"] if previous["reason"].startswith(kept) else kept + previous["reason"]
        return UpdateChoice(previous["backend"], reason)
    fast = choice("auto")
    if device.type == "cuda":
        return UpdateChoice(fast.backend, "CUDA: the fast path, captured in a CUDA graph")
    updates = expected_updates(config)
    gflop = learner_update_flops(config.learner, obs_dim, action_size, config.batch_size, discrete=discrete) / 1e9
    if fast.backend == "native":
        cost_s, saving_ms = NATIVE_FIRST_CALL_SECONDS, NATIVE_SAVING_MS + NATIVE_SAVING_MS_PER_GFLOP * gflop
        what = f"~{cost_s:g} s for the native C++ update's first call"
    else:
        cost_s, saving_ms = CPU_COMPILE_SECONDS, COMPILE_SAVING_MS + COMPILE_SAVING_MS_PER_GFLOP * gflop
        what = f"~{cost_s:.0f} s to compile ({fast.reason})"
    saved_s = updates * saving_ms / 1e3
    backend = fast.backend if saved_s > cost_s else "eager"
    return UpdateChoice(backend, f"{updates:,} updates x ~{saving_ms:.1f} ms saved each = ~{saved_s:,.0f} s against "
                                 f"{what}: {backend} (--update to choose)")


@dataclass(frozen=True)
class ThreadsDecision:
    """The run's torch CPU thread count, and why (printed at the start and kept in summary.json)."""

    threads: int
    reason: str


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def decide_threads(config: TrainConfig, obs_dim: int, action_size: int, discrete: bool, *,
                   previous: dict | None = None) -> ThreadsDecision:
    """The run's thread count (see the module docstring). ``previous``: the decision a resumed run made."""
    if config.threads > 0:
        return ThreadsDecision(config.threads, "--threads given")
    if previous is not None:
        kept = "kept from the run's start: "
        reason = previous["reason"] if previous["reason"].startswith(kept) else kept + previous["reason"]
        return ThreadsDecision(int(previous["threads"]), reason)
    gflop = learner_update_flops(config.learner, obs_dim, action_size, config.batch_size, discrete=discrete) / 1e9
    if gflop < AUTO_THREADS_MIN_GFLOP:
        return ThreadsDecision(1, f"{gflop:.2f} GFLOP per update: one thread (small networks gain nothing from more, "
                                  "and stall on a shared machine; --threads N to choose)")
    omp = os.environ.get("OMP_NUM_THREADS", "")
    if omp.isdigit() and int(omp) > 0:
        return ThreadsDecision(int(omp), f"{gflop:.2f} GFLOP per update: OMP_NUM_THREADS={omp} threads "
                                         "(--threads N to choose)")
    cores, local = available_cores(), max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    share = max(1, cores // local)
    among = f" shared by {local} local processes" if local > 1 else ""
    return ThreadsDecision(share, f"{gflop:.2f} GFLOP per update: {share} thread(s), the {cores} cores this "
                                  f"process may use{among} (--threads N to choose)")


def learner_config(config: TrainConfig, *, update: str) -> LearnerConfig:
    """The LearnerConfig used: the run's seed, update decision and ops backend override the nested values."""
    return dataclasses.replace(config.learner, seed=config.seed, update=update, backend=config.backend)


def resolve_device(config: TrainConfig) -> torch.device:
    """The training device; a CUDA device where none exists is a ConfigError."""
    name = config.resolved_device()
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was requested but CUDA is not available here; use --device cpu or auto")
    return device


class TorchThreads:
    """Set torch's CPU thread count for a run (0 leaves it as it is: the session sets the count it decides) and
    restore the count from before afterwards."""

    def __init__(self, threads: int):
        self.threads = threads
        self.previous = torch.get_num_threads()

    def __enter__(self):
        if self.threads > 0:
            torch.set_num_threads(self.threads)
        return self

    def __exit__(self, *exc):
        torch.set_num_threads(self.previous)
