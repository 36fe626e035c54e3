"""From a :class:`~fastsac.training.config.TrainConfig` to what a process runs with: the device, the torch thread
count, whether the update is compiled, the learner's own config, and the global seeds."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import torch

from fastsac.agents import LearnerConfig
from fastsac.training.config import ConfigError, TrainConfig

__all__ = ["TorchThreads", "learner_config", "resolve_compile", "resolve_device", "seed_everything"]


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (every CUDA device too)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_compile(config: TrainConfig, device: torch.device) -> bool:
    """Whether the update is compiled: ``config.compile`` when given, else on for CUDA."""
    return config.compile if config.compile is not None else device.type == "cuda"


def learner_config(config: TrainConfig, device: torch.device, *, compile_: bool | None = None) -> LearnerConfig:
    """The LearnerConfig used: the run's seed, compile choice and ops backend override the nested values."""
    return dataclasses.replace(
        config.learner,
        seed=config.seed,
        compile=resolve_compile(config, device) if compile_ is None else compile_,
        backend=config.backend,
    )


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
