"""Normalization layers of the learners' networks: :class:`BatchRenorm` (CrossQ) and :class:`RunningObsNorm`
(SimBa's running observation statistics); and FlashSAC's reward scaling, :class:`ReturnScale`.

Both keep their statistics as *buffers updated in place* inside ``forward`` / ``update_``, with no Python-side
state that changes per step (the batch-renorm step counter is a device tensor too). That is what lets them live
inside the learner's one compiled update graph and inside its CUDA graph: a replay re-runs the in-place updates on
the same addresses, the warm-up switch is a ``where`` on the counter rather than a Python branch, and nothing is
read back to the host. The buffers are in ``state_dict``, so a checkpoint restores them exactly.

Batch renormalization (Ioffe 2017, "Batch Renormalization: Towards Reducing Minibatch Dependence in
Batch-Normalized Models", arXiv:1702.03275, Algorithm 1), for a batch ``x`` (B, C) in training mode::

    mu_B = mean(x),  sigma_B = sqrt(var(x) + eps)                 (biased batch variance)
    sigma = sqrt(running_var + eps)
    r = stop_grad(clip(sigma_B / sigma, 1/r_max, r_max))
    d = stop_grad(clip((mu_B - running_mean) / sigma, -d_max, d_max))
    y = weight * ((x - mu_B) / sigma_B * r + d) + bias
    running_mean <- running_mean + (1 - momentum) * (mu_B - running_mean)      (r, d use the values before this)
    running_var  <- running_var  + (1 - momentum) * (var(x) - running_var)
    steps <- steps + 1

and in evaluation mode ``y = weight * (x - running_mean) / sigma + bias``. Warm-up as in CrossQ's reference
implementation (Bhatt et al. 2024, github.com/adityab/CrossQ, ``sbx/sac/policies.py``; SBX ``BatchRenorm``
likewise): for the first ``warmup_steps`` training calls ``r_max = 1`` and ``d_max = 0``, so ``r = 1``, ``d = 0``
and the layer is exactly batch normalization while the running statistics build up; from then on the clipping
bounds are ``r_max = 3``, ``d_max = 5``. (Ioffe relaxes the bounds linearly instead; CrossQ switches them at once.)
The running statistics follow CrossQ's code too: an exponential average of the batch *variance* (Ioffe averages
``sigma_B``), ``momentum = 0.99``, ``eps = 1e-3`` (Flax's default, which both CrossQ implementations use).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["BatchRenorm", "ReturnScale", "RunningObsNorm"]


class BatchRenorm(nn.Module):
    """Batch renormalization over dim 0 of (batch, num_features) inputs; see the module docstring for the math.

    ``forward(x, training)`` takes the mode explicitly (``training=False``: the running statistics, nothing
    changes) instead of reading ``self.training``, so one learner update can use the same layer in both modes
    (CrossQ: the critic in training mode for its own loss, in evaluation mode inside the actor's loss).

    Args:
        num_features: C, the size of the last input dimension.
        momentum: the running statistics' decay per training call (CrossQ: 0.99).
        eps: added to the variances (CrossQ: 1e-3).
        warmup_steps: training calls during which the layer is plain batch normalization (CrossQ: 100,000).
        r_max, d_max: the clipping bounds of ``r`` and ``d`` after the warm-up (CrossQ and Ioffe: 3 and 5).
    """

    takes_training = True  # networks pass their training flag to layers that have this attribute

    def __init__(self, num_features: int, *, momentum: float = 0.99, eps: float = 1e-3, warmup_steps: int = 100_000,
                 r_max: float = 3.0, d_max: float = 5.0):
        super().__init__()
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"BatchRenorm: momentum must be in [0, 1), got {momentum}")
        if warmup_steps < 0 or eps <= 0.0 or r_max < 1.0 or d_max < 0.0:
            raise ValueError(f"BatchRenorm: need warmup_steps >= 0, eps > 0, r_max >= 1, d_max >= 0; got "
                             f"{warmup_steps}, {eps}, {r_max}, {d_max}")
        self.num_features = int(num_features)
        self.momentum, self.eps = float(momentum), float(eps)
        self.warmup_steps, self.r_max, self.d_max = int(warmup_steps), float(r_max), float(d_max)
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))

    def clip_bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(r_max, d_max)`` now: ``(1, 0)`` during the warm-up (batch normalization), then the layer's bounds."""
        warm = self.steps >= self.warmup_steps
        one = torch.ones((), dtype=self.running_var.dtype, device=self.running_var.device)
        return torch.where(warm, one * self.r_max, one), torch.where(warm, one * self.d_max, one * 0.0)

    def forward(self, x: torch.Tensor, training: bool = False) -> torch.Tensor:
        if not training:
            return (x - self.running_mean) * torch.rsqrt(self.running_var + self.eps) * self.weight + self.bias
        batch_mean = x.mean(dim=0)
        batch_var = x.var(dim=0, correction=0)
        sigma_b = torch.sqrt(batch_var + self.eps)
        with torch.no_grad():
            sigma = torch.sqrt(self.running_var + self.eps)
            r_max, d_max = self.clip_bounds()
            r = torch.clamp(sigma_b / sigma, 1.0 / r_max, r_max)
            d = torch.clamp((batch_mean - self.running_mean) / sigma, -d_max, d_max)
            # In place (mul_/add_, not lerp_: vmap has batching rules for these) after r and d are formed.
            self.running_mean.mul_(self.momentum).add_(batch_mean, alpha=1.0 - self.momentum)
            self.running_var.mul_(self.momentum).add_(batch_var, alpha=1.0 - self.momentum)
            self.steps.add_(1)
        return ((x - batch_mean) / sigma_b * r + d) * self.weight + self.bias

    def extra_repr(self) -> str:
        return (f"{self.num_features}, momentum={self.momentum}, eps={self.eps}, warmup_steps={self.warmup_steps}, "
                f"r_max={self.r_max}, d_max={self.d_max}")


class RunningObsNorm(nn.Module):
    """Observation normalization by running statistics, ``(obs - mean) / sqrt(var + eps)``, as SimBa's RSNorm
    (Lee et al. 2024, "SimBa: Simplicity Bias for Scaling Up Parameters in Deep Reinforcement Learning",
    arXiv:2410.09754; ``ObservationNormalizer`` in github.com/dojeon-ai/SimbaV2).

    ``update_(obs)`` merges a batch into the mean, variance and count (Chan et al.'s parallel formula, exact for
    any batch split) in float64 buffers, in place; before the first update the layer is the identity. ``eps``:
    1e-8 as SimBa. ``forward`` returns the input's dtype.
    """

    def __init__(self, num_features: int, eps: float = 1e-8):
        super().__init__()
        self.eps = float(eps)
        self.register_buffer("mean", torch.zeros(num_features, dtype=torch.float64))
        self.register_buffer("var", torch.ones(num_features, dtype=torch.float64))
        # Shape (1,), not 0-dim: torch.compile (2.13, aot_eager and inductor) silently drops in-place writes to a
        # 0-dim float64 buffer (tests/agents/test_normed_networks.py compiles this update to catch a regression).
        self.register_buffer("count", torch.zeros(1, dtype=torch.float64))

    @torch.no_grad()
    def update_(self, obs: torch.Tensor) -> None:
        """Merge the rows of ``obs`` (N, num_features) into the statistics."""
        x = obs.detach().to(torch.float64)
        n = x.shape[0]
        batch_mean, batch_var = x.mean(dim=0), x.var(dim=0, correction=0)
        total = self.count + n
        delta = batch_mean - self.mean
        m2 = self.var * self.count + batch_var * n + delta.square() * (self.count * n / total)
        self.mean.add_(delta * (n / total))
        self.var.copy_(m2 / total)
        self.count.copy_(total)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return ((obs.to(torch.float64) - self.mean) * torch.rsqrt(self.var + self.eps)).to(obs.dtype)

    def extra_repr(self) -> str:
        return f"{self.mean.numel()}, eps={self.eps}"


class ReturnScale(nn.Module):
    """Rewards divided by the scale of the running discounted return, FlashSAC's reward normalization
    (Holiday-Robot, arXiv:2604.04539; github.com/Holiday-Robot/FlashSAC, MIT, commit 87edc90,
    ``flash_rl/agents/utils/reward_normalization.py``; our code is our own).

    Per env a running discounted return and, over all envs, its largest magnitude and running mean and variance::

        G <- gamma (1 - done) G + r            (done = terminated or truncated: a new episode starts at 0)
        G_max <- max(G_max, max_envs |G|)
        mean, var, count <- Chan et al.'s parallel update with the batch of the num_envs new G values

    and a reward is scaled as ``r / max(sqrt(var + eps), G_max / g_max)``: by the return's standard deviation, but
    never so little that a return of G_max would leave the critic's support (``g_max``: its half-width, FlashSAC
    5). The statistics start as gymnasium's RunningMeanStd (mean 0, var 1, count 1e-4), so the first scale is 1 and
    no scale is ever 0 (``sqrt(var + 1e-8) >= 1e-4``). FlashSAC's copy of RunningMeanStd starts the count at 0 and
    adds the 1e-4 only to the old variance's weight; the difference is O(1e-4 / num_envs) on the first update and
    vanishes after.

    Everything is a float64 buffer updated in place on the device: the count passes 2^24 after 16.7M env steps
    (16k steps of 1,024 envs), where float32 stops counting exactly, and the mean and variance average over as
    many steps; these are a few numbers per env, so float64 costs nothing measurable even on a GPU. ``update_``
    reads nothing back to the host (no ``.item()``), ``forward`` traces into a compiled update, and
    ``state_dict`` holds every buffer, so a checkpoint resumes exactly. The scalars have shape (1,), not (): see
    :class:`RunningObsNorm`'s count (torch.compile drops in-place writes to 0-dim float64 buffers).

    Args:
        num_envs: the number of envs stepped together (each has its own running return); ``update_`` checks it.
        gamma: the discount of the running return (the learner's).
        g_max: the largest return the scaled rewards may reach, FlashSAC 5 (the categorical support's half-width).
        eps: added to the variance under the square root (FlashSAC 1e-8).
        count_eps: the initial count, the prior weight of var = 1 (gymnasium's RunningMeanStd: 1e-4).
    """

    def __init__(self, num_envs: int, *, gamma: float, g_max: float = 5.0, eps: float = 1e-8,
                 count_eps: float = 1e-4):
        super().__init__()
        if num_envs < 1 or not 0.0 <= gamma <= 1.0 or g_max <= 0.0 or eps <= 0.0 or count_eps <= 0.0:
            raise ValueError(f"ReturnScale: need num_envs >= 1, 0 <= gamma <= 1, g_max > 0, eps > 0, count_eps > 0; "
                             f"got {num_envs}, {gamma}, {g_max}, {eps}, {count_eps}")
        self.num_envs, self.gamma, self.g_max = int(num_envs), float(gamma), float(g_max)
        self.eps, self.count_eps = float(eps), float(count_eps)
        f64 = torch.float64
        self.register_buffer("returns", torch.zeros(self.num_envs, dtype=f64))  # G per env
        self.register_buffer("return_max", torch.zeros(1, dtype=f64))  # G_max
        self.register_buffer("mean", torch.zeros(1, dtype=f64))
        self.register_buffer("var", torch.ones(1, dtype=f64))
        self.register_buffer("count", torch.full((1,), self.count_eps, dtype=f64))

    @torch.no_grad()
    def update_(self, reward: torch.Tensor, terminated: torch.Tensor, truncated: torch.Tensor) -> None:
        """One env step of every env: ``reward``, ``terminated``, ``truncated`` each (num_envs,) (done flags bool
        or 0/1 numbers). Advances the running returns, then merges them into the statistics."""
        for name, t in (("reward", reward), ("terminated", terminated), ("truncated", truncated)):
            if tuple(t.shape) != (self.num_envs,):
                raise ValueError(f"ReturnScale.update_: {name} must have shape ({self.num_envs},) (one per env), "
                                 f"got {tuple(t.shape)}")
        done = terminated.to(torch.bool) | truncated.to(torch.bool)
        g = self.returns
        g.mul_((~done).to(g.dtype) * self.gamma).add_(reward.to(g.dtype))  # gamma applied in float64
        self.return_max.copy_(torch.maximum(self.return_max, g.abs().amax().reshape(1)))
        n = self.num_envs
        batch_mean, batch_var = g.mean().reshape(1), g.var(correction=0).reshape(1)
        total = self.count + n
        delta = batch_mean - self.mean
        m2 = self.var * self.count + batch_var * n + delta.square() * (self.count * n / total)
        self.mean.add_(delta * (n / total))
        self.var.copy_(m2 / total)
        self.count.copy_(total)

    def scale(self) -> torch.Tensor:
        """The divisor now, ``max(sqrt(var + eps), G_max / g_max)`` (float64, shape (1,))."""
        return torch.maximum(torch.sqrt(self.var + self.eps), self.return_max / self.g_max)

    def forward(self, reward: torch.Tensor) -> torch.Tensor:
        """``reward / scale()`` in ``reward``'s dtype and shape (any shape: the scale is one number)."""
        return (reward.to(torch.float64) / self.scale()).to(reward.dtype)

    def extra_repr(self) -> str:
        return f"num_envs={self.num_envs}, gamma={self.gamma}, g_max={self.g_max}, eps={self.eps}"
