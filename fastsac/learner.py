"""SAC and discrete SAC learners: the whole update (critic, actor, alpha, target) as one compiled function.

Reading order: ``LearnerConfig`` (every hyper-parameter, with its help text); ``_Learner`` (the machinery shared
by both learners: compilation, CUDA graphs, metrics, checkpoints); ``SACLearner`` and ``DiscreteSACLearner``, whose
``critic_target``, ``actor_and_alpha_losses`` and ``_update`` are the algorithm, top to bottom; ``make_learner``.

One update::

    critic   both critics against one target: r + gamma * (1 - terminated) * (min_j Q'_j(s', a') - alpha log pi(a'|s'))
             (bootstrapping is masked by termination only; a time-limit truncation still bootstraps)
    actor    (alpha * log pi(a|s) - min_j Q_j(s, a)).mean(), with a ~ pi reparameterised by the fused op,
    alpha    -log_alpha * mean(log pi + target), returned by the *same* fused-op call (gradient to log_alpha only)
    target   theta' <- lerp(theta', theta, tau), one fused ``torch._foreach_lerp_`` over all critic tensors

Gradients come from ``torch.autograd.grad`` (no ``.grad`` attributes) and are applied by ``ForeachAdam``
(``fastsac.optim``), so the whole step traces as ONE graph under ``torch.compile(fullgraph=True)`` (which needs
``torch._dynamo.config.trace_autograd_ops``; set only around our calls). On CUDA the compiled step is then captured
in a ``torch.cuda.CUDAGraph`` and replayed: the batch and the noise are copied into static input buffers.

Policy delay (actor and alpha every ``policy_delay`` critic steps): ``_update`` takes a Python bool
``update_actor``; ``torch.compile`` specialises on it, so there are two single-graph variants (critic+actor+alpha+
target, and critic+target), compiled on first use (the critic-only one only when ``policy_delay > 1``), and on
CUDA two captured graphs. A masked single graph would run the actor's forward and backward every step for nothing
and would still have to freeze Adam's moments and step count with ``where`` on every tensor.

Randomness: the learner owns a ``torch.Generator`` on its device, seeded by ``cfg.seed``; ``act`` and the update's
noise draw from it (outside the compiled graph, so eager and compiled updates use identical noise and the CUDA
graph holds no RNG state). Its state is part of ``state_dict``.
"""

from __future__ import annotations

import contextlib
import copy
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from fastsac import ops
from fastsac.entropy import EntropyModule, EntropyModuleDiscrete
from fastsac.networks import Actor, ContinuousTwinQ, DiscreteActor, DiscreteTwinQ
from fastsac.optim import ForeachAdam

