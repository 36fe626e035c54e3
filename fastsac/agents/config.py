"""What a learner is configured with: :class:`LearnerConfig` (every hyper-parameter, with its help text) and
:class:`ActionSpec` (what it acts in). Each field's ``help`` feeds the command line (``fastsac.cli``)."""

from __future__ import annotations

import dataclasses
import numbers
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["AGENTS", "AGENT_DEFAULTS", "CROSSQ_DEFAULTS", "FLASHSAC_DEFAULTS", "LearnerConfig", "ActionSpec"]

AGENTS = ("sac", "crossq", "flashsac")

# CrossQ's hyperparameters (Bhatt et al., ICLR 2024, "CrossQ: Batch Normalization in Deep Reinforcement Learning for
# Greater Sample Efficiency and Simplicity", openreview.net/forum?id=PczQtTsTIX), as its reference implementation
# sets them: github.com/adityab/CrossQ, train.py at a318a26, `-algo crossq`: learning rate 1e-3 for the actor and
# the critics (and for the temperature, which its SAC steps with the same rate and a default Adam), Adam beta1 0.5
# for the actor and the critics, policy delay 3, critics of 2048 x 2048, actor of 256 x 256, UTD 1, two critics,
# no target networks (tau = 1 with the joint forward pass). Batch renorm momentum 0.99 and its 100k-step warm-up
# (sbx/sac/policies.py) are the brn_* fields' defaults. Its learning_starts of 5000 is a run option (the presets).
CROSSQ_DEFAULTS: dict[str, Any] = {
    "actor_lr": 1e-3,
    "critic_lr": 1e-3,
    "alpha_lr": 1e-3,
    "adam_beta1": 0.5,
    "policy_delay": 3,
    "hidden_sizes": (256, 256),
    "critic_hidden_sizes": (2048, 2048),
}

# FlashSAC's hyperparameters (arXiv 2604.04539), as its public repository runs the Gym MuJoCo benchmark
# (github.com/Holiday-Robot/FlashSAC at 87edc90: configs/agent/flashSAC.yaml with the overrides of
# scripts/run_mujoco.sh): one learning rate 3e-4 for actor, critics and temperature, cosine-decayed to 1.5e-4 over
# the run's updates (1M in the published runs; each optimizer counts its own steps, so the actor's and the
# temperature's, stepped every 2nd update, decay half as far); actor and temperature every 2nd update; actor
# width 128 and critic width 256 with 2 residual blocks each; a categorical critic of 101 atoms on [-5, 5]; Polyak
# 0.01; alpha0 0.01; target entropy 0.5 |A| ln(2 pi e 0.15^2); log-std in [-10, 2]; rewards scaled by a running
# return scale with G_max 5 (the support's half-width); exploration noise held for Zeta(2) steps, at most 16.
# Batch 512 and learning_starts 10k are run options (the presets).
FLASHSAC_DEFAULTS: dict[str, Any] = {
    "actor_lr": 3e-4,
    "critic_lr": 3e-4,
    "alpha_lr": 3e-4,
    "adam_beta1": 0.9,
    "policy_delay": 2,
    "hidden_sizes": (128, 128),
    "critic_hidden_sizes": (256, 256),
    "tau": 0.01,
    "initial_alpha": 0.01,
    "log_std_min": -10.0,
    "log_std_max": 2.0,
    "target_entropy_sigma": 0.15,
    "critic": "categorical",
    "critic_bins": 101,
    "critic_v_min": -5.0,
    "critic_v_max": 5.0,
    "reward_norm": True,
    "noise_repeat": 16,
    "lr_decay": "cosine",
    "lr_end_ratio": 0.5,
    "lr_decay_updates": 1_000_000,
}

#: Each agent's own values of some fields (SAC: the fields' defaults). Switching agents (``with_agent``) sets every
#: field named here to the new agent's value or, where it names none, to the field's default.
AGENT_DEFAULTS: dict[str, dict[str, Any]] = {"sac": {}, "crossq": CROSSQ_DEFAULTS, "flashsac": FLASHSAC_DEFAULTS}
# Fields only the flashsac learner implements so far (its update reads them); other agents refuse non-defaults.
_FLASHSAC_ONLY = ("noise_repeat", "lr_decay", "target_entropy_sigma")
_CATEGORICAL_ONLY = ("critic_bins", "critic_v_min", "critic_v_max")
# Fields only SAC's networks implement (the FastSAC regime's options); crossq and flashsac build their own networks.
_SAC_ONLY = ("actor_network", "activation", "amp")


