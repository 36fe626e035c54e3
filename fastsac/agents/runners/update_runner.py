""":class:`UpdateRunner`: what a learner calls for each update, built once from its :class:`UpdateChoice`.

The chain it checks (``fastsac.agents.runners.checked``) follows the choice: ``native`` tries the learner's native
update, then ``torch.compile``, then eager; ``compile`` tries ``torch.compile``, then eager; ``eager`` runs the
update as written. On a torch without dynamo's ``trace_autograd_ops`` the compile step is left out, loudly. On
CUDA with ``cuda_graph``, whatever runs is replayed from CUDA graphs (``fastsac.agents.runners.cuda_graph``). The
first call's seconds (a compile, a capture, or just a first update) are kept in :attr:`first_call_seconds`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from fastsac.agents.runners.checked import VERIFY_RTOL, CheckedRunner
from fastsac.agents.runners.choice import UpdateChoice
from fastsac.agents.runners.cuda_graph import GraphRunner
from fastsac.agents.runners.implementations import CompiledRunner, NativeRunner, trace_autograd_ops_supported
from fastsac.fallbacks import Fallback, fall_back

__all__ = ["UpdateRunner"]


class UpdateRunner:
    """Runs a learner's update as ``choice`` says (module docstring).

    Args:
        choice: how the update runs (``fastsac.agents.runners.choose_update``).
        update: the update as written (the eager implementation).
        native: builds the learner's native implementation (called only for ``choice.backend == "native"``).
        what: what the update is, for messages ("SACLearner update").
        mutable: returns every tensor the update writes.
        compared: returns the ``(name, tensor)`` pairs a fast first call is checked on.
        fallbacks: the learner's list of fallbacks.
        graph_device: a CUDA device to replay the update from CUDA graphs on, or None.
        rtol: the first-call check's tolerance (``CheckedRunner``).
    """

    def __init__(self, choice: UpdateChoice, update: Callable[..., Any], *, native: Callable[[], Callable[..., Any]],
                 what: str, mutable: Callable[[], list[torch.Tensor]],
                 compared: Callable[[], list[tuple[str, torch.Tensor]]], fallbacks: list[Fallback],
                 graph_device: torch.device | None = None, rtol: float = VERIFY_RTOL):
        self.choice = choice
        chain: list[Callable[[], Any]] = []
        if choice.backend == "native":
            chain.append(lambda: NativeRunner(native()))
        if choice.backend in ("native", "compile"):
            if trace_autograd_ops_supported():
                chain.append(lambda: CompiledRunner(update))
            else:
                fallbacks.append(fall_back(
                    "torch_version", f"compiling the {what} as one graph", f"the eager {what}",
                    f"torch {torch.__version__} has no torch._dynamo.config.trace_autograd_ops (torch >= 2.11 has it)"))
        self.checked = CheckedRunner(chain, update, what, mutable, compared, fallbacks, rtol)
        self.graph = GraphRunner(self.checked, graph_device, mutable, fallbacks) if graph_device is not None else None
        #: the CUDA device updates are replayed from graphs on (None: no graphs)
        self.graph_device = graph_device
        self._run = self.checked if self.graph is None else self.graph
        self._call = self._first_call
        #: seconds the first call took (compiling, capturing, checking against eager); None before it
        self.first_call_seconds: float | None = None

    def __call__(self, *args: Any) -> Any:
        return self._call(*args)

    def _first_call(self, *args: Any) -> Any:
        start = time.perf_counter()
        out = self._run(*args)
        if self.graph_device is not None:
            torch.cuda.synchronize(self.graph_device)
        self.first_call_seconds = time.perf_counter() - start
        self._call = self._run
        return out

    @property
    def kind(self) -> str:
        """What runs the update now: ``native``, ``compile`` or ``eager`` (after fallbacks, what is left)."""
        return self.checked.kind

    @property
    def graphed(self) -> bool:
        """Whether the update is replayed from CUDA graphs (False without, or after a failed capture)."""
        return self.graph is not None and not self.graph.failed

    def describe(self) -> str:
        """What runs the update, in the words of ``--update`` ("native: the native update (csrc/...)")."""
        graph = ", replayed from CUDA graphs" if self.graphed else ""
        return f"{self.kind}: {self.checked.runner.what}{graph}"

    def describe_first_call(self) -> str:
        """What the first call took and what it did (a sentence), once it has run."""
        did = {"native": "nothing to compile; checked against the eager update",
               "compile": "a compile (seconds with torch's on-disk cache warm, tens of seconds cold), checked against "
                          "the eager update",
               "eager": "no compile"}[self.kind]
        return f"first call {self.first_call_seconds:.2f} s, {self.kind} ({did})"