__all__ = ["LearnerConfig", "ActionSpec", "SACLearner", "DiscreteSACLearner", "make_learner"]


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
        ``num_actions`` (``fastsac.envs``); or a gymnasium ``Discrete`` (``.n``) / ``Box`` (``.shape``) space."""
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


# Layout of the on-device accumulator: critic sums, critic count, actor sums, actor count.
_CRITIC, _N_CRITIC, _ACTOR, _N_ACTOR = slice(0, 2), 2, slice(3, 6), 6


def _autograd_ops_config():
    """``trace_autograd_ops=True`` for the duration of a compiled call (torch >= 2.11; earlier ones lack it)."""
    if hasattr(torch._dynamo.config, "trace_autograd_ops"):
        return torch._dynamo.config.patch(trace_autograd_ops=True)
    return contextlib.nullcontext()


class _Learner:
    """Machinery shared by both learners; subclasses define the networks, ``_update`` and ``act``."""

    discrete: bool

    def __init__(self, obs_dim: int, n: int, cfg: LearnerConfig, device: torch.device | str):
        self.cfg = cfg
        self.obs_dim = int(obs_dim)
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        # Networks are initialised from cfg.seed without touching the global RNG stream.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.actor, self.critic = self._build_networks(n)
        self.actor.to(self.device)
        self.critic.to(self.device)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.entropy = self._build_entropy(n)
        self.actor_params = list(self.actor.parameters())
        self.critic_params = list(self.critic.parameters())
        self.target_params = list(self.target_critic.parameters())
        self.actor_optim = ForeachAdam(self.actor_params, lr=cfg.actor_lr)
        self.critic_optim = ForeachAdam(self.critic_params, lr=cfg.critic_lr)
        self.alpha_optim = ForeachAdam([self.entropy.log_alpha], lr=cfg.alpha_lr) if self.entropy.learnable else None
        self.backend = ops.resolve_backend(torch.empty(1, device=self.device), backend=cfg.backend)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(cfg.seed)
        self._metric_sums = torch.zeros(7, dtype=torch.float32, device=self.device)
        self.num_updates = 0
        self._update_fn = torch.compile(self._update, fullgraph=True) if cfg.compile else self._update
        self.use_cuda_graph = bool(cfg.cuda_graph and self.device.type == "cuda")
        self._static: list[torch.Tensor] | None = None  # CUDA-graph input buffers
        self._graphs: dict[bool, torch.cuda.CUDAGraph] = {}

    # -------------------------------------------------------------------------------------------- subclass API
    def _build_networks(self, n: int) -> tuple[nn.Module, nn.Module]:
        raise NotImplementedError

    def _build_entropy(self, n: int):
        raise NotImplementedError

    def _noise_shape(self, batch_size: int) -> tuple[int, ...]:
        raise NotImplementedError

    def _update(self, obs, action, reward, next_obs, terminated, noise, update_actor: bool) -> None:
        raise NotImplementedError

    # ---------------------------------------------------------------------------------------------- shared math
    @property
    def alpha(self) -> torch.Tensor:
        """The entropy coefficient ``exp(log_alpha)``, detached (0-dim device tensor; no host sync)."""
        return self.entropy.log_alpha.detach().exp()

    @staticmethod
    def _rewards_and_mask(reward: torch.Tensor, terminated: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flatten ``reward`` and turn ``terminated`` (bool or float) into the bootstrap mask ``1 - terminated``."""
        reward = reward.reshape(-1).float()
        return reward, 1.0 - terminated.reshape(-1).to(reward.dtype)

    def _step_actor_and_alpha(self, actor_loss: torch.Tensor, alpha_loss: torch.Tensor) -> None:
        """One backward pass of ``actor_loss + alpha_loss``, then the actor's and (when learned) log_alpha's Adam."""
        learn_alpha = self.alpha_optim is not None
        inputs = self.actor_params + ([self.entropy.log_alpha] if learn_alpha else [])
        grads = torch.autograd.grad(actor_loss + alpha_loss if learn_alpha else actor_loss, inputs)
        self.actor_optim.step(grads[: len(self.actor_params)])
        if learn_alpha:
            self.alpha_optim.step(grads[len(self.actor_params):])

    def _finish_update(self, q, q_target, update_actor: bool, *actor_inputs) -> None:
        """The part of an update both learners share. ``q`` (2, batch): both critics' values of the taken actions;
        ``q_target``: their one regression target. Critic step on the squared error; then (every policy_delay-th
        update) the actor's and temperature's step from ``actor_and_alpha_losses(*actor_inputs)``, one backward
        pass for both losses since alpha_loss reaches only log_alpha and actor_loss never does; then the target
        critics (one fused lerp) and the on-device metrics."""
        critic_loss = (q - q_target).square().mean(dim=1).sum()
        self.critic_optim.step(torch.autograd.grad(critic_loss, self.critic_params))
        actor_metrics = None
        if update_actor:
            actor_loss, alpha_loss, entropy = self.actor_and_alpha_losses(*actor_inputs)
            self._step_actor_and_alpha(actor_loss, alpha_loss)
            actor_metrics = (actor_loss.detach(), entropy, alpha_loss.detach())
        self._update_target()
        self._record(critic_loss.detach(), q.detach().mean(), actor_metrics)

    def _record(self, critic_loss, q_mean, actor=None) -> None:
        """Add this step's metrics to the on-device accumulator (no host sync)."""
        one = torch.ones((), dtype=torch.float32, device=self.device)
        with torch.no_grad():
            if actor is None:
                self._metric_sums[:3].add_(torch.stack([critic_loss, q_mean, one]))
            else:
                self._metric_sums.add_(torch.stack([critic_loss, q_mean, one, *actor, one]))

    def _update_target(self) -> None:
        with torch.no_grad():
            torch._foreach_lerp_(self.target_params, self.critic_params, self.cfg.tau)

    # ------------------------------------------------------------------------------------------------- update
    def update(self, batch: Sequence[torch.Tensor]) -> None:
        """One gradient step on ``batch = (obs, action, reward, next_obs, terminated)`` (``fastsac.buffer.Batch``
        or any sequence in that order; on the learner's device). Asynchronous: nothing is read back to the host.
        Actor and alpha are updated when ``num_updates % policy_delay == 0``; the entropy schedule advances by 1."""
        obs, action, reward, next_obs, terminated = batch
        update_actor = self.num_updates % self.cfg.policy_delay == 0
        if self.use_cuda_graph:
            self._replay(update_actor, (obs, action, reward, next_obs, terminated))
        else:
            noise = self._draw_noise(obs.shape[0])
            with _autograd_ops_config() if self.cfg.compile else contextlib.nullcontext():
                self._update_fn(obs, action, reward, next_obs, terminated, noise, update_actor)
        self.num_updates += 1
        self.entropy.advance_schedule(1)

    def _draw_noise(self, batch_size: int, out: torch.Tensor | None = None) -> torch.Tensor:
        if out is None:
            out = torch.empty(self._noise_shape(batch_size), dtype=torch.float32, device=self.device)
        return out.normal_(generator=self.generator)

    # ---- CUDA graphs ----------------------------------------------------------------------------------------
    def _replay(self, update_actor: bool, batch: tuple[torch.Tensor, ...]) -> None:
        shapes = [(t.shape, t.dtype) for t in batch]
        if self._static is None or shapes != [(t.shape, t.dtype) for t in self._static[:5]]:
            # (Re)allocate the static inputs for this batch layout; graphs captured for another layout are dropped.
            self._static = [torch.empty_like(t, device=self.device) for t in batch]
            self._static.append(torch.empty(self._noise_shape(batch[0].shape[0]), device=self.device))
            self._graphs = {}
        for dst, src in zip(self._static, batch):
            dst.copy_(src, non_blocking=True)
        self._draw_noise(0, out=self._static[5])
        graph = self._graphs.get(update_actor)
        if graph is None:
            graph = self._graphs[update_actor] = self._capture(update_actor)
        graph.replay()

    def _mutable_tensors(self) -> list[torch.Tensor]:
        """Every tensor an update writes (restored after the warm-up runs that precede a capture)."""
        tensors = [*self.actor_params, *self.critic_params, *self.target_params, self.entropy.log_alpha]
        for opt in (self.actor_optim, self.critic_optim, self.alpha_optim):
            if opt is not None:
                tensors += opt.state_tensors()
        return [*tensors, self._metric_sums]

    def _capture(self, update_actor: bool) -> torch.cuda.CUDAGraph:
        """Warm up (compiles) on a side stream, capture one call, then undo the warm-up's effect on the state."""
        args = (*self._static, update_actor)
        saved = self._snapshot()
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream), _autograd_ops_config():
            for _ in range(3):
                self._update_fn(*args)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        # Captured on the warm-up stream (whatever the compiled code saw while warming up, it sees again);
        # thread_local: CUDA calls that other threads (env workers, loggers) make during the capture are allowed.
        with torch.cuda.graph(graph, stream=stream, capture_error_mode="thread_local"), _autograd_ops_config():
            self._update_fn(*args)
        self._restore(saved)
        return graph

    def _snapshot(self) -> list[torch.Tensor]:
        with torch.no_grad():
            return [t.detach().clone() for t in self._mutable_tensors()]

    def _restore(self, saved: list[torch.Tensor]) -> None:
        with torch.no_grad():
            torch._foreach_copy_(self._mutable_tensors(), saved)

    # ------------------------------------------------------------------------------------------------ metrics
    def metrics(self) -> dict[str, float]:
        """Means since the last call of critic_loss, q_mean (every update) and actor_loss, entropy, alpha_loss
        (actor updates), plus the current ``alpha`` and ``num_updates``. The only host sync; resets the sums."""
        values = torch.cat([self._metric_sums, self.entropy.log_alpha.detach().exp().reshape(1)]).tolist()
        self._metric_sums.zero_()
        n_critic, n_actor = values[_N_CRITIC], values[_N_ACTOR]
        out: dict[str, float] = {}
        if n_critic > 0:
            out["critic_loss"], out["q_mean"] = (v / n_critic for v in values[_CRITIC])
        if n_actor > 0:
            out["actor_loss"], out["entropy"], out["alpha_loss"] = (v / n_actor for v in values[_ACTOR])
        out["alpha"] = values[7]
        out["num_updates"] = float(self.num_updates)
        return out

    # ------------------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """A snapshot (cloned tensors) of everything a resumed run needs to continue exactly: networks, target
        critics, optimizer states, the entropy module, the update counter, the learner's RNG and the metric sums.
        Only tensors, numbers, strings, lists and dicts (``torch.load(weights_only=True)`` reads it)."""
        clone = lambda sd: {k: v.detach().clone() for k, v in sd.items()}  # noqa: E731
        return {
            "kind": type(self).__name__,
            "actor": clone(self.actor.state_dict()),
            "critic": clone(self.critic.state_dict()),
            "target_critic": clone(self.target_critic.state_dict()),
            "actor_optim": self.actor_optim.state_dict(),
            "critic_optim": self.critic_optim.state_dict(),
            "alpha_optim": None if self.alpha_optim is None else self.alpha_optim.state_dict(),
            "entropy": self.entropy.state_dict(),
            "num_updates": self.num_updates,
            "generator": self.generator.get_state(),
            "metric_sums": self._metric_sums.detach().clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a ``state_dict`` in place (tensor addresses are kept, so compiled code and captured CUDA
        graphs stay valid)."""
        if state.get("kind") != type(self).__name__:
            raise ValueError(f"{type(self).__name__}.load_state_dict: state was saved by {state.get('kind')!r}")
        if (state["alpha_optim"] is None) != (self.alpha_optim is None):
            raise ValueError(f"{type(self).__name__}.load_state_dict: the state's alpha mode (learned or fixed) "
                             "differs from this learner's (cfg.fixed_alpha)")
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.target_critic.load_state_dict(state["target_critic"])
        self.actor_optim.load_state_dict(state["actor_optim"])
        self.critic_optim.load_state_dict(state["critic_optim"])
        if self.alpha_optim is not None:
            self.alpha_optim.load_state_dict(state["alpha_optim"])
        self.entropy.load_state_dict(state["entropy"])
        self.num_updates = int(state["num_updates"])
        self.generator.set_state(state["generator"])
        with torch.no_grad():
            self._metric_sums.copy_(state["metric_sums"])

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(obs_dim={self.obs_dim}, device={self.device}, backend={self.backend!r}, "
                f"compile={self.cfg.compile}, cuda_graph={self.use_cuda_graph}, num_updates={self.num_updates})")


