"""What a learner is configured with: :class:`LearnerConfig` (every hyper-parameter, with its help text) and
:class:`ActionSpec` (what it acts in). Each field's ``help`` feeds the command line (``fastsac.cli``)."""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LearnerConfig", "ActionSpec"]


def _option(default: Any, help: str):
    """A dataclass field carrying its CLI help text (``fastsac.cli`` builds ``--flags`` from it)."""
    return field(default=default, metadata={"help": help})


@dataclass
class LearnerConfig:
    """Hyper-parameters of the SAC learner (continuous and discrete). Each field's ``help`` feeds the CLI."""

    gamma: float = _option(0.99, "discount factor")
    tau: float = _option(0.005, "target critic update rate: target <- lerp(target, critic, tau)")
    actor_lr: float = _option(3e-4, "actor learning rate (Adam)")
    # 1e-3: CleanRL's sac_continuous_action uses q_lr=1e-3 with policy_lr=3e-4 for its published MuJoCo results;
    # a faster critic tracks the moving policy more closely early on. Use 3e-4 for the SAC paper's setting.
    critic_lr: float = _option(1e-3, "critic learning rate (Adam); 1e-3 as CleanRL's MuJoCo SAC")
    alpha_lr: float = _option(3e-4, "entropy temperature learning rate (Adam on log_alpha)")
    hidden_sizes: tuple[int, ...] = _option((256, 256), "hidden layer widths of the actor and of each critic")
    policy_delay: int = _option(1, "update actor and alpha every k critic updates (1 = every update)")
    initial_alpha: float = _option(1.0, "starting entropy coefficient alpha")
    fixed_alpha: bool = _option(False, "keep alpha at initial_alpha (no temperature learning)")
    target_entropy: float | None = _option(
        None, "target entropy; default -action_dim (continuous) or target_entropy_scale * log(n) (discrete)")
    target_entropy_scale: float = _option(0.98, "discrete only: default target = scale * log(num_actions)")
    log_std_min: float = _option(-5.0, "lower bound of the policy log-std (smooth tanh bound)")
    log_std_max: float = _option(2.0, "upper bound of the policy log-std (smooth tanh bound)")
    compile: bool = _option(True, "torch.compile the whole update as one graph (fullgraph=True)")
    cuda_graph: bool = _option(True, "on CUDA, capture the update in a CUDA graph and replay it (ignored on CPU)")
    backend: str = _option("auto", "fused-op backend: auto, torch, triton or cuda")
    seed: int = _option(0, "seed of the network initialisation and of the learner's noise generator")

    def __post_init__(self) -> None:
        self.hidden_sizes = tuple(int(h) for h in self.hidden_sizes)
        if not self.hidden_sizes or min(self.hidden_sizes) < 1:
            raise ValueError(f"LearnerConfig: hidden_sizes must be positive widths, got {self.hidden_sizes}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"LearnerConfig: gamma must be in [0, 1], got {self.gamma}")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"LearnerConfig: tau must be in (0, 1], got {self.tau}")
        for name in ("actor_lr", "critic_lr", "alpha_lr", "initial_alpha"):
            if not getattr(self, name) > 0.0:
                raise ValueError(f"LearnerConfig: {name} must be > 0, got {getattr(self, name)}")
        if isinstance(self.policy_delay, bool) or int(self.policy_delay) != self.policy_delay or self.policy_delay < 1:
            raise ValueError(f"LearnerConfig: policy_delay must be an int >= 1, got {self.policy_delay}")
        self.policy_delay = int(self.policy_delay)
        if not self.log_std_min < self.log_std_max:
            raise ValueError(
                f"LearnerConfig: need log_std_min < log_std_max, got {self.log_std_min}, {self.log_std_max}")


@dataclass(frozen=True)
class ActionSpec:
    """What the learner acts in: ``ActionSpec(discrete=False, n=action_dim)`` or ``ActionSpec(True, num_actions)``."""

    discrete: bool
    n: int

    @classmethod
    def from_any(cls, spec: Any) -> ActionSpec:
        """Accepts an ActionSpec; an int (continuous action_dim); an env with ``is_discrete`` and ``action_dim`` /
        ``num_actions`` (``fastsac.data.envs``); or a gymnasium ``Discrete`` (``.n``) / ``Box`` (``.shape``) space."""
        if isinstance(spec, ActionSpec):
            return spec
        if isinstance(spec, numbers.Integral) and not isinstance(spec, bool):
            return cls(False, int(spec))
        if hasattr(spec, "is_discrete"):
            return cls(True, int(spec.num_actions)) if spec.is_discrete else cls(False, int(spec.action_dim))
        if hasattr(spec, "n") and not hasattr(spec, "low"):
            return cls(True, int(spec.n))
        if hasattr(spec, "shape") and hasattr(spec, "low") and len(spec.shape) == 1:
            return cls(False, int(spec.shape[0]))
        raise TypeError(
            f"make_learner: cannot read an action spec from {spec!r}; pass ActionSpec(discrete, n), an int "
            "(continuous action_dim), a fastsac env, or a gymnasium Box/Discrete space"
        )
