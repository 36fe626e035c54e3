"""Normalized networks: the critic options ``layernorm`` and ``simba`` (for SAC and CrossQ) and CrossQ's
batch-renormalized actor and critics. Network options, not algorithms: the learners build them from
``LearnerConfig.critic_network`` and ``agent`` (:func:`critic_member`), and :class:`~fastsac.agents.networks.EnsembleQ`
stacks the members as it stacks the plain MLPs.

``critic_network``:

- ``mlp``: ``Linear -> ReLU`` per hidden layer (the plain critic; SAC builds ``networks.mlp`` for it).
- ``layernorm``: ``Linear -> LayerNorm -> activation`` per hidden layer, the normalized critic of holosoma's FastSAC
  (amazon-far/holosoma, ``agents/fast_sac/fast_sac.py``, with SiLU and widths 768, 384, 192).
- ``simba``: SimBa's network (Lee et al. 2024, arXiv:2410.09754; ``scale_rl/agents/simba`` in
  github.com/dojeon-ai/SimbaV2): ``Linear`` embedding to the width, one pre-LayerNorm residual block per hidden
  size (``x + W2 relu(W1 LayerNorm(x))``, W1 widening 4x), a final LayerNorm, the linear head. He-normal blocks,
  orthogonal embedding and head, zero biases, as SimBa. All hidden sizes must be equal (the residual width);
  SimBa's critic is 2 blocks of 512. SimBa's running observation normalization is ``LearnerConfig.obs_norm``.

``LearnerConfig.activation`` (``relu`` or ``silu``) is the hidden activation of all three (and of the actor).
``actor_network="layernorm"`` is FastSAC's actor (:class:`LayerNormActor`): ``Linear -> LayerNorm -> activation`` per
hidden layer and zero-initialised heads, so every action starts at mean 0 with the middle of the log-std range.

With CrossQ (``batch_renorm`` given) batch renormalization is added as in CrossQ's code (github.com/adityab/CrossQ
``sbx/sac/policies.py``, and SBX): on the input and after every hidden layer's activation; combined with
``layernorm`` it follows the LayerNorm and activation (SBX's ``layer_norm`` option), and in ``simba`` it takes the
place of every LayerNorm (SBX's Simba CrossQ critic), input included.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from fastsac.agents.config import LearnerConfig
from fastsac.agents.networks import Actor
from fastsac.agents.normalization import BatchRenorm

__all__ = ["ACTIVATIONS", "CRITIC_NETWORKS", "BatchRenormActor", "LayerNormActor", "ResidualBlock", "Trunk",
           "batch_renorm_options", "critic_member", "sac_actor", "sac_critic_member"]

CRITIC_NETWORKS = ("mlp", "layernorm", "simba")
SIMBA_EXPANSION = 4  # SimBa's inverted bottleneck: the block's inner width is 4x its width
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"relu": nn.ReLU, "silu": nn.SiLU}


def _call(layer: nn.Module, x: torch.Tensor, training: bool) -> torch.Tensor:
    return layer(x, training) if getattr(layer, "takes_training", False) else layer(x)


class Trunk(nn.Module):
    """Layers applied in order; ``forward(x, training)`` hands the flag to the layers that take it (batch renorm)."""

    takes_training = True

    def __init__(self, layers: Sequence[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, training: bool = False) -> torch.Tensor:
        for layer in self.layers:
            x = _call(layer, x, training)
        return x


class ResidualBlock(nn.Module):
    """SimBa's pre-norm residual block: ``x + W2 act(W1 norm(x))`` with W1 ``width -> 4 width`` (act: ReLU, or
    ``activation``)."""

    takes_training = True

    def __init__(self, width: int, norm: nn.Module, activation: str = "relu"):
        super().__init__()
        self.norm = norm
        self.act = ACTIVATIONS[activation]()
        self.w1 = nn.Linear(width, SIMBA_EXPANSION * width)
        self.w2 = nn.Linear(SIMBA_EXPANSION * width, width)
        for w in (self.w1, self.w2):  # He-normal weights, zero biases (SimBa)
            nn.init.kaiming_normal_(w.weight, nonlinearity="relu")
            nn.init.zeros_(w.bias)

    def forward(self, x: torch.Tensor, training: bool = False) -> torch.Tensor:
        return x + self.w2(self.act(self.w1(_call(self.norm, x, training))))


def _orthogonal(layer: nn.Linear) -> nn.Linear:
    nn.init.orthogonal_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def _critic_layers(in_dim: int, out_dim: int, hidden: Sequence[int], network: str,
                   batch_renorm: dict[str, Any] | None, activation: str) -> list[nn.Module]:
    brn = (lambda n: BatchRenorm(n, **batch_renorm)) if batch_renorm is not None else None
    layers: list[nn.Module] = [brn(in_dim)] if brn else []
    if network == "simba":
        width = hidden[0]
        norm = brn or nn.LayerNorm
        layers.append(_orthogonal(nn.Linear(in_dim, width)))
        layers += [ResidualBlock(width, norm(width), activation) for _ in hidden]
        return [*layers, norm(width), _orthogonal(nn.Linear(width, out_dim))]
    last = in_dim
    for h in hidden:
        layers.append(nn.Linear(last, h))
        if network == "layernorm":
            layers.append(nn.LayerNorm(h))
        layers.append(ACTIVATIONS[activation]())
        if brn:
            layers.append(brn(h))
        last = h
    return [*layers, nn.Linear(last, out_dim)]


def critic_member(in_dim: int, out_dim: int, hidden: Sequence[int], network: str,
                  batch_renorm: dict[str, Any] | None = None, activation: str = "relu") -> Callable[[], nn.Module]:
    """A factory of one critic network ``in_dim -> out_dim`` for ``EnsembleQ(member=...)``.

    ``network`` is one of :data:`CRITIC_NETWORKS`; ``batch_renorm``: ``BatchRenorm`` keyword arguments (CrossQ),
    or None for none; ``activation``: a key of :data:`ACTIVATIONS`. Each call builds a freshly initialised
    network."""
    if network not in CRITIC_NETWORKS:
        raise ValueError(f"critic network {network!r} is not one of {', '.join(CRITIC_NETWORKS)}")
    if network == "simba" and len(set(hidden)) != 1:
        raise ValueError(f"the simba critic needs equal hidden sizes (the residual width), got {tuple(hidden)}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation {activation!r} is not one of {', '.join(ACTIVATIONS)}")
    return lambda: Trunk(_critic_layers(in_dim, out_dim, hidden, network, batch_renorm, activation))


def sac_critic_member(cfg: LearnerConfig, in_dim: int, out_dim: int) -> Callable[[], nn.Module] | None:
    """The SAC critics' member factory for ``cfg.critic_network`` and ``cfg.activation``; None for ``mlp`` with ReLU
    (``EnsembleQ``'s own MLP)."""
    if cfg.critic_network == "mlp" and cfg.activation == "relu":
        return None
    return critic_member(in_dim, out_dim, cfg.critic_widths, cfg.critic_network, activation=cfg.activation)


def sac_actor(cfg: LearnerConfig, obs_dim: int, action_dim: int) -> nn.Module:
    """SAC's continuous actor for ``cfg.actor_network`` and ``cfg.activation``: ``networks.Actor`` (mlp with ReLU,
    the fast acting path) or :class:`LayerNormActor` (with or without its LayerNorms)."""
    if cfg.actor_network == "mlp" and cfg.activation == "relu":
        return Actor(obs_dim, action_dim, cfg.hidden_sizes)
    return LayerNormActor(obs_dim, action_dim, cfg.hidden_sizes, activation=cfg.activation,
                          layer_norm=cfg.actor_network == "layernorm")


class LayerNormActor(nn.Module):
    """FastSAC's policy network (holosoma ``agents/fast_sac/fast_sac.py``, ``Actor``): ``Linear -> LayerNorm ->
    activation`` per hidden layer, then a mean head and a raw log-std head, both zero-initialised (FastSAC's), so the
    first policy is the same for every input: mean 0, log-std in the middle of its range (the fused op bounds it).
    ``layer_norm=False`` leaves the LayerNorms out (an ``mlp`` actor with another activation than ReLU; its heads
    keep PyTorch's initialisation, as ``networks.Actor``). ``forward(obs) -> (mean, raw_log_std)``."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes: Sequence[int], *, activation: str = "silu",
                 layer_norm: bool = True):
        super().__init__()
        if not hidden_sizes:
            raise ValueError("LayerNormActor: hidden_sizes must name at least one hidden layer")
        layers: list[nn.Module] = []
        last = obs_dim
        for h in hidden_sizes:
            layers += [nn.Linear(last, h), *([nn.LayerNorm(h)] if layer_norm else []), ACTIVATIONS[activation]()]
            last = h
        self.trunk = nn.Sequential(*layers)
        self.mean = nn.Linear(last, action_dim)
        self.log_std = nn.Linear(last, action_dim)
        if layer_norm:
            for head in (self.mean, self.log_std):
                nn.init.zeros_(head.weight)
                nn.init.zeros_(head.bias)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(obs)
        return self.mean(h), self.log_std(h)


def batch_renorm_options(cfg: LearnerConfig) -> dict[str, Any]:
    """``BatchRenorm`` keyword arguments from ``cfg`` (its other constants are CrossQ's: see the layer)."""
    return {"momentum": cfg.brn_momentum, "warmup_steps": cfg.brn_warmup_steps}


class BatchRenormActor(nn.Module):
    """CrossQ's policy network: batch renorm on the input and after every ``Linear -> ReLU``, then a mean head
    and a raw log-std head (bounded later by the fused op), as CrossQ's code (``bn_mode="brn_actor"``, its
    default). ``forward(obs, training=False) -> (mean, raw_log_std)``; acting and evaluation use the running
    statistics (``training=False``), the actor's loss uses the batch's."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes: Sequence[int], batch_renorm: dict[str, Any]):
        super().__init__()
        if not hidden_sizes:
            raise ValueError("BatchRenormActor: hidden_sizes must name at least one hidden layer")
        layers: list[nn.Module] = [BatchRenorm(obs_dim, **batch_renorm)]
        last = obs_dim
        for h in hidden_sizes:
            layers += [nn.Linear(last, h), nn.ReLU(), BatchRenorm(h, **batch_renorm)]
            last = h
        self.trunk = Trunk(layers)
        self.mean = nn.Linear(last, action_dim)
        self.log_std = nn.Linear(last, action_dim)

    def forward(self, obs: torch.Tensor, training: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(obs, training)
        return self.mean(h), self.log_std(h)

