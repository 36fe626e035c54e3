"""A foreach Adam that traces into a ``torch.compile(fullgraph=True)`` graph.

``torch.optim.Optimizer.step`` calls ``torch._dynamo.graph_break()``, so a compiled SAC update that steps a
``torch.optim.Adam`` splits into several graphs. ``ForeachAdam`` is the same algorithm written with
``torch._foreach_*`` ops on plain tensors: no Python-side state that changes per step (the step count is a device
tensor and the bias corrections are computed from it on device), no ``.grad`` attributes (gradients are passed in),
and no host synchronisation. It is safe to capture in a CUDA graph: every state tensor is updated in place.

The arithmetic follows ``torch.optim.Adam`` (``foreach`` implementation, ``amsgrad=False``, ``maximize=False``)::

    g   = grad + weight_decay * param                      (only when weight_decay != 0; L2, as torch.optim.Adam)
    m   = lerp(m, g, 1 - beta1)
    v   = beta2 * v + (1 - beta2) * g * g
    param -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

Changing ``lr``/``betas``/``eps`` on an instance used inside a compiled function triggers a recompile (they are
Python floats, specialised into the graph).

The two step factors ``-lr / (1 - beta1**t)`` and ``sqrt(1 - beta2**t)`` are computed one step ahead, at the end of
step ``t - 1`` (or when the state is set), into 0-dim tensors that step ``t`` reads: the same float64 arithmetic
and the same bits, but inside a compiled step they are then loads. Computed in the step itself, inductor inlines
the scalar chain (two float64 products, a ``sqrt`` and a division) into every 16-float vector of every parameter
(measured: 1.3x the cost of the whole Adam step over the SAC networks at two threads).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch

__all__ = ["CosineLR", "ForeachAdam", "lr_schedule"]


class CosineLR:
    """A cosine learning-rate schedule over an optimizer's own steps, computed on the device (so it traces into a
    compiled step and replays in a CUDA graph): the step after ``k`` steps uses
    ``end + (peak - end) * (1 + cos(pi * min(k, steps) / steps)) / 2``, from ``peak`` to ``end = peak *
    end_ratio`` at ``steps`` steps and ``end`` after. This is optax's ``cosine_decay_schedule`` as FlashSAC's
    ``warmup_cosine_decay_scheduler`` applies it through ``torch.optim.lr_scheduler.LambdaLR`` (stepped after each
    optimizer step; github.com/Holiday-Robot/FlashSAC, flash_rl/agents/utils/scheduler.py at 87edc90) with its
    warm-up from the peak to the peak, i.e. none."""

    def __init__(self, peak: float, end_ratio: float, steps: int):
        if not peak >= 0.0 or not 0.0 < end_ratio <= 1.0 or int(steps) < 1:
            raise ValueError(f"CosineLR: need peak >= 0, end_ratio in (0, 1], steps >= 1; got {peak}, {end_ratio}, "
                             f"{steps}")
        self.peak, self.end, self.steps = float(peak), float(peak) * float(end_ratio), int(steps)

    def __call__(self, done: torch.Tensor) -> torch.Tensor:
        """The learning rate (float64, 0-dim) of the step after ``done`` steps (a 0-dim tensor)."""
        progress = done.double().clamp(max=self.steps) / self.steps
        return self.end + (self.peak - self.end) * 0.5 * (1.0 + torch.cos(torch.pi * progress))

    def __repr__(self) -> str:
        return f"CosineLR(peak={self.peak}, end={self.end}, steps={self.steps})"


def lr_schedule(cfg: Any, lr: float) -> CosineLR | None:
    """The learning-rate schedule of an optimizer of peak ``lr`` under ``cfg.lr_decay`` (a ``LearnerConfig``; None:
    a constant rate)."""
    return CosineLR(lr, cfg.lr_end_ratio, cfg.lr_decay_updates) if cfg.lr_decay == "cosine" else None


class ForeachAdam:
    """Adam over a fixed list of tensors, stepped with explicit gradients: ``opt.step(grads)``.

    Args:
        params: the tensors to update in place (typically ``nn.Parameter`` leaves; updated under ``no_grad``).
        lr, betas, eps, weight_decay: as ``torch.optim.Adam`` (weight decay is L2 added to the gradient; off by
            default).
        schedule: a learning-rate schedule (:class:`CosineLR`) mapping the steps done (a device tensor) to the
            next step's learning rate, evaluated on the device where the step factors are prepared; ``lr`` is then
            the schedule's peak, kept for ``state_dict`` and ``repr``. None: ``lr`` throughout.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        schedule: CosineLR | None = None,
    ):
        self.params = list(params)
        self.schedule = schedule
        if not self.params:
            raise ValueError("ForeachAdam: got an empty parameter list")
        devices = {p.device for p in self.params}
        if len(devices) != 1:
            raise ValueError(f"ForeachAdam: all parameters must be on one device, got {sorted(map(str, devices))}")
        if not lr >= 0.0:
            raise ValueError(f"ForeachAdam: invalid lr {lr}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"ForeachAdam: invalid betas {betas}")
        if not eps >= 0.0 or not weight_decay >= 0.0:
            raise ValueError(f"ForeachAdam: invalid eps {eps} or weight_decay {weight_decay}")
        self.eps, self.weight_decay = float(eps), float(weight_decay)
        self.betas = (float(betas[0]), float(betas[1]))
        self.device = self.params[0].device
        with torch.no_grad():
            self.exp_avg = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
            self.exp_avg_sq = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        # float32, like torch.optim's step tensor; exact for counts up to 2**24, after which bias corrections are 1.
        self.step_count = torch.zeros((), dtype=torch.float32, device=self.device)
        # [beta1**t, beta2**t] kept by multiplication (float64, so no drift worth naming) instead of pow(beta, t):
        # inductor inlines scalar math into every element loop, and its CPU code called std::pow twice per
        # 16-float vector of every parameter (seen in the generated kernels of the SAC update).
        self._betas = torch.tensor(self.betas, dtype=torch.float64, device=self.device)
        self.beta_pows = torch.ones(2, dtype=torch.float64, device=self.device)
        # The next step's factors (module docstring): -lr / (1 - beta1**t) and sqrt(1 - beta2**t), float32.
        self.step_size = torch.zeros((), dtype=torch.float32, device=self.device)
        self.bias_correction2_sqrt = torch.zeros((), dtype=torch.float32, device=self.device)
        self.lr = lr  # sets the factors

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = float(value)
        self._prepare_next_step()

    @torch.no_grad()
    def _prepare_next_step(self) -> None:
        """The factors of the step after the current state (step count ``t``): those of ``t + 1``."""
        pows = self.beta_pows * self._betas
        lr = self.lr if self.schedule is None else self.schedule(self.step_count)
        self.step_size.copy_((-lr / (1.0 - pows[0])).float())
        self.bias_correction2_sqrt.copy_(torch.sqrt(1.0 - pows[1]).float())

    @torch.no_grad()
    def step(self, grads: Sequence[torch.Tensor]) -> None:
        """One Adam step with ``grads`` (one per parameter, same order). All on device; nothing is synchronised."""
        if len(grads) != len(self.params):
            raise ValueError(f"ForeachAdam.step: expected {len(self.params)} gradients, got {len(grads)}")
        beta1, beta2 = self.betas
        grads = list(grads)
        if self.weight_decay != 0.0:
            grads = torch._foreach_add(grads, self.params, alpha=self.weight_decay)
        self.step_count.add_(1.0)
        self.beta_pows.mul_(self._betas)
        torch._foreach_lerp_(self.exp_avg, grads, 1.0 - beta1)
        torch._foreach_mul_(self.exp_avg_sq, beta2)
        torch._foreach_addcmul_(self.exp_avg_sq, grads, grads, 1.0 - beta2)
        denom = torch._foreach_sqrt(self.exp_avg_sq)
        torch._foreach_div_(denom, self.bias_correction2_sqrt)  # this step's factors, set one step ahead
        torch._foreach_add_(denom, self.eps)
        updates = torch._foreach_div(self.exp_avg, denom)
        torch._foreach_mul_(updates, self.step_size)
        torch._foreach_add_(self.params, updates)
        self._prepare_next_step()

    # ----------------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Hyper-parameters and state (cloned tensors): ``step``, ``beta_pows``, ``exp_avg``, ``exp_avg_sq``."""
        return {
            "lr": self.lr,
            "betas": self.betas,
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            "step": self.step_count.detach().clone(),
            "beta_pows": self.beta_pows.detach().clone(),
            "exp_avg": [t.detach().clone() for t in self.exp_avg],
            "exp_avg_sq": [t.detach().clone() for t in self.exp_avg_sq],
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Copy ``state`` in place (tensor addresses stay the same, so a captured CUDA graph stays valid)."""
        for key in ("exp_avg", "exp_avg_sq"):
            src = state[key]
            if len(src) != len(self.params) or any(s.shape != p.shape for s, p in zip(src, self.params)):
                raise ValueError(f"ForeachAdam.load_state_dict: {key} does not match the parameter shapes")
        self.betas = (float(state["betas"][0]), float(state["betas"][1]))
        self.eps = float(state["eps"])
        self.weight_decay = float(state["weight_decay"])
        self.step_count.copy_(torch.as_tensor(state["step"]))
        self._betas.copy_(torch.tensor(self.betas, dtype=torch.float64))
        if "beta_pows" in state:  # exact continuation: the running products, not a recomputed power
            self.beta_pows.copy_(state["beta_pows"])
        else:
            self.beta_pows.copy_(self._betas.pow(self.step_count.double()))
        for dst, src in zip(self.exp_avg, state["exp_avg"]):
            dst.copy_(src)
        for dst, src in zip(self.exp_avg_sq, state["exp_avg_sq"]):
            dst.copy_(src)
        self.lr = state["lr"]  # last: sets the next step's factors from the restored beta_pows

    def state_tensors(self) -> list[torch.Tensor]:
        """Every tensor this optimizer mutates (for snapshots around CUDA-graph warm-up)."""
        return [self.step_count, self.beta_pows, self.step_size, self.bias_correction2_sqrt, *self.exp_avg,
                *self.exp_avg_sq]

    def __repr__(self) -> str:
        return (
            f"ForeachAdam(num_params={len(self.params)}, lr={self.lr}, betas={self.betas}, eps={self.eps}, "
            f"weight_decay={self.weight_decay}{'' if self.schedule is None else f', schedule={self.schedule}'})"
        )
