"""Networks for SAC: an MLP actor (continuous or discrete) and twin critics as one stacked ensemble.

The actor returns raw outputs; the distribution math lives in the fused ops (``fastsac.ops``):

- ``Actor(obs) -> (mean, raw_log_std)``; the op bounds ``raw_log_std`` smoothly into ``log_std_bounds``.
- ``DiscreteActor(obs) -> logits``.

``EnsembleQ`` keeps ``num_critics`` independent MLPs as *stacked* parameters (leading dimension = critic) and
evaluates all of them in one call, one batched matrix product per layer (LeanRL's layout). Each
member is initialised exactly like a separate ``nn.Sequential`` would be, so the twin critics are two independent
networks, only stored and run together: ``Q(x) -> (num_critics, batch, out_dim)``. A ``member`` factory builds
other member networks (the normalized critics of ``fastsac.agents.normed_networks``); their buffers (batch-renorm
running statistics) are stacked like the parameters and updated in place through the vmapped call.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["mlp", "run_relu_mlp", "Actor", "DiscreteActor", "EnsembleQ", "ContinuousTwinQ", "DiscreteTwinQ"]


def mlp(in_dim: int, out_dim: int, hidden_sizes: Sequence[int] = (256, 256)) -> nn.Sequential:
    """``Linear -> ReLU -> ... -> Linear`` with PyTorch's default initialisation."""
    layers: list[nn.Module] = []
    last = in_dim
    for h in hidden_sizes:
        layers += [nn.Linear(last, h), nn.ReLU()]
        last = h
    layers.append(nn.Linear(last, out_dim))
    return nn.Sequential(*layers)


def run_relu_mlp(layers: Sequence[nn.Linear], x: torch.Tensor, *, relu_after_last: bool) -> torch.Tensor:
    """``x`` through ``Linear -> ReLU -> ... -> Linear`` (and a last ReLU when asked), calling the functional
    ops directly: a module call costs a few microseconds of Python per layer, which dominates acting at batch 1."""
    last = len(layers) - 1
    for k, layer in enumerate(layers):
        x = F.linear(x, layer.weight, layer.bias)
        if k < last or relu_after_last:
            x = torch.relu(x)
    return x


def _linears(module: nn.Module) -> tuple[nn.Linear, ...]:
    return tuple(m for m in module if isinstance(m, nn.Linear))


