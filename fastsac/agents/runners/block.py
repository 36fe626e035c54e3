"""Several updates in one call: :class:`BlockRunner`, what ``Learner.update_many`` runs.

The FastSAC regime makes several updates per vector step of thousands of envs (holosoma's FastSAC: 8, from one
sample of 8 minibatches). A block is those ``k`` updates: its inputs are the six tensors of one update with a
leading dimension ``k`` (minibatch ``i`` is ``[i]``) and a tuple of ``k`` ``update_actor`` flags (the policy-delay
pattern of the block). Update ``i`` is the learner's single update on ``[i]``, run by the learner's own runner, so
a block compiles nothing new: its updates are the same compiled graph (or native call) as single updates.

On CUDA with graphs, the whole block is captured as ONE CUDA graph (``fastsac.agents.runners.cuda_graph``, keyed by
the flags tuple as a single update is by its flag) and a vector step replays it once: one input copy and one graph
launch per vector step instead of ``k``. Elsewhere the block is a loop over the learner's runner.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from fastsac.agents.runners.cuda_graph import GraphRunner
from fastsac.agents.runners.update_runner import UpdateRunner
from fastsac.fallbacks import Fallback

__all__ = ["BlockRunner"]


class BlockRunner:
    """Runs ``k`` updates of ``single`` (the learner's :class:`UpdateRunner`) from one call
    ``block(obs, action, reward, next_obs, terminated, noise, flags)`` (module docstring).

    Args:
        single: the learner's runner of one update.
        graph_device: a CUDA device to replay each block from one CUDA graph on, or None.
        mutable: returns every tensor an update writes (restored after a capture's warm-up runs).
        fallbacks: the learner's list of fallbacks; a failed capture is appended to it.
    """

    def __init__(self, single: UpdateRunner, graph_device: torch.device | None,
                 mutable: Callable[[], list[torch.Tensor]], fallbacks: list[Fallback]):
        self.single = single
        # Inside a captured block, each update runs the single update's implementation itself (its own graphs
        # would be replays inside a capture).
        self.graph = GraphRunner(self._loop(single.checked), graph_device, mutable, fallbacks) \
            if graph_device is not None else None
        self._run = self._loop(single) if self.graph is None else self.graph

    @staticmethod
    def _loop(run_one: Callable[..., Any]) -> Callable[..., None]:
        def block(obs, action, reward, next_obs, terminated, noise, flags: Sequence[bool]) -> None:
            for i, flag in enumerate(flags):
                run_one(obs[i], action[i], reward[i], next_obs[i], terminated[i], noise[i], flag)
        return block

    @property
    def graphed(self) -> bool:
        """Whether blocks are replayed from CUDA graphs (False without, or after a failed capture)."""
        return self.graph is not None and not self.graph.failed

    def __call__(self, *args: Any) -> None:
        self._run(*args)
