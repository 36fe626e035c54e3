"""fastsac: fast, exact Soft Actor-Critic.

The package's folders are its layers; imports run one way, ``cli -> suite -> training -> agents -> (ops, entropy,
data)``:

- :mod:`fastsac.ops`: the fused ops (tanh-squashed Gaussian, categorical), backend choice, torch reference,
  extension loader;
- :mod:`fastsac.entropy`: temperature modules, target and alpha schedules, the on-policy controller;
- :mod:`fastsac.data`: the replay buffer and the environments;
- :mod:`fastsac.agents`: the learners (SAC, discrete SAC), networks, the foreach Adam;
- :mod:`fastsac.training`: config and presets, the session loop, resume, evaluation and video, checkpoints, logs;
- :mod:`fastsac.suite`: benchmark suites, results, plots, reports;
- :mod:`fastsac.cli`: the command line.

Names are imported lazily so that ``import fastsac`` stays cheap and never fails because an optional piece (the
compiled extension, Triton, EnvPool) is missing: ``fastsac.EntropyModule``, ``fastsac.train``, ``fastsac.ops``.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "EntropyModule": "fastsac.entropy",
    "EntropyModuleDiscrete": "fastsac.entropy",
    "EntropyParameters": "fastsac.entropy",
    "EntropyController": "fastsac.entropy",
    "train": "fastsac.training",
    "resume": "fastsac.training",
    "evaluate": "fastsac.training",
    "TrainConfig": "fastsac.training",
}
_SUBPACKAGES = ("ops", "entropy", "data", "agents", "training", "suite", "cli")

__all__ = [*_LAZY, *_SUBPACKAGES, "__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBPACKAGES:
        return importlib.import_module(f"fastsac.{name}")
    raise AttributeError(f"module 'fastsac' has no attribute {name!r}")
