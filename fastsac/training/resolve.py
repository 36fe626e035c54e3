"""From a :class:`~fastsac.training.config.TrainConfig` to what a process runs with: the device, the torch thread
count, whether the update is compiled, the learner's own config, and the global seeds.

Whether to compile (``--compile``/``--no-compile`` decide when given). On CUDA always (the compiled update is
also captured in a CUDA graph). On a CPU when it pays: compiling costs tens of seconds once (the first update)
and saves a few milliseconds on every update after it, more for bigger networks. Measured with
``bench/bench_compile.py`` (2-core x86-64 CI-class machine, torch 2.13, 1 thread, batch 256; bench/RESULTS.md
has the runs): the first compile of the 2x256 update took 23 s with torch's on-disk cache cold and 3.6 s warm,
and compiling saved 1.7 ms per update at 2x64 (45 MFLOP of products per update) and 7.1 ms at 2x256 (582 MFLOP).
The rule: estimated saving per update ``COMPILE_SAVING_MS + COMPILE_SAVING_MS_PER_GFLOP * GFLOP`` (the products
counted by ``fastsac.agents.cost.update_flops``), times the run's updates, against ``CPU_COMPILE_SECONDS``, a
cold-cache cost with margin for a busy machine. The cold cost always, so that a seeded run decides the same way
whatever the cache holds (compiled and eager updates differ in their last bits). So the default Pendulum run
(9,000 updates of 2x64 networks: ~15 s saved against 45 s) stays eager, and a HalfCheetah run of its preset
(995,000 updates of 2x256: ~2 h saved) compiles. A resumed run keeps the decision it started with, since switching
would change its numbers.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

import numpy as np
import torch

from fastsac.agents import LearnerConfig
from fastsac.agents.cost import update_flops
from fastsac.training.config import ConfigError, TrainConfig

__all__ = [
    "CompileDecision",
    "TorchThreads",
    "decide_compile",
    "expected_updates",
    "learner_config",
    "resolve_device",
    "seed_everything",
]

CPU_COMPILE_SECONDS = 45.0
COMPILE_SAVING_MS = 1.2
COMPILE_SAVING_MS_PER_GFLOP = 10.1


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (every CUDA device too)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass(frozen=True)
class CompileDecision:
    """Whether the run compiles its update, and why (printed at the start and kept in summary.json)."""

    compile: bool
    reason: str


def expected_updates(config: TrainConfig) -> int:
    """Gradient updates a run will make: ``utd`` per env step after ``learning_starts`` (summed over envs)."""
    return int(max(0, config.total_steps - config.learning_starts) * config.utd)


def decide_compile(config: TrainConfig, device: torch.device, obs_dim: int, action_size: int, discrete: bool, *,
                   previous: dict | None = None) -> CompileDecision:
    """The run's compile decision (see the module docstring). ``previous``: the decision a resumed run made."""
    if config.compile is not None:
        return CompileDecision(config.compile, f"{'--compile' if config.compile else '--no-compile'} given")
    if previous is not None:
        kept = "kept from the run's start: "
        reason = previous["reason"] if previous["reason"].startswith(kept) else kept + previous["reason"]
        return CompileDecision(bool(previous["compile"]), reason)
    if device.type == "cuda":
        return CompileDecision(True, "CUDA: the update is compiled and captured in a CUDA graph")
    updates = expected_updates(config)
    gflop = update_flops(obs_dim, action_size, config.learner.hidden_sizes, config.batch_size, discrete=discrete) / 1e9
    saving_ms = COMPILE_SAVING_MS + COMPILE_SAVING_MS_PER_GFLOP * gflop
    saved_s = updates * saving_ms / 1e3
    pays = saved_s > CPU_COMPILE_SECONDS
    return CompileDecision(pays, (
        f"{updates:,} updates x ~{saving_ms:.1f} ms saved each = ~{saved_s:,.0f} s against ~{CPU_COMPILE_SECONDS:.0f} s "
        f"to compile: {'compiled' if pays else 'eager'} (--compile/--no-compile to choose)"))


def learner_config(config: TrainConfig, *, compile_: bool) -> LearnerConfig:
    """The LearnerConfig used: the run's seed, compile decision and ops backend override the nested values."""
    return dataclasses.replace(config.learner, seed=config.seed, compile=compile_, backend=config.backend)


def resolve_device(config: TrainConfig) -> torch.device:
    """The training device; a CUDA device where none exists is a ConfigError."""
    name = config.resolved_device()
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was requested but CUDA is not available here; use --device cpu or auto")
    return device


class TorchThreads:
    """Set torch's CPU thread count for a run (0 keeps torch's default) and restore it afterwards."""

    def __init__(self, threads: int):
        self.threads = threads
        self.previous = torch.get_num_threads()

    def __enter__(self):
        if self.threads > 0:
            torch.set_num_threads(self.threads)
        return self

    def __exit__(self, *exc):
        torch.set_num_threads(self.previous)