class Actor(nn.Module):
    """Continuous policy: a ReLU trunk with a mean head and a raw log-std head (bounded later by the op)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes: Sequence[int] = (256, 256)):
        super().__init__()
        if not hidden_sizes:
            raise ValueError("Actor: hidden_sizes must name at least one hidden layer")
        self.trunk = nn.Sequential(*mlp(obs_dim, hidden_sizes[-1], hidden_sizes[:-1]), nn.ReLU())
        self.mean = nn.Linear(hidden_sizes[-1], action_dim)
        self.log_std = nn.Linear(hidden_sizes[-1], action_dim)
        self._trunk_layers = _linears(self.trunk)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = run_relu_mlp(self._trunk_layers, obs, relu_after_last=True)
        return F.linear(h, self.mean.weight, self.mean.bias), F.linear(h, self.log_std.weight, self.log_std.bias)


class DiscreteActor(nn.Module):
    """Discrete policy: an MLP from observations to one logit per action."""

    def __init__(self, obs_dim: int, num_actions: int, hidden_sizes: Sequence[int] = (256, 256)):
        super().__init__()
        self.net = mlp(obs_dim, num_actions, hidden_sizes)
        self._layers = _linears(self.net)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return run_relu_mlp(self._layers, obs, relu_after_last=False)


class EnsembleQ(nn.Module):
    """``num_critics`` MLPs ``in_dim -> out_dim`` stored as stacked parameters and run together, one batched matrix
    product (``baddbmm``) per layer for all members.

    Parameters are registered under the member's names with ``.`` replaced by ``_`` (``0_weight``, ``0_bias``,
    ...), each with a leading dimension of size ``num_critics``; so are a member's buffers, if it has any.
    ``member`` (default: ``mlp(in_dim, out_dim, hidden_sizes)``) builds one member; keyword arguments of
    ``forward`` are passed to every member (``training=`` for batch-renorm members). Default (MLP) members run
    with their layers written out, one ``baddbmm`` per layer; other members through ``torch.vmap`` of
    ``torch.func.functional_call``: the same products, but vmap costs much more per call in eager mode
    (measured: ~15x at batch 1, ~1.6x at batch 256 on a CPU).
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_sizes: Sequence[int] = (256, 256), num_critics: int = 2,
                 member: Callable[[], nn.Module] | None = None):
        super().__init__()
        members = [mlp(in_dim, out_dim, hidden_sizes) if member is None else member() for _ in range(num_critics)]
        params, buffers = torch.func.stack_module_state(members)
        self.num_critics = num_critics
        self._names = tuple(params)
        for name, value in params.items():
            self.register_parameter(name.replace(".", "_"), nn.Parameter(value.detach().clone()))
        self._buffer_names = tuple(buffers)
        for name, value in buffers.items():
            self.register_buffer(name.replace(".", "_"), value.detach().clone())
        # Default members: the Linear layers' parameter names, run explicitly. Others: a stateless template for
        # functional_call, kept out of the module tree (no parameters of its own).
        self._layers = None
        if member is None:
            linear = [k for k, layer in enumerate(members[0]) if isinstance(layer, nn.Linear)]
            self._layers = tuple((f"{k}_weight", f"{k}_bias") for k in linear)
        else:
            object.__setattr__(self, "_template", copy.deepcopy(members[0]).to("meta"))

    def stacked_parameters(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name.replace(".", "_")) for name in self._names}

    def _member(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(self._template, params, (x,))

    def forward(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        """``x`` (batch, in_dim), shared by all members -> (num_critics, batch, out_dim)."""
        if self._layers is not None and not kwargs:
            return self._forward_mlp(x)
        if not self._buffer_names and not kwargs:
            return torch.vmap(self._member, in_dims=(0, None))(self.stacked_parameters(), x)
        buffers = {name: getattr(self, name.replace(".", "_")) for name in self._buffer_names}

        def member(params, bufs, inputs):
            return torch.func.functional_call(self._template, (params, bufs), (inputs,), kwargs)

        return torch.vmap(member, in_dims=(0, 0, None))(self.stacked_parameters(), buffers, x)

    def _forward_mlp(self, x: torch.Tensor) -> torch.Tensor:
        """Feature-major: the activations are (num_critics, features, batch) and each layer is ``W @ h``, so every
        weight gradient (``dY @ h^T``) comes out in the weight's own (out, in) layout. Batch-major ``h @ W^T``
        gives it as (in, out) from ``bmm``'s backward, and the optimizer then reads it transposed (2.5x the cost of
        Adam over contiguous gradients, measured at two threads)."""
        h = x.t().expand(self.num_critics, x.shape[1], x.shape[0])
        last = len(self._layers) - 1
        for k, (w, b) in enumerate(self._layers):
            weight, bias = getattr(self, w), getattr(self, b)
            h = torch.baddbmm(bias.unsqueeze(2), weight, h)
            if k < last:
                h = torch.relu(h)
        return h.transpose(1, 2)


class ContinuousTwinQ(EnsembleQ):
    """Twin ``Q(s, a)``: ``forward(obs, action) -> (num_critics, batch)``; with ``outputs`` K > 1 (a categorical
    critic's logits over K atoms) ``-> (num_critics, batch, K)``."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes: Sequence[int] = (256, 256), num_critics: int = 2,
                 member: Callable[[], nn.Module] | None = None, outputs: int = 1):
        super().__init__(obs_dim + action_dim, outputs, hidden_sizes, num_critics, member)
        self.outputs = int(outputs)

    def forward(self, obs: torch.Tensor, action: torch.Tensor, **kwargs) -> torch.Tensor:  # type: ignore[override]
        out = super().forward(torch.cat([obs, action], dim=-1), **kwargs)
        return out.squeeze(-1) if self.outputs == 1 else out


class DiscreteTwinQ(EnsembleQ):
    """Twin ``Q(s, .)`` over all actions: ``forward(obs) -> (num_critics, batch, num_actions)``."""

    def __init__(self, obs_dim: int, num_actions: int, hidden_sizes: Sequence[int] = (256, 256), num_critics: int = 2,
                 member: Callable[[], nn.Module] | None = None):
        super().__init__(obs_dim, num_actions, hidden_sizes, num_critics, member)
