"""Running an op's eager ``torch.autograd.Function`` with as little per-call cost as possible."""

from __future__ import annotations

import torch

__all__ = ["run"]


class _NoContext:
    """Stands in for the autograd context when a Function's forward runs without autograd."""

    def set_materialize_grads(self, value):
        pass

    def save_for_backward(self, *tensors):
        pass

    def mark_non_differentiable(self, *tensors):
        pass


_NO_CTX = _NoContext()


def run(function: type[torch.autograd.Function], differentiable: bool, *args):
    """``function.apply(*args)`` when a gradient is wanted (grad mode on and ``differentiable``), else its forward
    alone, without building an autograd node (a Function's ``apply`` costs a few microseconds on a CPU)."""
    if not torch.is_grad_enabled():
        return function.forward(_NO_CTX, *args)
    if differentiable:
        return function.apply(*args)
    with torch.no_grad():  # other inputs (noise, say) may require grad; they never get one
        return function.forward(_NO_CTX, *args)