def _option(default: Any, help: str):
    """A dataclass field carrying its CLI help text (``fastsac.cli`` builds ``--flags`` from it)."""
    return field(default=default, metadata={"help": help})


@dataclass
class LearnerConfig:
    """Hyper-parameters of the learners (SAC continuous and discrete, CrossQ, FlashSAC). Each field's ``help`` feeds
    the CLI.

    The defaults are SAC's; ``LearnerConfig().with_agent("crossq")`` is CrossQ's paper setting
    (:data:`CROSSQ_DEFAULTS`) and ``with_agent("flashsac")`` FlashSAC's (:data:`FLASHSAC_DEFAULTS`), sources there."""

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
    target_entropy_sigma: float | None = _option(
        None, "flashsac: target entropy of a Gaussian of this std per action dimension, 0.5 |A| ln(2 pi e sigma^2) "
        "(FlashSAC: 0.15); used when target_entropy is not given")
    log_std_min: float = _option(-5.0, "lower bound of the policy log-std (smooth tanh bound)")
    log_std_max: float = _option(2.0, "upper bound of the policy log-std (smooth tanh bound)")
    agent: Literal["sac", "crossq", "flashsac"] = _option(
        "sac", "learning algorithm: sac (target critics), crossq (Bhatt et al. 2024: batch renormalization, no "
        "target critics, a joint critic pass) or flashsac (FlashSAC 2026: normalized residual networks with batch "
        "norm, a categorical critic, reward scaling, noise repetition); crossq and flashsac are for continuous "
        "actions. Setting it (preset, flag or train()) first resets the fields AGENT_DEFAULTS names (lrs, "
        "adam_beta1, policy_delay, widths, ...) to that agent's values")
    critic_hidden_sizes: tuple[int, ...] | None = _option(
        None, "hidden widths of each critic (default: hidden_sizes; CrossQ's paper: 2048 2048)")
    critic_network: Literal["mlp", "layernorm", "simba"] = _option(
        "mlp", "critic network: mlp, layernorm (LayerNorm after each hidden layer) or simba (residual pre-LayerNorm "
        "blocks); see docs/agents.md")
    obs_norm: bool | None = _option(
        None, "normalize observations by running statistics (SimBa) for the actor and the critics; statistics are "
        "saved with the learner (default: on with critic_network simba, else off)")
    actor_network: Literal["mlp", "layernorm"] = _option(
        "mlp", "sac (continuous actions): actor network: mlp, or layernorm (Linear -> LayerNorm -> activation per "
        "hidden layer, zero-initialised mean and log-std heads: holosoma's FastSAC actor)")
    activation: Literal["relu", "silu"] = _option(
        "relu", "sac: hidden activation of the actor and of the mlp, layernorm and simba critics (FastSAC: silu)")
    amp: Literal["none", "bf16"] = _option(
        "none", "sac: run the networks' forward and backward passes under bfloat16 autocast (FastSAC's amp) on a CUDA "
        "device that supports bf16; losses, fused ops and optimizers stay float32. Elsewhere float32, with a "
        "recorded fallback")
    critic: Literal["scalar", "categorical"] = _option(
        "scalar", "critic head: scalar (one Q value, squared TD error) or categorical (a distribution over "
        "critic_bins atoms on [critic_v_min, critic_v_max], C51 projection, cross-entropy; flashsac's, and an "
        "option of sac and crossq for continuous actions: its support must hold the returns, so set the range or "
        "use reward_norm)")
    critic_bins: int = _option(101, "categorical critic: number of atoms of the support")
    critic_v_min: float = _option(-5.0, "categorical critic: lowest atom (in scaled-reward units with reward_norm)")
    critic_v_max: float = _option(5.0, "categorical critic: highest atom")
    reward_norm: bool = _option(
        False, "divide rewards by a running scale of the discounted return, max(std(G), max|G| / critic_v_max), "
        "updated every env step (FlashSAC's reward normalization; any agent; the entropy bonus is not scaled, so start "
        "alpha in the scaled units, e.g. initial_alpha 0.01 as FlashSAC)")
    noise_repeat: int = _option(
        1, "flashsac: hold each env's exploration noise for k steps, k ~ Zeta(2) truncated at this value "
        "(FlashSAC: 16); 1: fresh noise every step")
    lr_decay: Literal["none", "cosine"] = _option(
        "none", "flashsac: learning-rate schedule of every optimizer over its own steps: none, or cosine from "
        "the lr to lr * lr_end_ratio over lr_decay_updates steps")
    lr_end_ratio: float = _option(0.5, "cosine lr_decay: final lr as a fraction of the lr (FlashSAC: 0.5)")
    lr_decay_updates: int = _option(
        1_000_000, "cosine lr_decay: optimizer steps over which the lr decays (FlashSAC: the run's updates, 1M)")
    adam_beta1: float = _option(0.9, "Adam beta1 of the actor's and the critics' optimizers (CrossQ: 0.5)")
    brn_momentum: float = _option(0.99, "crossq: momentum of the batch renorm running statistics")
    brn_warmup_steps: int = _option(
        100_000, "crossq: training calls during which each batch renorm layer is plain batch norm (r_max=1, d_max=0)")
    update: Literal["auto", "eager", "compile", "native"] = _option(
        "auto", "how the update runs: eager (op by op), compile (torch.compile, one graph), native (the learner's C++ "
        "update: continuous SAC with MLP networks on a CPU; an error where it does not apply) or auto (native where "
        "it applies, else compile). A fast path's first call is checked against the eager update; a failure falls "
        "back loudly (native -> compile -> eager). See fastsac.agents.runners")
    cuda_graph: bool = _option(True, "on CUDA, capture the update in a CUDA graph and replay it (ignored on CPU)")
    backend: str = _option("auto", "fused-op backend: auto, torch, triton or cpp (the C++ extension)")
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
        for name in ("agent", "critic_network", "update", "critic", "lr_decay", "actor_network", "activation", "amp"):
            choices = typing.get_args(typing.get_type_hints(LearnerConfig)[name])
            if getattr(self, name) not in choices:
                raise ValueError(
                    f"LearnerConfig: {name} must be one of {', '.join(choices)}, got {getattr(self, name)!r}")
        if self.critic_hidden_sizes is not None:
            self.critic_hidden_sizes = tuple(int(h) for h in self.critic_hidden_sizes)
            if not self.critic_hidden_sizes or min(self.critic_hidden_sizes) < 1:
                raise ValueError(
                    f"LearnerConfig: critic_hidden_sizes must be positive widths, got {self.critic_hidden_sizes}")
        if self.critic_network == "simba" and len(set(self.critic_widths)) != 1:
            raise ValueError(f"LearnerConfig: critic_network simba needs equal critic widths (one residual width), got "
                             f"{self.critic_widths}")
        if not 0.0 <= self.adam_beta1 < 1.0:
            raise ValueError(f"LearnerConfig: adam_beta1 must be in [0, 1), got {self.adam_beta1}")
        if not 0.0 <= self.brn_momentum < 1.0:
            raise ValueError(f"LearnerConfig: brn_momentum must be in [0, 1), got {self.brn_momentum}")
        if isinstance(self.brn_warmup_steps, bool) or int(self.brn_warmup_steps) != self.brn_warmup_steps \
                or self.brn_warmup_steps < 0:
            raise ValueError(f"LearnerConfig: brn_warmup_steps must be an int >= 0, got {self.brn_warmup_steps}")
        self.brn_warmup_steps = int(self.brn_warmup_steps)
        if self.agent != "sac":
            defaults = {f.name: f.default for f in dataclasses.fields(LearnerConfig)}
            changed = [name for name in _SAC_ONLY if getattr(self, name) != defaults[name]]
            if changed:
                raise ValueError(f"LearnerConfig: {', '.join(changed)} {'is' if len(changed) == 1 else 'are'} "
                                 f"implemented by agent sac only, not {self.agent!r} (use --agent sac, or leave "
                                 f"{'it at its default' if len(changed) == 1 else 'them at their defaults'})")
        self._check_flashsac_fields()

    def _check_flashsac_fields(self) -> None:
        for name in ("critic_bins", "noise_repeat", "lr_decay_updates"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"LearnerConfig: {name} must be an int >= 1, got {value}")
            setattr(self, name, int(value))
        if self.critic_bins < 2:
            raise ValueError(f"LearnerConfig: critic_bins must be >= 2, got {self.critic_bins}")
        if not self.critic_v_min < self.critic_v_max:
            raise ValueError(f"LearnerConfig: need critic_v_min < critic_v_max, got {self.critic_v_min}, "
                             f"{self.critic_v_max}")
        if not 0.0 < self.lr_end_ratio <= 1.0:
            raise ValueError(f"LearnerConfig: lr_end_ratio must be in (0, 1], got {self.lr_end_ratio}")
        if self.target_entropy_sigma is not None and not self.target_entropy_sigma > 0.0:
            raise ValueError(f"LearnerConfig: target_entropy_sigma must be > 0, got {self.target_entropy_sigma}")
        if self.agent == "flashsac":
            if self.critic != "categorical":
                raise ValueError("LearnerConfig: agent flashsac has a categorical critic; critic='scalar' is not "
                                 "built for it (use agent sac or crossq for a scalar critic)")
            if self.critic_network != "mlp":
                raise ValueError("LearnerConfig: agent flashsac builds its own normalized residual networks; "
                                 f"critic_network={self.critic_network!r} applies to sac and crossq only")
            if self.obs_norm:
                raise ValueError("LearnerConfig: agent flashsac normalizes its inputs with batch norm; obs_norm "
                                 "applies to sac and crossq only")
            for name, widths in (("hidden_sizes", self.hidden_sizes), ("critic_hidden_sizes", self.critic_widths)):
                if len(set(widths)) != 1:
                    raise ValueError(f"LearnerConfig: agent flashsac needs equal {name} (one residual block per "
                                     f"entry, all of the residual width), got {widths}")
            return
        defaults = {f.name: f.default for f in dataclasses.fields(LearnerConfig)}
        if self.critic == "scalar":
            changed = [name for name in _CATEGORICAL_ONLY if getattr(self, name) != defaults[name]]
            if changed:
                raise ValueError(f"LearnerConfig: {', '.join(changed)} {'sets' if len(changed) == 1 else 'set'} the "
                                 "categorical critic's support, but critic is 'scalar' (add critic='categorical', "
                                 "--critic categorical, or leave them at their defaults)")
        changed = [name for name in _FLASHSAC_ONLY if getattr(self, name) != defaults[name]]
        if changed:
            raise ValueError(f"LearnerConfig: {', '.join(changed)} {'is' if len(changed) == 1 else 'are'} "
                             f"implemented by agent flashsac only, not {self.agent!r} (use --agent flashsac, or "
                             "leave them at their defaults)")

    @property
    def critic_widths(self) -> tuple[int, ...]:
        """The critics' hidden widths: ``critic_hidden_sizes``, else ``hidden_sizes``."""
        return self.critic_hidden_sizes if self.critic_hidden_sizes is not None else self.hidden_sizes

    @property
    def uses_obs_norm(self) -> bool:
        """Whether observations are normalized: ``obs_norm``, else on exactly for the simba critic."""
        return self.obs_norm if self.obs_norm is not None else self.critic_network == "simba"

    def with_agent(self, agent: str) -> LearnerConfig:
        """This config for ``agent``: unchanged if it is already that agent's, else with the agent's values in
        every field :data:`AGENT_DEFAULTS` names for any agent (the agent's own, else the field's default)."""
        if agent == self.agent:
            return self
        if agent not in AGENTS:
            raise ValueError(f"LearnerConfig: agent must be one of {', '.join(AGENTS)}, got {agent!r}")
        named = {name for values in AGENT_DEFAULTS.values() for name in values}
        values = {f.name: f.default for f in dataclasses.fields(LearnerConfig) if f.name in named}
        return dataclasses.replace(self, agent=agent, **{**values, **AGENT_DEFAULTS[agent]})


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
