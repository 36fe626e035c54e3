"""FlashSAC's networks: a batch-normalized residual actor and a stacked categorical critic whose weights are kept
on spheres by a projection after every optimizer step.

The recipe is FlashSAC's (Holiday-Robot, arXiv:2604.04539; github.com/Holiday-Robot/FlashSAC, MIT, commit 87edc90,
``flash_rl/agents/flashSAC/layer.py`` and ``network.py``); the code here is our own. One trunk, for the actor and
for every critic member::

    x -> BN -> W_embed                                  (batch norm of the raw input, then a bias-free linear)
      -> x + relu(BN2(W2 relu(BN1(W1 x))))   x blocks   (W1: width -> 4 width, W2 back; bias-free)
      -> RMSNorm (learned gain, eps 1e-6)

then the actor's two heads (``mean`` and ``raw_log_std``: a bias-free weight plus a free bias each; the fused op
``fastsac.ops.squashed_gaussian(..., log_std_bounds=(-10, 2))`` bounds the raw log-std exactly as FlashSAC's
``lo + (hi - lo)(tanh(raw) + 1) / 2``), or the critic's categorical head (a bias-free weight to ``num_bins`` logits
plus a free bias; ``q_values`` is the expectation over the ``support``).

Batch norm takes its mode as a forward argument (``training``), like :class:`~fastsac.agents.normalization.
BatchRenorm`: training mode normalizes with the batch's mean and biased variance and moves the running statistics
in place (``lerp_`` with momentum 0.01; the running variance from the unbiased batch variance, as
``torch.nn.functional.batch_norm``); evaluation mode uses the running statistics and changes nothing. No Python
state changes per call, so the networks trace into one ``torch.compile(fullgraph=True)`` graph and replay safely
from a CUDA graph.

``project_()`` (FlashSAC's ``normalize_parameters``, to call after each optimizer step; the constructors call it
once after the orthogonal initialization): every bias-free weight gets unit-norm rows (``F.normalize(w, dim=-1,
eps=1e-8)``), every batch norm's (gain, bias) pair is rescaled jointly to ``sum(gain^2 + bias^2) = d`` and every
RMS gain to ``sum(gain^2) = d`` (per member in the stacked critic). The heads' biases are free. It runs in place
(the parameters keep their addresses, so optimizer state and CUDA graphs stay valid) and inside compiled code.

The critic's ``members`` networks are stored stacked (weights (M, out, in); batch-norm parameters and running
statistics (M, d)) and run in one batched matrix product per layer; each member is initialised independently.

Sizes for HalfCheetah (obs 17, action 6; checked in ``tests/agents/test_flash_networks.py``): ``FlashActor(17, 6)``
(width 128, 2 blocks) has 268,590 parameters; ``FlashCritic(23)`` (width 256, 2 blocks, 101 bins, 2 members)
has 2,171,686 (1,085,843 per member). Batch-norm running statistics are buffers, not counted.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fastsac.agents.categorical import expected_q, support_atoms

__all__ = ["FlashActor", "FlashBatchNorm", "FlashBlock", "FlashCritic", "FlashRMSNorm", "FlashTrunk", "UnitLinear",
           "project_unit_"]

EXPANSION = 4  # the block's inner width is 4x the width (FlashSAC, SimBa)
BN_MOMENTUM, BN_EPS = 0.01, 1e-5  # torch.nn.BatchNorm1d's convention: running <- running + 0.01 (batch - running)
RMS_EPS = 1e-6
UNIT_EPS = 1e-8  # F.normalize's floor on a row norm
SCALE_EPS = 1e-8  # added to the squared sums before the rsqrt of the gain rescaling


def _stacked_shape(members: int | None, *shape: int) -> tuple[int, ...]:
    if members is not None and members < 1:
        raise ValueError(f"members must be None (one plain network) or at least 1, got {members}")
    return shape if members is None else (members, *shape)


class UnitLinear(nn.Module):
    """A bias-free linear layer whose weight rows ``project_unit_`` keeps at unit norm; orthogonal initialization
    (gain 1), per member. ``members=None``: weight (out, in), ``x`` (B, in); ``members=M``: weight (M, out, in),
    ``x`` (M, B, in)."""

    def __init__(self, in_dim: int, out_dim: int, members: int | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(_stacked_shape(members, out_dim, in_dim)))
        with torch.no_grad():
            for w in self.weight.view(-1, out_dim, in_dim):
                nn.init.orthogonal_(w, gain=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight.dim() == 2:
            return F.linear(x, self.weight)
        # bmm(x, W^T): for (2, 1024, 256) @ (2, 256, 1024) on 2 CPU threads (torch 2.13), forward 5.9 ms vs
        # einsum's 7.0 ms; forward+backward 19.0 ms for bmm, einsum and a feature-major bmm(W, h) alike. The weight
        # gradient comes out contiguous in the weight's layout either way.
        return torch.bmm(x, self.weight.mT)

    def extra_repr(self) -> str:
        return f"weight={tuple(self.weight.shape)}"


class FlashBatchNorm(nn.Module):
    """Batch normalization over the batch dimension (dim -2) with the mode as an argument; see the module docstring.

    ``members=None``: gain, bias and running statistics (d,), ``x`` (B, d); ``members=M``: all (M, d), ``x``
    (M, B, d), each member with its own statistics. Training mode needs B >= 2 (the unbiased variance)."""

    takes_training = True

    def __init__(self, num_features: int, members: int | None = None, *, momentum: float = BN_MOMENTUM,
                 eps: float = BN_EPS):
        super().__init__()
        shape = _stacked_shape(members, num_features)
        self.num_features, self.momentum, self.eps = int(num_features), float(momentum), float(eps)
        self.weight = nn.Parameter(torch.ones(shape))
        self.bias = nn.Parameter(torch.zeros(shape))
        self.register_buffer("running_mean", torch.zeros(shape))
        self.register_buffer("running_var", torch.ones(shape))

    def forward(self, x: torch.Tensor, training: bool = False) -> torch.Tensor:
        gain, bias = self.weight.unsqueeze(-2), self.bias.unsqueeze(-2)
        if not training:
            mean, var = self.running_mean.unsqueeze(-2), self.running_var.unsqueeze(-2)
            return (x - mean) * torch.rsqrt(var + self.eps) * gain + bias
        n = x.shape[-2]
        if n < 2:
            raise ValueError(f"FlashBatchNorm: training mode needs at least 2 rows per batch, got {n}")
        mean = x.mean(dim=-2, keepdim=True)
        var = x.var(dim=-2, correction=0, keepdim=True)
        with torch.no_grad():
            self.running_mean.lerp_(mean.squeeze(-2), self.momentum)
            self.running_var.lerp_(var.squeeze(-2) * (n / (n - 1)), self.momentum)
        return (x - mean) * torch.rsqrt(var + self.eps) * gain + bias

    def extra_repr(self) -> str:
        return f"{tuple(self.weight.shape)}, momentum={self.momentum}, eps={self.eps}"


class FlashRMSNorm(nn.Module):
    """``x / sqrt(mean(x^2) + eps) * gain`` over the last dimension; gain (d,) or (M, d) for ``x`` (M, B, d)."""

    def __init__(self, num_features: int, members: int | None = None, eps: float = RMS_EPS):
        super().__init__()
        self.eps = float(eps)
        self.weight = nn.Parameter(torch.ones(_stacked_shape(members, num_features)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), eps=self.eps) * self.weight.unsqueeze(-2)

    def extra_repr(self) -> str:
        return f"{tuple(self.weight.shape)}, eps={self.eps}"


class FlashBlock(nn.Module):
    """``x + relu(BN2(W2 relu(BN1(W1 x))))``, W1 ``width -> 4 width``, W2 back, both bias-free."""

    takes_training = True

    def __init__(self, width: int, members: int | None = None):
        super().__init__()
        self.w1 = UnitLinear(width, EXPANSION * width, members)
        self.norm1 = FlashBatchNorm(EXPANSION * width, members)
        self.w2 = UnitLinear(EXPANSION * width, width, members)
        self.norm2 = FlashBatchNorm(width, members)

    def forward(self, x: torch.Tensor, training: bool = False) -> torch.Tensor:
        h = torch.relu(self.norm1(self.w1(x), training))
        return x + torch.relu(self.norm2(self.w2(h), training))


class FlashTrunk(nn.Module):
    """Input batch norm, bias-free embedding to ``width``, ``blocks`` residual blocks, RMS post-norm."""

    takes_training = True

    def __init__(self, in_dim: int, width: int, blocks: int, members: int | None = None):
        super().__init__()
        if in_dim < 1 or width < 1 or blocks < 0:
            raise ValueError(f"FlashTrunk: need in_dim >= 1, width >= 1, blocks >= 0; got {in_dim}, {width}, {blocks}")
        self.in_dim = int(in_dim)
        self.input_norm = FlashBatchNorm(in_dim, members)
        self.embed = UnitLinear(in_dim, width, members)
        self.blocks = nn.ModuleList(FlashBlock(width, members) for _ in range(blocks))
        self.post_norm = FlashRMSNorm(width, members)

    def forward(self, x: torch.Tensor, training: bool = False) -> torch.Tensor:
        x = self.embed(self.input_norm(x, training))
        for block in self.blocks:
            x = block(x, training)
        return self.post_norm(x)


@torch.no_grad()
def project_unit_(linears, batch_norms, rms_norms) -> None:
    """FlashSAC's weight projection, in place, for the given ``UnitLinear``, ``FlashBatchNorm`` and ``FlashRMSNorm``
    modules (sequences); see the module docstring. A handful of foreach ops for all tensors of a network, plus one
    norm or sum per tensor."""
    weights = [m.weight for m in linears]
    row_norms = [torch.linalg.vector_norm(w, dim=-1, keepdim=True).clamp_min_(UNIT_EPS) for w in weights]
    torch._foreach_div_(weights, row_norms)
    nb = len(batch_norms)
    gains = [m.weight for m in batch_norms] + [m.weight for m in rms_norms]
    biases = [m.bias for m in batch_norms]
    squares = torch._foreach_mul(gains, gains)
    if nb:
        torch._foreach_addcmul_(squares[:nb], biases, biases)
    factors = [s.sum(dim=-1, keepdim=True) for s in squares]
    torch._foreach_add_(factors, SCALE_EPS)
    torch._foreach_rsqrt_(factors)
    torch._foreach_mul_(factors, [math.sqrt(g.shape[-1]) for g in gains])
    torch._foreach_mul_(gains + biases, factors + factors[:nb])


class _Projected(nn.Module):
    """Collects the network's projected modules once (after the subclass built them) and projects them."""

    def _collect(self) -> None:
        self._units = tuple(m for m in self.modules() if isinstance(m, UnitLinear))
        self._batch_norms = tuple(m for m in self.modules() if isinstance(m, FlashBatchNorm))
        self._rms_norms = tuple(m for m in self.modules() if isinstance(m, FlashRMSNorm))
        self.project_()

    def project_(self) -> None:
        """FlashSAC's ``normalize_parameters``: unit weight rows, BN and RMS gains rescaled to squared sum d; in
        place, no gradient. Call after every optimizer step of this network."""
        project_unit_(self._units, self._batch_norms, self._rms_norms)