def _as_obs(obs: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, bool]:
    """(N, obs_dim) float32 on ``device``; a single (obs_dim,) observation is batched (and unbatched on return)."""
    obs = torch.as_tensor(obs, device=device, dtype=torch.float32)
    return (obs.unsqueeze(0), True) if obs.dim() == 1 else (obs, False)


class SACLearner(_Learner):
    """Continuous SAC: tanh-squashed Gaussian actor, twin critics Q(s, a), learned temperature.

    Actions are in [-1, 1] (the env wrapper rescales them to the env's bounds).
    """

    discrete = False

    def __init__(self, obs_dim: int, action_dim: int, cfg: LearnerConfig | None = None, device="cpu"):
        self.action_dim = int(action_dim)
        cfg = LearnerConfig() if cfg is None else cfg
        self.log_std_bounds = (cfg.log_std_min, cfg.log_std_max)
        super().__init__(obs_dim, action_dim, cfg, device)

    def _build_networks(self, n):
        hidden = self.cfg.hidden_sizes
        return Actor(self.obs_dim, n, hidden), ContinuousTwinQ(self.obs_dim, n, hidden)

    def _build_entropy(self, n):
        cfg = self.cfg
        return EntropyModule(n, initial_alpha=cfg.initial_alpha, lr=cfg.alpha_lr, device=self.device,
                             target_entropy=cfg.target_entropy, fixed_alpha=cfg.fixed_alpha)

    def _noise_shape(self, batch_size):
        return (2, batch_size, self.action_dim)  # [0]: next-state action (target), [1]: current action (actor)

    def critic_target(self, reward, terminated, next_obs, noise) -> torch.Tensor:
        """``r + gamma * (1 - terminated) * (min_j Q'_j(s', a') - alpha * log pi(a'|s'))`` with ``a' ~ pi(.|s')``
        from ``noise`` (batch, action_dim); no gradient. Truncated transitions are stored as not terminated and
        bootstrap."""
        with torch.no_grad():
            reward, not_done = self._rewards_and_mask(reward, terminated)
            mean, log_std = self.actor(next_obs)
            next_action, next_log_prob = ops.squashed_gaussian(
                mean, log_std, noise, log_std_bounds=self.log_std_bounds, backend=self.backend)
            next_q = self.target_critic(next_obs, next_action).amin(dim=0)
            return reward + self.cfg.gamma * not_done * (next_q - self.alpha * next_log_prob)

    def actor_and_alpha_losses(self, obs, noise) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(actor_loss, alpha_loss, entropy)`` from ONE fused-op call: ``a ~ pi(.|s)`` reparameterised by
        ``noise``; ``actor_loss = mean(alpha * log pi(a|s) - min_j Q_j(s, a))`` (alpha detached);
        ``alpha_loss = -log_alpha * mean(log pi + target)`` (gradient to log_alpha only); ``entropy`` is the
        detached estimate ``-mean(log pi)``."""
        mean, log_std = self.actor(obs)
        action, log_prob, alpha_loss = ops.squashed_gaussian_with_alpha_loss(
            mean, log_std, noise, self.entropy.log_alpha, self.entropy.target_tensor,
            log_std_bounds=self.log_std_bounds, backend=self.backend)
        actor_loss = (self.alpha * log_prob - self.critic(obs, action).amin(dim=0)).mean()
        return actor_loss, alpha_loss, -log_prob.detach().mean()

    def _update(self, obs, action, reward, next_obs, terminated, noise, update_actor: bool) -> None:
        # Critic: both critics regress onto one target from the target critics (min over the pair).
        q_target = self.critic_target(reward, terminated, next_obs, noise[0])
        q = self.critic(obs, action)  # (2, batch)
        self._finish_update(q, q_target, update_actor, obs, noise[1])

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """Actions in [-1, 1] for ``obs`` (N, obs_dim) -> (N, action_dim) (or (obs_dim,) -> (action_dim,)).
        Eager (compiling batch-1 acting is slower on CPU); stochastic actions draw from the learner's generator."""
        obs, single = _as_obs(obs, self.device)
        mean, log_std = self.actor(obs)
        if deterministic:
            action = ops.deterministic_action(mean)
        else:
            noise = torch.empty_like(mean).normal_(generator=self.generator)
            action, _ = ops.squashed_gaussian(mean, log_std, noise, log_std_bounds=self.log_std_bounds,
                                              backend=self.backend)
        return action[0] if single else action


