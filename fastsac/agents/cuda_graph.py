"""CUDA-graph capture and replay of a learner's compiled update.

:class:`CapturedUpdate` holds static input buffers per input layout (the batch and noise; with the actions computed
inside the update, also the observations to act on and their noise) and one ``torch.cuda.CUDAGraph`` per layout and
value of the update's static flag (``update_actor``: the two policy-delay variants). A replay reads whatever was
last copied into the buffers and leaves its result (the actions, or None) in :attr:`CapturedUpdate.output`, a
static tensor the next replay of that graph overwrites. Capturing runs the function a few times first (that is
when it compiles), on a side stream; those warm-up runs change the learner's state, so every tensor the update
writes is snapshotted before and restored after, and the first replay is the first real update. Where a capture
fails, the state is restored all the same, the failure is a recorded fallback (``fastsac.fallbacks``) and
:meth:`CapturedUpdate.replay` answers False from then on: the learner runs its update without a graph.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from fastsac.agents.compilation import autograd_ops_config, restore, snapshot
from fastsac.fallbacks import Fallback, fall_back

__all__ = ["CapturedUpdate", "restore", "snapshot"]

# The first call compiles; the later ones let lazily created state (allocator pools, cuBLAS workspaces) settle
# before the capture, which must not allocate anew.
WARMUP_CALLS = 3


class CapturedUpdate:
    """Replays ``fn(*buffers, flag)`` from CUDA graphs.

    Args:
        fn: the (compiled) update; it must only read its inputs and write tensors listed by ``mutable``; what it
            returns (a tensor or None) is the graph's :attr:`output`.
        device: the CUDA device.
        mutable: returns every tensor ``fn`` writes (restored after the warm-up runs of a capture).
        fallbacks: the learner's list of fallbacks; a failed capture is appended to it.
    """

    def __init__(self, fn: Callable[..., torch.Tensor | None], device: torch.device,
                 mutable: Callable[[], list[torch.Tensor]], fallbacks: list[Fallback] | None = None):
        self._fn, self._device, self._mutable = fn, device, mutable
        self._fallbacks = [] if fallbacks is None else fallbacks
        self._static: dict[tuple, list[torch.Tensor]] = {}  # per layout, its input buffers
        self._layout: tuple | None = None  # the layout of the last buffers() call: what replay() runs
        self._graphs: dict[tuple[tuple, bool], tuple[torch.cuda.CUDAGraph, torch.Tensor | None]] = {}
        self.output: torch.Tensor | None = None  #: what the last replayed graph returned (overwritten by its next)
        self.failed = False  #: a capture failed: replay() answers False and the caller runs the update itself

    def buffers(self, layout: Sequence[tuple[Sequence[int], torch.dtype]]) -> list[torch.Tensor]:
        """The static inputs for this ``[(shape, dtype), ...]`` layout (made on its first use, kept with the graphs
        captured on them); replay() then runs on them."""
        key = tuple((torch.Size(shape), dtype) for shape, dtype in layout)
        if key not in self._static:
            self._static[key] = [torch.empty(shape, dtype=dtype, device=self._device) for shape, dtype in key]
        self._layout = key
        return self._static[key]

    def replay(self, flag: bool) -> bool:
        """Run the graph for ``flag`` on the current layout's buffers (captured on first use); False, with nothing
        run, once a capture has failed."""
        if self.failed:
            return False
        if self._layout is None:
            raise RuntimeError("CapturedUpdate: call buffers(layout) before replay()")
        entry = self._graphs.get((self._layout, flag))
        if entry is None:
            try:
                entry = self._capture(self._static[self._layout], flag)
            except Exception as exc:  # e.g. an op that synchronises or allocates during the capture
                self.failed, self._graphs = True, {}
                self._fallbacks.append(fall_back("cuda_graph", "capturing the update in a CUDA graph",
                                                 "the update without a CUDA graph", exc))
                return False
            self._graphs[(self._layout, flag)] = entry
        graph, self.output = entry
        graph.replay()
        return True

    @property
    def num_graphs(self) -> int:
        return len(self._graphs)

    @property
    def flags(self) -> frozenset[bool]:
        """The flag values a graph has been captured for (on any layout)."""
        return frozenset(flag for _, flag in self._graphs)

    def _capture(self, buffers: list[torch.Tensor], flag: bool) -> tuple[torch.cuda.CUDAGraph, torch.Tensor | None]:
        args = (*buffers, flag)
        saved = snapshot(self._mutable())
        try:
            stream = torch.cuda.Stream(self._device)
            stream.wait_stream(torch.cuda.current_stream(self._device))
            with torch.cuda.stream(stream), autograd_ops_config():
                for _ in range(WARMUP_CALLS):
                    self._fn(*args)
            torch.cuda.current_stream(self._device).wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            # Captured on the warm-up stream (whatever the compiled code saw while warming up, it sees again);
            # thread_local: CUDA calls other threads (env workers, loggers) make during the capture are allowed.
            with torch.cuda.graph(graph, stream=stream, capture_error_mode="thread_local"), autograd_ops_config():
                output = self._fn(*args)
        finally:
            restore(self._mutable(), saved)
        return graph, output