def _check_width(who: str, what: str, got: int, want: int) -> None:
    if got != want:
        raise ValueError(f"{who}: {what} has {got} features, the network was built for {want}")


class FlashActor(_Projected):
    """FlashSAC's policy network: ``forward(obs, training=False) -> (mean, raw_log_std)``, each (B, action_dim).

    Args:
        obs_dim, action_dim: input and output sizes.
        width: the residual width (FlashSAC's actor: 128).
        blocks: the number of residual blocks (FlashSAC: 2).
    ``training=True``: batch statistics (and a running-statistics update); False (acting, targets): running ones.
    """

    def __init__(self, obs_dim: int, action_dim: int, width: int = 128, blocks: int = 2):
        super().__init__()
        self.obs_dim, self.action_dim = int(obs_dim), int(action_dim)
        self.trunk = FlashTrunk(obs_dim, width, blocks)
        self.mean = UnitLinear(width, action_dim)
        self.mean_bias = nn.Parameter(torch.zeros(action_dim))
        self.log_std = UnitLinear(width, action_dim)
        self.log_std_bias = nn.Parameter(torch.zeros(action_dim))
        self._collect()

    def forward(self, obs: torch.Tensor, training: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        if obs.dim() != 2:
            raise ValueError(f"FlashActor: obs must be (batch, {self.obs_dim}), got shape {tuple(obs.shape)}")
        _check_width("FlashActor", "obs", obs.shape[-1], self.obs_dim)
        h = self.trunk(obs, training)
        return F.linear(h, self.mean.weight, self.mean_bias), F.linear(h, self.log_std.weight, self.log_std_bias)


class FlashCritic(_Projected):
    """FlashSAC's ``members`` categorical critics, stacked: ``forward(obs, action, training=False) -> logits``
    (M, B, num_bins) over the ``support`` ``linspace(v_min, v_max, num_bins)``; ``q_values(logits) -> (M, B)``.

    Args:
        in_dim: obs_dim + action_dim (obs and action are concatenated; every member sees the same input).
        width, blocks: the residual width and depth (FlashSAC's critic: 256 and 2).
        num_bins, v_min, v_max: the categorical support (FlashSAC: 101 bins on [-5, 5]).
        members: the number of critics (2: clipped double Q).
    """

    def __init__(self, in_dim: int, width: int = 256, blocks: int = 2, num_bins: int = 101, v_min: float = -5.0,
                 v_max: float = 5.0, members: int = 2):
        super().__init__()
        if num_bins < 2 or not v_min < v_max or members < 1:
            raise ValueError(f"FlashCritic: need num_bins >= 2, v_min < v_max, members >= 1; got {num_bins}, "
                             f"{v_min}, {v_max}, {members}")
        self.in_dim, self.members, self.num_bins = int(in_dim), int(members), int(num_bins)
        self.v_min, self.v_max = float(v_min), float(v_max)
        self.trunk = FlashTrunk(in_dim, width, blocks, members)
        self.head = UnitLinear(width, num_bins, members)
        self.head_bias = nn.Parameter(torch.zeros(members, num_bins))
        self.register_buffer("support", support_atoms(num_bins, v_min, v_max))
        self._collect()

    def forward(self, obs: torch.Tensor, action: torch.Tensor, training: bool = False) -> torch.Tensor:
        if obs.dim() != 2 or action.dim() != 2 or obs.shape[0] != action.shape[0]:
            raise ValueError(f"FlashCritic: obs and action must be (batch, features) with one batch size, got "
                             f"{tuple(obs.shape)} and {tuple(action.shape)}")
        _check_width("FlashCritic", "cat(obs, action)", obs.shape[-1] + action.shape[-1], self.in_dim)
        x = torch.cat([obs, action], dim=-1)
        h = self.trunk(x.unsqueeze(0).expand(self.members, *x.shape), training)
        return torch.baddbmm(self.head_bias.unsqueeze(-2), h, self.head.weight.mT)

    def q_values(self, logits: torch.Tensor) -> torch.Tensor:
        """The expected value of each categorical distribution: (M, B, num_bins) logits -> (M, B)."""
        return expected_q(logits, self.support)

    def extra_repr(self) -> str:
        return f"members={self.members}, num_bins={self.num_bins}, support=[{self.v_min}, {self.v_max}]"