class DiscreteSACLearner(_Learner):
    """Discrete SAC: categorical actor, twin critics Q(s, .) over all actions; every expectation over the policy
    is taken exactly over all actions (critic target, actor loss, alpha loss), never from a sampled action."""

    discrete = True

    def __init__(self, obs_dim: int, num_actions: int, cfg: LearnerConfig | None = None, device="cpu"):
        self.num_actions = int(num_actions)
        super().__init__(obs_dim, num_actions, LearnerConfig() if cfg is None else cfg, device)

    def _build_networks(self, n):
        hidden = self.cfg.hidden_sizes
        return DiscreteActor(self.obs_dim, n, hidden), DiscreteTwinQ(self.obs_dim, n, hidden)

    def _build_entropy(self, n):
        cfg = self.cfg
        scale = None if cfg.target_entropy is not None else cfg.target_entropy_scale
        return EntropyModuleDiscrete(n, initial_alpha=cfg.initial_alpha, lr=cfg.alpha_lr, device=self.device,
                                     target_entropy=cfg.target_entropy, target_entropy_scale=scale,
                                     fixed_alpha=cfg.fixed_alpha)

    def _noise_shape(self, batch_size):
        return (0,)  # no sampling in the update: all expectations are exact

    def critic_target(self, reward, terminated, next_obs, noise=None) -> torch.Tensor:
        """``r + gamma * (1 - terminated) * sum_a pi(a|s') (min_j Q'_j(s', a) - alpha * log pi(a|s'))``: the soft
        value of ``s'`` as an exact expectation over all actions; no gradient. (``noise`` is unused.)"""
        with torch.no_grad():
            reward, not_done = self._rewards_and_mask(reward, terminated)
            probs, log_probs, _ = ops.categorical(self.actor(next_obs), backend=self.backend)
            next_q = self.target_critic(next_obs).amin(dim=0)  # (batch, num_actions)
            next_v = (probs * (next_q - self.alpha * log_probs)).sum(dim=-1)
            return reward + self.cfg.gamma * not_done * next_v

    def actor_and_alpha_losses(self, obs, noise=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(actor_loss, alpha_loss, entropy)`` from ONE fused-op call, all exact expectations over actions:
        ``actor_loss = mean_s sum_a pi(a|s) (alpha * log pi(a|s) - min_j Q_j(s, a))`` (Q and alpha detached),
        ``alpha_loss = log_alpha * (mean_s H(pi(.|s)) - target)``, ``entropy = mean_s H`` (detached)."""
        probs, log_probs, entropy, alpha_loss = ops.categorical_with_alpha_loss(
            self.actor(obs), self.entropy.log_alpha, self.entropy.target_tensor, backend=self.backend)
        with torch.no_grad():
            q = self.critic(obs).amin(dim=0)
        actor_loss = (probs * (self.alpha * log_probs - q)).sum(dim=-1).mean()
        return actor_loss, alpha_loss, entropy.detach().mean()

    def _update(self, obs, action, reward, next_obs, terminated, noise, update_actor: bool) -> None:
        # Critic: Q_j(s, a) of the taken action for both critics against one target (min over the target pair).
        q_target = self.critic_target(reward, terminated, next_obs)
        taken = action.reshape(1, -1, 1).long().expand(self.critic.num_critics, -1, 1)
        q = self.critic(obs).gather(2, taken).squeeze(2)  # (2, batch)
        self._finish_update(q, q_target, update_actor, obs)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """int64 actions (N,) for ``obs`` (N, obs_dim) (or a 0-dim action for one (obs_dim,) observation):
        the most likely action, or a sample from the policy drawn with the learner's generator."""
        obs, single = _as_obs(obs, self.device)
        logits = self.actor(obs)
        if deterministic:
            action = logits.argmax(dim=-1)
        else:
            action = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=self.generator).squeeze(-1)
        return action[0] if single else action


def make_learner(obs_dim: int, action_spec: Any, cfg: LearnerConfig | None = None,
                 device: torch.device | str = "cpu") -> SACLearner | DiscreteSACLearner:
    """``SACLearner`` or ``DiscreteSACLearner`` for ``action_spec`` (see ``ActionSpec.from_any``)."""
    spec = ActionSpec.from_any(action_spec)
    cls = DiscreteSACLearner if spec.discrete else SACLearner
    return cls(obs_dim, spec.n, LearnerConfig() if cfg is None else cfg, device)
