"""Loud fallbacks: where a fast path cannot run, the work goes on on the next path, and says so.

A fast path that fails (a backend that fails its first self-check, an update that cannot be compiled or captured
in a CUDA graph, a native CPU update that raises or disagrees with the eager one, a torch too old for a feature) calls :func:`fall_back`, which warns once with what failed, why,
and what runs instead, and returns a :class:`Fallback` record for the run to keep (a learner's ``fallbacks``
list; a run prints them at its start and writes them to summary.json). With ``FASTSAC_STRICT=1`` a fallback is
an error instead (:class:`FallbackError`): the GPU tests and scripts/gpu_checks.sh set it, so a fast path that
silently stopped working fails them.

This module sits outside the layers (it imports nothing from fastsac), so every layer may use it.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass

__all__ = ["STRICT_ENV", "Fallback", "FallbackError", "FallbackWarning", "fall_back", "strict"]

STRICT_ENV = "FASTSAC_STRICT"
KINDS = ("amp", "backend", "compile", "cuda_graph", "native", "torch_version")


class FallbackError(RuntimeError):
    """A fast path failed and ``FASTSAC_STRICT=1`` forbids falling back."""


class FallbackWarning(UserWarning):
    """A fast path failed; the work continues on a slower one."""


@dataclass(frozen=True)
class Fallback:
    """One fallback: ``what`` could not run (``kind``: backend, compile, cuda_graph, torch_version) because of
    ``reason``; ``instead`` runs."""

    kind: str
    what: str
    instead: str
    reason: str

    def message(self) -> str:
        return f"fastsac: fallback: {self.what} failed ({self.reason}); using {self.instead} instead"

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def strict() -> bool:
    """Whether ``FASTSAC_STRICT=1`` is set (read at each fallback, so tests and scripts may set it late)."""
    return os.environ.get(STRICT_ENV) == "1"


def _describe(error: BaseException | str) -> str:
    if isinstance(error, str):
        return error
    text = " ".join(str(error).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def fall_back(kind: str, what: str, instead: str, error: BaseException | str) -> Fallback:
    """Record that ``what`` failed with ``error`` and ``instead`` runs: warn once and return the record.

    Raises :class:`FallbackError` (from ``error``) instead when ``FASTSAC_STRICT=1``."""
    if kind not in KINDS:
        raise ValueError(f"fall_back: unknown kind {kind!r}; one of {', '.join(KINDS)}")
    record = Fallback(kind, what, instead, _describe(error))
    if strict():
        cause = error if isinstance(error, BaseException) else None
        raise FallbackError(f"{record.message()}; {STRICT_ENV}=1 makes every fallback an error") from cause
    warnings.warn(record.message(), FallbackWarning, stacklevel=3)
    return record
