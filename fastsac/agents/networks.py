"""Networks for SAC: an MLP actor (continuous or discrete) and twin critics as one stacked ensemble.

The actor returns raw outputs; the distribution math lives in the fused ops (``fastsac.ops``):

- ``Actor(obs) -> (mean, raw_log_std)``; the op bounds ``raw_log_std`` smoothly into ``log_std_bounds``.
- ``DiscreteActor(obs) -> logits``.

``EnsembleQ`` keeps ``num_critics`` independent MLPs as *stacked* parameters (leading dimension = critic) and
evaluates all of them in one call with ``torch.vmap`` over ``torch.func.functional_call`` (LeanRL's layout). Each
member is initialised exactly like a separate ``nn.Sequential`` would be, so the twin critics are two independent
networks, only stored and run together: ``Q(x) -> (num_critics, batch, out_dim)``. A ``member`` factory builds
other member networks (the normalized critics of ``fastsac.agents.normed_networks``); their buffers (batch-renorm
running statistics) are stacked like the parameters and updated in place through the vmapped call.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import nn

__all__ = ["mlp", "Actor", "DiscreteActor", "EnsembleQ", "ContinuousTwinQ", "DiscreteTwinQ"]


def mlp(in_dim: int, out_dim: int, hidden_sizes: Sequence[int] = (256, 256)) -> nn.Sequential:
    """``Linear -> ReLU -> ... -> Linear`` with PyTorch's default initialisation."""
    layers: list[nn.Module] = []
    last = in_dim
    for h in hidden_sizes:
        layers += [nn.Linear(last, h), nn.ReLU()]
        last = h
    layers.append(nn.Linear(last, out_dim))
    return nn.Sequential(*layers)


class Actor(nn.Module):
    """Continuous policy: a ReLU trunk with a mean head and a raw log-std head (bounded later by the op)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes: Sequence[int] = (256, 256)):
        super().__init__()
        if not hidden_sizes:
            raise ValueError("Actor: hidden_sizes must name at least one hidden layer")
        self.trunk = nn.Sequential(*mlp(obs_dim, hidden_sizes[-1], hidden_sizes[:-1]), nn.ReLU())
        self.mean = nn.Linear(hidden_sizes[-1], action_dim)
        self.log_std = nn.Linear(hidden_sizes[-1], action_dim)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(obs)
        return self.mean(h), self.log_std(h)


class DiscreteActor(nn.Module):
    """Discrete policy: an MLP from observations to one logit per action."""

    def __init__(self, obs_dim: int, num_actions: int, hidden_sizes: Sequence[int] = (256, 256)):
        super().__init__()
        self.net = mlp(obs_dim, num_actions, hidden_sizes)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)


class EnsembleQ(nn.Module):
    """``num_critics`` MLPs ``in_dim -> out_dim`` stored as stacked parameters and run together under vmap.

    Parameters are registered under the member's names with ``.`` replaced by ``_`` (``0_weight``, ``0_bias``,
    ...), each with a leading dimension of size ``num_critics``; so are a member's buffers, if it has any.
    ``member`` (default: ``mlp(in_dim, out_dim, hidden_sizes)``) builds one member; keyword arguments of
    ``forward`` are passed to every member (``training=`` for batch-renorm members).
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
        # A stateless template for functional_call; kept out of the module tree (no parameters of its own).
        object.__setattr__(self, "_template", copy.deepcopy(members[0]).to("meta"))

    def stacked_parameters(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name.replace(".", "_")) for name in self._names}

    def _member(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(self._template, params, (x,))

    def forward(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        """``x`` (batch, in_dim), shared by all members -> (num_critics, batch, out_dim)."""
        if not self._buffer_names and not kwargs:
            return torch.vmap(self._member, in_dims=(0, None))(self.stacked_parameters(), x)
        buffers = {name: getattr(self, name.replace(".", "_")) for name in self._buffer_names}

        def member(params, bufs, inputs):
            return torch.func.functional_call(self._template, (params, bufs), (inputs,), kwargs)

        return torch.vmap(member, in_dims=(0, 0, None))(self.stacked_parameters(), buffers, x)


class ContinuousTwinQ(EnsembleQ):
    """Twin ``Q(s, a)``: ``forward(obs, action) -> (num_critics, batch)``."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes: Sequence[int] = (256, 256), num_critics: int = 2,
                 member: Callable[[], nn.Module] | None = None):
        super().__init__(obs_dim + action_dim, 1, hidden_sizes, num_critics, member)

    def forward(self, obs: torch.Tensor, action: torch.Tensor, **kwargs) -> torch.Tensor:  # type: ignore[override]
        return super().forward(torch.cat([obs, action], dim=-1), **kwargs).squeeze(-1)


class DiscreteTwinQ(EnsembleQ):
    """Twin ``Q(s, .)`` over all actions: ``forward(obs) -> (num_critics, batch, num_actions)``."""

    def __init__(self, obs_dim: int, num_actions: int, hidden_sizes: Sequence[int] = (256, 256), num_critics: int = 2,
                 member: Callable[[], nn.Module] | None = None):
        super().__init__(obs_dim, num_actions, hidden_sizes, num_critics, member)
