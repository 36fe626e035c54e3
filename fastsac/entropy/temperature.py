"""The SAC temperature: :class:`EntropyModule` (continuous actions) and :class:`EntropyModuleDiscrete`.

Both share :class:`_Temperature`: ``log_alpha`` and its optimizer, the target (a float or a schedule, mirrored in
the 0-dim device tensor ``target_tensor``), the fixed and decaying alpha modes, and exact checkpoints. The two
concrete classes differ only in their default target and their ``compute_loss``. The package docstring
(:mod:`fastsac.entropy`) explains the two ways of weighing entropy.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import numbers
import operator
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from fastsac.entropy.schedules import Schedule, _real, as_schedule

__all__ = ["EntropyModule", "EntropyModuleDiscrete", "EntropyParameters"]

#: Discrete default target = DISCRETE_TARGET_SCALE * log(action_dim): 98% of the uniform policy's entropy
#: (Christodoulou 2019, "Soft Actor-Critic for Discrete Action Settings").
DISCRETE_TARGET_SCALE = 0.98

LEARNED, FIXED, DECAY = "learned", "fixed", "decay"


@dataclasses.dataclass(frozen=True)
class EntropyParameters:
    """What ``config()`` returns: the optimizer learning rate, the starting alpha and the current target."""

    lr: float
    initial_alpha: float
    target: float

    def model_dump(self) -> dict[str, float]:
        """The fields as a dict (the name Velora's pydantic model uses)."""
        return dataclasses.asdict(self)


def _positive(name: str, value: Any, owner: str) -> float:
    value = _real(name, value, owner)
    if value <= 0.0:
        raise ValueError(f"{owner}: {name} must be > 0, got {value}")
    return value


def _action_dim(action_dim: Any, owner: str) -> int:
    if isinstance(action_dim, bool) or not isinstance(action_dim, numbers.Integral):
        raise TypeError(f"{owner}: action_dim must be an int, got {type(action_dim).__name__} {action_dim!r}")
    if action_dim < 1:
        raise ValueError(f"{owner}: action_dim must be >= 1 (the number of action dimensions or choices), "
                         f"got {action_dim}")
    return int(action_dim)


def _float_tensor(name: str, x: Any, owner: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{owner}: {name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{owner}: {name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.numel() == 0:
        raise ValueError(f"{owner}: {name} is empty (shape {tuple(x.shape)}); the loss needs at least one sample")


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Losses are averaged in float32 at least (float64 stays float64)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


class _Temperature:
    """Shared machinery: ``log_alpha`` and its optimizer, the target and alpha schedules, checkpoints."""

    def __init__(self, *, initial_alpha: Any, optim: Any, lr: Any, device: Any, target: Any,
                 fixed_alpha: bool, alpha_schedule: Any, owner: str):
        self.initial_alpha = _positive("initial_alpha", initial_alpha, owner)
        self.lr = _positive("lr", lr, owner)
        if not isinstance(fixed_alpha, bool):
            raise TypeError(f"{owner}: fixed_alpha must be True or False, got {fixed_alpha!r}")
        if alpha_schedule is not None:
            if fixed_alpha:
                raise ValueError(f"{owner}: give either fixed_alpha=True (constant alpha) or alpha_schedule= "
                                 "(annealed alpha), not both")
            if not isinstance(alpha_schedule, Schedule):
                raise TypeError(f"{owner}: alpha_schedule must be a Schedule (e.g. ExponentialSchedule(0.2, 0.01, "
                                f"100_000)), got {type(alpha_schedule).__name__}")
            start = _positive("alpha_schedule.value(0)", alpha_schedule.value(0), owner)
            if getattr(alpha_schedule, "end", start) <= 0.0:
                raise ValueError(f"{owner}: alpha_schedule must stay > 0 (alpha = exp(log_alpha)), "
                                 f"got {alpha_schedule!r}")
            if self.initial_alpha not in (1.0, start):
                raise ValueError(f"{owner}: initial_alpha={self.initial_alpha} conflicts with alpha_schedule, which "
                                 f"starts at {start}; leave initial_alpha out (the schedule sets it) or make them "
                                 "equal")
            self.initial_alpha = start
        self._mode = DECAY if alpha_schedule is not None else FIXED if fixed_alpha else LEARNED
        self._alpha_schedule: Schedule | None = alpha_schedule
        try:
            self.device = torch.device(device) if device is not None else None
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"{owner}: device {device!r} is not a valid torch device ({exc})") from None

        self.log_alpha = nn.Parameter(
            torch.tensor(math.log(self.initial_alpha), dtype=torch.float32, device=self.device),
            requires_grad=self._mode == LEARNED,
        )
        if self.device is None:
            self.device = self.log_alpha.device
        self.optim = self._make_optimizer(optim, owner)
        self._position = 0
        self._target_origin = 0
        self._target_schedule = as_schedule(target, "target_entropy")
        self._target = _real("target_entropy", self._target_schedule.value(0), owner)
        self.target_tensor = torch.tensor(self._target, dtype=torch.float32, device=self.device)
        self._apply_position()

    def _make_optimizer(self, optim: Any, owner: str) -> torch.optim.Optimizer:
        if isinstance(optim, torch.optim.Optimizer):
            raise TypeError(f"{owner}: optim must be an optimizer class such as torch.optim.Adam, not an instance "
                            "(the module builds it over its own log_alpha)")
        if not callable(optim):
            raise TypeError(f"{owner}: optim must be an optimizer class such as torch.optim.Adam, got {optim!r}")
        opt = optim([self.log_alpha], lr=self.lr)
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError(f"{owner}: optim([log_alpha], lr=...) must return a torch.optim.Optimizer, "
                            f"got {type(opt).__name__}")
        return opt

    # ---- read-only state -------------------------------------------------------------------------------------
    @property
    def alpha(self) -> torch.Tensor:
        """The entropy coefficient ``log_alpha.exp()`` (a 0-dim tensor; carries a gradient when learned)."""
        return self.log_alpha.exp()

    @property
    def target(self) -> float:
        """The current target entropy as a Python float. Assigning to it calls :meth:`set_target_entropy`."""
        return self._target

    @target.setter
    def target(self, value: Any) -> None:
        self.set_target_entropy(value)

    @property
    def alpha_mode(self) -> str:
        """``"learned"`` (alpha tuned to hold the target), ``"fixed"`` (constant) or ``"decay"`` (alpha_schedule)."""
        return self._mode

    @property
    def learnable(self) -> bool:
        """True when ``gradient_step`` updates ``log_alpha`` by its optimizer (``alpha_mode == "learned"``)."""
        return self._mode == LEARNED

    @property
    def schedule_position(self) -> int:
        """Steps taken so far by :meth:`advance_schedule` (and :meth:`gradient_step`); restored by load_state_dict."""
        return self._position

    @property
    def target_schedule(self) -> Schedule:
        """The schedule the target follows, counted from the step it was set (a float target is a ConstantSchedule)."""
        return self._target_schedule

    @property
    def alpha_schedule(self) -> Schedule | None:
        """The schedule alpha follows in ``"decay"`` mode (counted from step 0), else None."""
        return self._alpha_schedule

    # ---- changing the target and the position ----------------------------------------------------------------
    def set_target_entropy(self, value: Any) -> None:
        """Replace the target: a float, or a Schedule that starts *now* (its step 0 is the current position).

        ``target`` and ``target_tensor`` (in place) change at once; alpha is not touched.
        """
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = float(value)
        schedule = as_schedule(value, "target_entropy")
        _real("target_entropy", schedule.value(0), type(self).__name__)
        self._target_schedule, self._target_origin = schedule, self._position
        self._apply_position()

    def advance_schedule(self, num_steps: int = 1) -> None:
        """Move the schedule position by ``num_steps`` (>= 0): updates ``target``/``target_tensor`` in place and,
        in ``"decay"`` mode, ``log_alpha`` in place. Call it outside any compiled region."""
        if isinstance(num_steps, bool):
            raise TypeError(f"advance_schedule: num_steps must be an int, got {num_steps!r}")
        try:
            num_steps = operator.index(num_steps)
        except TypeError:
            raise TypeError(f"advance_schedule: num_steps must be an int, got {type(num_steps).__name__}") from None
        if num_steps < 0:
            raise ValueError(f"advance_schedule: num_steps must be >= 0 (schedules only move forward), got {num_steps}")
        self._position += num_steps
        self._apply_position()

    def _apply_position(self) -> None:
        owner = type(self).__name__
        target = _real("target_entropy", self._target_schedule.value(self._position - self._target_origin), owner)
        with torch.no_grad():
            if target != self._target:
                self._target = target
                self.target_tensor.fill_(target)
            if self._mode == DECAY:
                alpha = self._alpha_schedule.value(self._position)
                self.log_alpha.fill_(math.log(_positive(f"alpha_schedule.value({self._position})", alpha, owner)))

    # ---- the update ------------------------------------------------------------------------------------------
    def gradient_step(self, loss: torch.Tensor) -> None:
        """One temperature update, then ``advance_schedule(1)``.

        Learned mode: ``optim.zero_grad(); loss.backward(); optim.step()`` (as Velora). Fixed and decay modes: the
        loss is not back-propagated and the optimizer is not stepped (``log_alpha`` does not require a gradient);
        alpha stays constant (fixed) or moves to the alpha schedule's next value (decay).
        """
        if not isinstance(loss, torch.Tensor):
            raise TypeError(f"gradient_step: loss must be a torch.Tensor from compute_loss, got {type(loss).__name__}")
        if self._mode == LEARNED:
            self.optim.zero_grad()
            loss.backward()
            self.optim.step()
        self.advance_schedule(1)

    def config(self) -> EntropyParameters:
        """``EntropyParameters(lr, initial_alpha, target)`` with the current target as a float."""
        return EntropyParameters(lr=self.lr, initial_alpha=self.initial_alpha, target=self._target)

    # ---- checkpoints -----------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """A snapshot (deep copy): ``log_alpha``, the optimizer (``"entropy_optim"``, Velora's key), the schedule
        position, the target schedule and the step it was set at, and the alpha mode and schedule. Only tensors,
        strings, ints, floats and dicts, so ``torch.load(..., weights_only=True)`` reads it."""
        return {
            "module": type(self).__name__,
            "log_alpha": self.log_alpha.detach().clone(),
            "entropy_optim": copy.deepcopy(self.optim.state_dict()),
            "schedule_position": self._position,
            "target_schedule": self._target_schedule.to_dict(),
            "target_origin": self._target_origin,
            "alpha_mode": self._mode,
            "alpha_schedule": None if self._alpha_schedule is None else self._alpha_schedule.to_dict(),
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` in place (``log_alpha`` and ``target_tensor`` keep their identity, so
        optimizers and compiled code holding them stay valid); the checkpoint's target schedule replaces the
        constructor's. A Velora checkpoint ``{"entropy_optim": ...}`` loads the optimizer state only and warns,
        since it has no ``log_alpha``: alpha stays at its current value."""
        owner = type(self).__name__
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"{owner}.load_state_dict: expected a dict, got {type(state_dict).__name__}")
        if "log_alpha" not in state_dict:
            if "entropy_optim" not in state_dict:
                raise ValueError(f"{owner}.load_state_dict: no 'log_alpha' or 'entropy_optim' key (got "
                                 f"{sorted(state_dict)}); pass the dict returned by state_dict()")
            self.optim.load_state_dict(state_dict["entropy_optim"])
            self.lr = float(self.optim.param_groups[0]["lr"])
            warnings.warn(f"{owner}.load_state_dict: optimizer-only (Velora) checkpoint: it has no log_alpha, so "
                          f"alpha stays at {float(self.alpha.detach()):.6g} and the schedule position at "
                          f"{self._position}", stacklevel=2)
            return
        missing = {"module", "entropy_optim", "schedule_position", "target_schedule", "target_origin",
                   "alpha_mode"} - set(state_dict)
        if missing:
            raise ValueError(f"{owner}.load_state_dict: checkpoint lacks {sorted(missing)}")
        if state_dict["module"] != owner:
            raise ValueError(f"{owner}.load_state_dict: checkpoint was saved by {state_dict['module']}, not {owner}")
        if state_dict["alpha_mode"] != self._mode:
            raise ValueError(f"{owner}.load_state_dict: checkpoint has alpha_mode={state_dict['alpha_mode']!r} but "
                             f"this module has {self._mode!r}; construct it with the same fixed_alpha/alpha_schedule")
        log_alpha = torch.as_tensor(state_dict["log_alpha"])
        if log_alpha.shape != ():
            raise ValueError(f"{owner}.load_state_dict: log_alpha must be 0-dim, got shape {tuple(log_alpha.shape)}")
        target_schedule = Schedule.from_dict(dict(state_dict["target_schedule"]))
        spec = state_dict.get("alpha_schedule")
        alpha_schedule = None if spec is None else Schedule.from_dict(dict(spec))
        position, origin = int(state_dict["schedule_position"]), int(state_dict["target_origin"])
        if not 0 <= origin <= position:
            raise ValueError(f"{owner}.load_state_dict: need 0 <= target_origin <= schedule_position, got "
                             f"{origin} and {position}")
        self.optim.load_state_dict(state_dict["entropy_optim"])
        self.lr = float(self.optim.param_groups[0]["lr"])
        with torch.no_grad():
            self.log_alpha.copy_(log_alpha)
        self._target_schedule, self._target_origin, self._position = target_schedule, origin, position
        if alpha_schedule is not None:
            self._alpha_schedule = alpha_schedule
        self._target = math.nan  # force target_tensor to be rewritten
        self._apply_position()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(action_dim={self.action_dim}, initial_alpha={self.initial_alpha}, "
                f"optim={type(self.optim).__name__}, lr={self.lr}, device={self.device})")


class EntropyModule(_Temperature):
    """Learned entropy temperature for continuous-action SAC (Velora-compatible).

    Args:
        action_dim: number of action dimensions (>= 1).
        initial_alpha: starting entropy coefficient (> 0); ``log_alpha`` starts at ``log(initial_alpha)``.
        optim: optimizer *class* (any ``torch.optim.Optimizer`` subclass, or a callable such as
            ``functools.partial(torch.optim.Adam, betas=(0.5, 0.999))``), built as ``optim([log_alpha], lr=lr)``.
        lr: learning rate (> 0).
        device: where ``log_alpha`` and ``target_tensor`` live (None: torch's default device).
        target_entropy: target entropy, a float or a Schedule over steps; default ``-action_dim``.
        fixed_alpha: keep alpha at ``initial_alpha`` for ever (no learning; "anneal the coefficient" with a
            constant).
        alpha_schedule: anneal alpha along this Schedule by step (no learning). It sets ``initial_alpha``; an
            explicit ``initial_alpha`` other than the default 1.0 must equal its start.

    ``gradient_step(loss)`` also advances the schedules by one step (see :meth:`advance_schedule`), so target and
    alpha schedules count temperature updates unless you drive them yourself.

    ``compute_loss(log_probs) = -(log_alpha * (log_probs + target).detach()).mean()``, whose gradient
    ``-(mean(log_probs) + target)`` is the sampled entropy minus the target: descending it raises alpha when the
    policy's entropy is below the target and lowers it when above. In the fixed and decay modes it returns the
    same value without a gradient (``log_alpha`` does not require one), useful for logging.
    """

    def __init__(self, action_dim: int, *, initial_alpha: float = 1.0,
                 optim: type[torch.optim.Optimizer] = torch.optim.Adam, lr: float = 3e-4,
                 device: torch.device | str | None = None, target_entropy: float | Schedule | None = None,
                 fixed_alpha: bool = False, alpha_schedule: Schedule | None = None):
        self.action_dim = _action_dim(action_dim, type(self).__name__)
        target = -float(self.action_dim) if target_entropy is None else target_entropy
        super().__init__(initial_alpha=initial_alpha, optim=optim, lr=lr, device=device, target=target,
                         fixed_alpha=fixed_alpha, alpha_schedule=alpha_schedule, owner=type(self).__name__)

    def compute_loss(self, log_probs: torch.Tensor) -> torch.Tensor:
        """Temperature loss from the joint log-probabilities of sampled actions, shape ``(batch,)`` or
        ``(batch, 1)`` (summed over action dimensions). No gradient reaches ``log_probs``. Returns a 0-dim
        tensor (float32, or float64 for float64 inputs)."""
        _float_tensor("log_probs", log_probs, "EntropyModule.compute_loss")
        lp = log_probs.detach().to(_compute_dtype(log_probs.dtype))
        return -(self.log_alpha * (lp + self.target_tensor)).mean()


class EntropyModuleDiscrete(_Temperature):
    """Learned entropy temperature for discrete-action SAC (Velora-compatible, target sign fixed).

    Arguments as :class:`EntropyModule` (``action_dim`` is the number of actions), plus ``target_entropy_scale``:
    the default target is ``target_entropy_scale * log(action_dim)`` with scale 0.98, i.e. 98% of the uniform
    policy's entropy (positive; Velora uses ``0.98 * log(1 / action_dim)``, whose sign makes alpha always shrink).
    ``target_entropy`` overrides the target outright; give one of the two, not both.

    ``compute_loss(probs, log_probs) = log_alpha * (H - target)`` with ``H = -(probs * log_probs).sum(-1).mean()``
    computed without gradient (terms with ``probs == 0`` count as 0). Its gradient ``H - target``: alpha rises
    when the policy's entropy is below the target, falls when above.
    """

    def __init__(self, action_dim: int, *, initial_alpha: float = 1.0,
                 optim: type[torch.optim.Optimizer] = torch.optim.Adam, lr: float = 3e-4,
                 device: torch.device | str | None = None, target_entropy: float | Schedule | None = None,
                 target_entropy_scale: float | None = None, fixed_alpha: bool = False,
                 alpha_schedule: Schedule | None = None):
        owner = type(self).__name__
        self.action_dim = _action_dim(action_dim, owner)
        if target_entropy is not None and target_entropy_scale is not None:
            raise ValueError(f"{owner}: give target_entropy (the target itself) or target_entropy_scale (target = "
                             "scale * log(action_dim)), not both")
        if target_entropy is None:
            scale = DISCRETE_TARGET_SCALE if target_entropy_scale is None else _real(
                "target_entropy_scale", target_entropy_scale, owner)
            if not 0.0 < scale <= 1.0:
                raise ValueError(f"{owner}: target_entropy_scale must be in (0, 1] (a fraction of the maximum "
                                 f"entropy log(action_dim)), got {scale}")
            target_entropy = scale * math.log(self.action_dim)
        super().__init__(initial_alpha=initial_alpha, optim=optim, lr=lr, device=device, target=target_entropy,
                         fixed_alpha=fixed_alpha, alpha_schedule=alpha_schedule, owner=owner)

    def compute_loss(self, probs: torch.Tensor, log_probs: torch.Tensor) -> torch.Tensor:
        """Temperature loss from the policy's action probabilities and log-probabilities, both
        ``(batch, action_dim)`` (more leading dims are averaged too). No gradient reaches the inputs."""
        owner = "EntropyModuleDiscrete.compute_loss"
        _float_tensor("probs", probs, owner)
        _float_tensor("log_probs", log_probs, owner)
        if probs.shape != log_probs.shape:
            raise ValueError(f"{owner}: probs and log_probs must have the same shape, got {tuple(probs.shape)} and "
                             f"{tuple(log_probs.shape)}")
        if probs.dim() < 2:
            raise ValueError(f"{owner}: inputs must be (batch, action_dim), got 1-D shape {tuple(probs.shape)}; for "
                             "a single state pass probs.unsqueeze(0), log_probs.unsqueeze(0)")
        if probs.shape[-1] != self.action_dim:
            raise ValueError(f"{owner}: last dimension must be action_dim={self.action_dim}, got shape "
                             f"{tuple(probs.shape)}")
        dtype = _compute_dtype(torch.promote_types(probs.dtype, log_probs.dtype))
        with torch.no_grad():
            p, lp = probs.to(dtype), log_probs.to(dtype)
            p_log_p = torch.where(p == 0, torch.zeros_like(p), p * lp)
            entropy = -p_log_p.sum(-1).mean()
        return self.log_alpha * (entropy - self.target_tensor)
