"""fastsac: fast, exact Soft Actor-Critic.

Submodules are imported lazily so that ``import fastsac`` stays cheap and never fails because an optional
piece (the compiled extension, Triton, EnvPool) is missing.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "EntropyModule": "fastsac.entropy",
    "EntropyModuleDiscrete": "fastsac.entropy",
    "EntropyParameters": "fastsac.entropy",
    "EntropyController": "fastsac.entropy",
}
_SUBMODULES = ("ops", "entropy", "envs", "buffer", "learner", "trainer", "config", "cli", "bench")

__all__ = [*_LAZY, *_SUBMODULES, "__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"fastsac.{name}")
    raise AttributeError(f"module 'fastsac' has no attribute {name!r}")
