"""The learned entropy coefficient for on-policy agents (PPO, A2C): :class:`EntropyController`.

Same machinery as the SAC temperature (:mod:`fastsac.entropy.temperature`): ``log_alpha``, its optimizer, a target
that may follow a schedule, exact checkpoints. Only the loss differs: it is driven by a measured entropy rather
than by sampled log-probabilities.
"""

from __future__ import annotations

import torch

from fastsac.entropy.schedules import Schedule, _real
from fastsac.entropy.temperature import _compute_dtype, _float_tensor, _Temperature

__all__ = ["EntropyController"]


class EntropyController(_Temperature):
    """Learned entropy coefficient for on-policy agents (PPO, A2C): hold the policy's entropy at a target.

    Each :meth:`step` takes the mean entropy measured on the latest rollout or minibatch and takes one optimizer
    step on ``loss = log_alpha * (entropy - target)``: alpha (the entropy bonus weight) rises while the entropy
    is below the target and falls while above. Use the returned alpha as the entropy coefficient of the next
    update. (To anneal the coefficient by hand instead, use a Schedule directly: ``coef = schedule.value(step)``.)

    Args:
        target_entropy: the entropy level to hold, a float or a Schedule over calls to ``step``.
        initial_alpha: starting coefficient (> 0). Default 0.01, the usual PPO ``ent_coef``.
        optim: optimizer class, as :class:`EntropyModule`.
        lr: learning rate (> 0). Default 0.01: one step per update (hundreds to thousands per run) and Adam moves
            ``log_alpha`` by about ``lr`` per step, so alpha can change by e^10 over 1000 updates.
        device: where ``log_alpha`` and ``target_tensor`` live.
    """

    def __init__(self, target_entropy: float | Schedule, *, initial_alpha: float = 0.01,
                 optim: type[torch.optim.Optimizer] = torch.optim.Adam, lr: float = 1e-2,
                 device: torch.device | str | None = None):
        super().__init__(initial_alpha=initial_alpha, optim=optim, lr=lr, device=device, target=target_entropy,
                         fixed_alpha=False, alpha_schedule=None, owner=type(self).__name__)

    def compute_loss(self, entropy: torch.Tensor | float) -> torch.Tensor:
        """``log_alpha * (mean(entropy) - target)``; ``entropy`` is a float or a tensor of per-sample entropies
        (averaged, no gradient reaches it)."""
        if isinstance(entropy, torch.Tensor):
            _float_tensor("entropy", entropy, "EntropyController.compute_loss")
            mean = entropy.detach().to(_compute_dtype(entropy.dtype)).mean()
        else:
            mean = torch.tensor(_real("entropy", entropy, "EntropyController.compute_loss"),
                                dtype=torch.float32, device=self.device)
        return self.log_alpha * (mean - self.target_tensor)

    def step(self, entropy: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
        """One controller update from a measured mean entropy; returns ``(alpha, loss)`` as detached 0-dim
        tensors, ``alpha`` being the value *after* the update. Also advances the target schedule by one."""
        loss = self.compute_loss(entropy)
        self.gradient_step(loss)
        return self.alpha.detach(), loss.detach()

    def __repr__(self) -> str:
        target = self._target_schedule if self._target_schedule.steps else self._target
        return (f"EntropyController(target_entropy={target}, initial_alpha={self.initial_alpha}, "
                f"optim={type(self.optim).__name__}, lr={self.lr}, device={self.device})")
