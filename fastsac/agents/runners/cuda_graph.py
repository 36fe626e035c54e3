"""CUDA-graph replay of a learner's update: :class:`GraphRunner`, a wrapper around whichever implementation runs.

It keeps static input buffers per input layout (the batch and its noise; with the actions computed inside the
update, also the observations to act on and their noise) and one ``torch.cuda.CUDAGraph`` per layout and value of
the update's Python flag (``update_actor``: the two policy-delay variants). A call copies its inputs into the
buffers and replays the graph; what the graph returns (the actions, or None) lives in a static tensor that the next
replay overwrites, so it is cloned.

Capturing runs the wrapped implementation a few times first (that is when it compiles and its first call is
checked), on a side stream; those warm-up runs change the learner's state, so every tensor the update writes is
snapshotted before and restored after, and the first replay is the first real update. Where a capture fails, the
state is restored all the same, the failure is a recorded fallback (``fastsac.fallbacks``, kind ``cuda_graph``)
and every later call runs the wrapped implementation directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from fastsac.agents.runners.checked import restore, snapshot
from fastsac.agents.runners.implementations import autograd_ops_config
from fastsac.fallbacks import Fallback, fall_back

__all__ = ["GraphRunner", "WARMUP_CALLS"]

# The first call compiles; the later ones let lazily created state (allocator pools, cuBLAS workspaces) settle
# before the capture, which must not allocate anew.
WARMUP_CALLS = 3

# The update's arguments: six tensors (obs, action, reward, next_obs, terminated, noise), the flag update_actor,
# then optionally the observations to act on and their noise.
_FLAG = 6


class GraphRunner:
    """Replays ``inner`` (called ``inner(*tensors[:6], flag, *tensors[6:])``) from CUDA graphs.

    Args:
        inner: the implementation that runs the update (a :class:`~fastsac.agents.runners.checked.CheckedRunner`);
            it must only read its inputs and write tensors listed by ``mutable``.
        device: the CUDA device.
        mutable: returns every tensor the update writes (restored after the warm-up runs of a capture).
        fallbacks: the learner's list of fallbacks; a failed capture is appended to it.
    """

    def __init__(self, inner: Callable[..., Any], device: torch.device,
                 mutable: Callable[[], list[torch.Tensor]], fallbacks: list[Fallback]):
        self.inner, self._device, self._mutable, self._fallbacks = inner, device, mutable, fallbacks
        self._static: dict[tuple, list[torch.Tensor]] = {}  # per layout, its input buffers
        self._graphs: dict[tuple[tuple, bool], tuple[torch.cuda.CUDAGraph, torch.Tensor | None]] = {}
        self.failed = False  #: a capture failed: calls run ``inner`` directly

    @property
    def num_graphs(self) -> int:
        return len(self._graphs)

    @property
    def flags(self) -> frozenset[bool]:
        """The flag values a graph has been captured for (on any layout)."""
        return frozenset(flag for _, flag in self._graphs)

    def __call__(self, *args: Any) -> Any:
        if self.failed:
            return self.inner(*args)
        flag, tensors = args[_FLAG], (*args[:_FLAG], *args[_FLAG + 1:])
        layout = tuple((t.shape, t.dtype) for t in tensors)
        static = self._static.get(layout)
        if static is None:
            static = self._static[layout] = [torch.empty(s, dtype=d, device=self._device) for s, d in layout]
        for dst, src in zip(static, tensors):
            dst.copy_(src, non_blocking=True)
        entry = self._graphs.get((layout, flag))
        if entry is None:
            try:
                entry = self._capture(static, flag)
            except Exception as exc:  # e.g. an op that synchronises or allocates during the capture
                self.failed, self._graphs = True, {}
                self._fallbacks.append(fall_back("cuda_graph", "capturing the update in a CUDA graph",
                                                 "the update without a CUDA graph", exc))
                return self.inner(*args)
            self._graphs[(layout, flag)] = entry
        graph, output = entry
        graph.replay()
        return output.clone() if isinstance(output, torch.Tensor) else None

    def _run_inner(self, buffers: Sequence[torch.Tensor], flag: bool) -> Any:
        return self.inner(*buffers[:_FLAG], flag, *buffers[_FLAG:])

    def _capture(self, buffers: list[torch.Tensor], flag: bool) -> tuple[torch.cuda.CUDAGraph, torch.Tensor | None]:
        saved = snapshot(self._mutable())
        try:
            stream = torch.cuda.Stream(self._device)
            stream.wait_stream(torch.cuda.current_stream(self._device))
            with torch.cuda.stream(stream), autograd_ops_config():
                for _ in range(WARMUP_CALLS):
                    self._run_inner(buffers, flag)
            torch.cuda.current_stream(self._device).wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            # Captured on the warm-up stream (whatever the compiled code saw while warming up, it sees again);
            # thread_local: CUDA calls other threads (env workers, loggers) make during the capture are allowed.
            with torch.cuda.graph(graph, stream=stream, capture_error_mode="thread_local"), autograd_ops_config():
                output = self._run_inner(buffers, flag)
        finally:
            restore(self._mutable(), saved)
        return graph, output
