"""The machinery every learner shares: :class:`Learner`.

A learner owns its networks, target critics (unless ``uses_target_critic`` is False: CrossQ), optimizers
(``ForeachAdam``), entropy module, optional running observation normalization (``cfg.obs_norm``) and a noise
generator, and runs one update per call of :meth:`Learner.update` (k per call of :meth:`Learner.update_many`). The algorithm itself lives in the subclasses,
each in its own file, whose ``_update`` reads top to bottom: target, critic loss and step, actor and temperature
losses and step, target update (``fastsac.agents.sac``, ``fastsac.agents.discrete_sac``, ``fastsac.agents.crossq``).
This module holds what they share: the steps' small pieces (gradients, the actor-and-temperature step, the target
lerp, on-device metrics), the checks of an update's inputs, and checkpoints.

How the update runs (eager, ``torch.compile`` as one graph, a learner's native C++ update, each replayed from CUDA
graphs on a GPU) is decided once, in the constructor, by ``fastsac.agents.runners.choose_update`` from
``cfg.update``, and done by the learner's :attr:`Learner.runner` (``fastsac.agents.runners``), which knows no
learner by name. Gradients come from ``torch.autograd.grad`` (no ``.grad`` attributes) and are applied by
``ForeachAdam`` (``fastsac.agents.optim``), so the whole step traces as ONE graph under
``torch.compile(fullgraph=True)``.

Policy delay (actor and alpha every ``policy_delay`` critic steps): ``_update`` takes a Python bool
``update_actor``; ``torch.compile`` specialises on it, so there are two single-graph variants (critic+actor+alpha+
target, and critic+target), compiled on first use (the critic-only one only when ``policy_delay > 1``), and on
CUDA two captured graphs (a masked single graph would run the actor's forward and backward every step for nothing).

Randomness: the learner owns a ``torch.Generator`` on its device, seeded by ``cfg.seed``; ``act`` and the update's
noise draw from it (outside the compiled graph, so every implementation of the update uses identical noise and the
CUDA graph holds no RNG state). Its state is part of ``state_dict``; loaded on another device type it is reseeded
deterministically instead (``fastsac.agents.rng``; ``rng_note`` says so).

Acting inside the update: ``update(batch, act_obs=obs)`` also returns the stochastic policy's actions for ``obs``
after the update, the very actions ``act(obs)`` called right after it would return (the same generator draws in
the same order: the update's noise, then the actions' noise). Learners whose ``acts_in_update`` is True compute
them at the end of ``_update``, so they are part of the compiled graph (and of the CUDA graph); the trainer's loop
uses this whenever an env step is followed by exactly one update. On a CPU a separate ``act`` right after an update
costs a few percent of a step, almost all of it cold code and data.

Observation normalization (``cfg.uses_obs_norm``, SimBa's running statistics; ``fastsac.agents.normalization``):
the statistics are updated *inside* the update, from each batch's observations, before that batch is normalized
(the next observations too) and handed to ``_update``; ``act`` normalizes with the current statistics. Inside, so
the update stays one graph (and one CUDA graph: the statistics are buffers updated in place) and any caller of
``update`` gets it without a hook in its loop; the price is that the statistics weight each stored observation by
how often it is sampled, where SimBa counts each env observation once.

Fallbacks: a fast path that cannot run here (a fused-op backend failing its self-check, compiling, capturing) is
replaced by the next one with one warning and kept in ``fallbacks`` (``fastsac.fallbacks``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from fastsac import ops
from fastsac.agents.categorical import support_atoms
from fastsac.agents.config import LearnerConfig
from fastsac.agents.normalization import ReturnScale, RunningObsNorm
from fastsac.agents.optim import ForeachAdam, lr_schedule
from fastsac.agents.precision import amp_dtype
from fastsac.agents.rng import load_generator
from fastsac.agents.runners import VERIFY_RTOL, BlockRunner, UpdateRunner, choose_update
from fastsac.fallbacks import Fallback
from fastsac.ops import selfcheck

__all__ = ["Learner", "as_obs"]

# Layout of the on-device accumulator: critic sums, critic count, actor sums, actor count.
_CRITIC, _N_CRITIC, _ACTOR, _N_ACTOR = slice(0, 2), 2, slice(3, 6), 6
_SUMS = ("critic_loss", "q_mean", "critic_updates", "actor_loss", "entropy", "alpha_loss", "actor_updates")


class Learner:
    """Machinery shared by every learner; subclasses define the networks, the entropy module, ``_update``, ``act``
    (and, acting inside the update, ``_act_noise_shape`` and ``_sample_actions``)."""

    discrete: bool
    uses_target_critic = True  #: False: no target critics (CrossQ bootstraps from the critics themselves)
    #: True: ``_update`` takes ``act_obs, act_noise`` and returns the policy's actions for them (from
    #: ``_sample_actions``); False: ``update(batch, act_obs)`` calls ``act`` after the update (the same actions).
    acts_in_update = False
    #: asymmetric critics (SAC): the policy's part of an observation (its first features); None: all of it
    policy_obs_dim: int | None = None
    #: How far a fast update's first call may differ from the eager one (``fastsac.agents.runners.CheckedRunner``)
    first_call_rtol = VERIFY_RTOL

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
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False) if self.uses_target_critic else None
        self.obs_norm = RunningObsNorm(self.obs_dim).to(self.device) if cfg.uses_obs_norm else None
        #: the categorical critics' atoms (``cfg.critic='categorical'``), None for scalar critics
        self.critic_support = support_atoms(cfg.critic_bins, cfg.critic_v_min, cfg.critic_v_max, self.device) \
            if cfg.critic == "categorical" else None
        #: the running return scale rewards are divided by (``cfg.reward_norm``), sized by :meth:`attach_envs`
        self.reward_scale: ReturnScale | None = None
        self._size_reward_scale(1)
        self.entropy = self._build_entropy(n)
        self.actor_params = list(self.actor.parameters())
        self.critic_params = list(self.critic.parameters())
        self.target_params = list(self.target_critic.parameters()) if self.target_critic is not None else []
        betas = (cfg.adam_beta1, 0.999)
        self.actor_optim = ForeachAdam(self.actor_params, lr=cfg.actor_lr, betas=betas,
                                       schedule=lr_schedule(cfg, cfg.actor_lr))
        self.critic_optim = ForeachAdam(self.critic_params, lr=cfg.critic_lr, betas=betas,
                                        schedule=lr_schedule(cfg, cfg.critic_lr))
        self.alpha_optim = ForeachAdam([self.entropy.log_alpha], lr=cfg.alpha_lr,
                                       schedule=lr_schedule(cfg, cfg.alpha_lr)) if self.entropy.learnable else None
        self.backend = ops.resolve_backend(torch.empty(1, device=self.device), backend=cfg.backend)
        # Fast paths that could not run here (a backend's self-check, compile, capture): said once, kept for the run.
        self.fallbacks: list[Fallback] = selfcheck.failures(self.device)
        #: the networks' autocast dtype (``cfg.amp``, ``fastsac.agents.precision``), None: float32
        self.amp_dtype = amp_dtype(cfg.amp, self.device, self.fallbacks)
        self.rng_note: str | None = None  # set by load_state_dict when the saved generator came from another device
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(cfg.seed)
        self._metric_sums = torch.zeros(7, dtype=torch.float32, device=self.device)
        self.num_updates = 0
        self._grad_reducer: Callable[[list[torch.Tensor]], list[torch.Tensor]] | None = None
        #: how the update runs (eager, compile or native) and why: decided here, once
        self.update_choice = choose_update(type(self), cfg, self.device, asymmetric=self.policy_obs_dim is not None)
        #: runs every update (``fastsac.agents.runners.UpdateRunner``): its ``kind``, ``describe()``, fallbacks
        self.runner = self._build_runner(self.device if cfg.cuda_graph and self.device.type == "cuda" else None)
        self._block_runner: BlockRunner | None = None  # runs update_many, built at its first call

    def _build_runner(self, graph_device: torch.device | None) -> UpdateRunner:
        """The runner of :attr:`update_choice`, replaying from CUDA graphs on ``graph_device`` (None: no graphs)."""
        # Without observation normalization the update is _update itself (compiled code is cached per code object,
        # up to 8 entries, and _update's is each learner class's own).
        update = self._normalized_update if self.obs_norm is not None else self._update
        return UpdateRunner(self.update_choice, update, native=self.native_update, what=f"{type(self).__name__} update",
                            mutable=self._mutable_tensors, compared=self._compared_tensors, fallbacks=self.fallbacks,
                            graph_device=graph_device, rtol=self.first_call_rtol)

    @classmethod
    def native_unsupported(cls, cfg: LearnerConfig, device: torch.device, *, data_parallel: bool = False) -> str | None:
        """Why a learner of this class built from ``cfg`` on ``device`` has no native update (a sentence), or None
        where it has one (``fastsac.agents.runners.choose_update`` asks). ``data_parallel``: its gradients will be
        averaged over ranks by a ``grad_reducer``. Learners with a native update override this and
        :meth:`native_update`."""
        return f"{cls.__name__} has no native update"

    def native_update(self) -> Callable[..., torch.Tensor | None]:
        """This learner's native implementation of ``_update`` (same signature and effect), where
        :meth:`native_unsupported` is None."""
        raise NotImplementedError(f"{type(self).__name__} has no native update")

    @property
    def grad_reducer(self) -> Callable[[list[torch.Tensor]], list[torch.Tensor]] | None:
        """Data-parallel hook: maps each backward pass's gradients to what the optimizers apply (the average over
        ranks, ``fastsac.training.distributed``). None (single process): the gradients as computed, at no cost.
        Set it before the first update; it is traced into the compiled update. The native update has no place for
        it: a learner built with ``update='native'`` (or ``auto`` where native applies) refuses one."""
        return self._grad_reducer

    @grad_reducer.setter
    def grad_reducer(self, reducer: Callable[[list[torch.Tensor]], list[torch.Tensor]] | None) -> None:
        if reducer is not None and self.runner.kind == "native":
            raise ValueError(f"{type(self).__name__}: the native update has no place for a data-parallel "
                             "grad_reducer; build the learner with update='compile' (a data-parallel run chooses it)")
        self._grad_reducer = reducer

    # ------------------------------------------------------------------------------------------ the envs' side
    def attach_envs(self, num_envs: int) -> None:
        """Size the per-env state this learner keeps for the ``num_envs`` envs it acts in and observes: each env's
        running return (``cfg.reward_norm``) and, in FlashSAC, the held exploration noise. The trainer calls it
        once, before a checkpoint is loaded; a learner built alone keeps state for one env."""
        self._size_reward_scale(num_envs)

    def _size_reward_scale(self, num_envs: int) -> None:
        """A fresh return scale for ``num_envs`` envs under ``cfg.reward_norm`` (kept when already of that size)."""
        num_envs = int(num_envs)
        if self.cfg.reward_norm and (self.reward_scale is None or self.reward_scale.num_envs != num_envs):
            self.reward_scale = ReturnScale(num_envs, gamma=self.cfg.gamma, g_max=self.cfg.critic_v_max).to(
                self.device)

    @property
    def observes_steps(self) -> bool:
        """Whether the trainer must call :meth:`observe_step` with every env step: True under ``cfg.reward_norm``
        (the running return scale learns from the env's rewards, not from the sampled batches)."""
        return self.reward_scale is not None

    def observe_step(self, reward: torch.Tensor, terminated: torch.Tensor, truncated: torch.Tensor) -> None:
        """One env step of every env ((num_envs,) each): advances each env's running return and the return
        statistics (reward scaling; nothing without it). The trainer calls it for every step, random ones
        included, where :attr:`observes_steps`."""
        if self.reward_scale is not None:
            self.reward_scale.update_(reward.to(self.device), terminated.to(self.device), truncated.to(self.device))

    # -------------------------------------------------------------------------------------------- subclass API
    def _build_networks(self, n: int) -> tuple[nn.Module, nn.Module]:
        raise NotImplementedError

    def _build_entropy(self, n: int):
        raise NotImplementedError

    def _noise_shape(self, batch_size: int) -> tuple[int, ...]:
        raise NotImplementedError

    def _update(self, obs, action, reward, next_obs, terminated, noise, update_actor: bool,
                act_obs=None, act_noise=None) -> torch.Tensor | None:
        """One update; with ``acts_in_update``, also ``act_obs`` (N, obs_dim; normalized) and ``act_noise``
        (``_act_noise_shape(N)``), and it returns ``_actions_after_update(act_obs, act_noise)`` (None without)."""
        raise NotImplementedError

    def _act_noise_shape(self, n: int) -> tuple[int, ...]:
        """The noise ``act`` draws for ``n`` observations (what ``_sample_actions`` takes)."""
        raise NotImplementedError

    def _sample_actions(self, policy_obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Stochastic actions for ``policy_obs`` (the policy's input: normalized when ``cfg.uses_obs_norm``) from
        ``noise``; what ``act`` returns and, with ``acts_in_update``, the end of ``_update``."""
        raise NotImplementedError

    def _actions_after_update(self, act_obs: torch.Tensor | None, act_noise: torch.Tensor | None):
        """The last line of ``_update`` in learners that act inside it: ``_sample_actions`` with the updated
        networks (None without ``act_obs``)."""
        if act_obs is None:
            return None
        with torch.no_grad():
            return self._sample_actions(act_obs, act_noise)

    def _normalized_update(self, obs, action, reward, next_obs, terminated, noise, update_actor: bool,
                           act_obs=None, act_noise=None) -> torch.Tensor | None:
        """What is compiled when ``cfg.uses_obs_norm``: ``_update``, first updating the observation statistics from
        ``obs`` and normalizing ``obs``, ``next_obs`` (and ``act_obs``) with them (without observation
        normalization: ``_update``)."""
        if self.obs_norm is not None:
            self.obs_norm.update_(obs)
            obs, next_obs = self.obs_norm(obs), self.obs_norm(next_obs)
            act_obs = None if act_obs is None else self.obs_norm(act_obs)
        act = () if act_obs is None else (act_obs, act_noise)  # learners that do not act inside take no such args
        return self._update(obs, action, reward, next_obs, terminated, noise, update_actor, *act)

    def prepare_obs(self, obs: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """``as_obs`` (batched float32 on the device; True if a single observation was batched), normalized by
        the running statistics when ``cfg.uses_obs_norm``: the policy's input in ``act``."""
        obs, single = as_obs(obs, self.device)
        return (obs if self.obs_norm is None else self.obs_norm(obs)), single

    # ---------------------------------------------------------------------------------------------- shared math
    @property
    def alpha(self) -> torch.Tensor:
        """The entropy coefficient ``exp(log_alpha)``, detached (0-dim device tensor; no host sync)."""
        return self.entropy.log_alpha.detach().exp()

    def _rewards_and_mask(self, reward: torch.Tensor, terminated: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flatten ``reward`` (divided by the running return scale under ``cfg.reward_norm``) and turn
        ``terminated`` (bool or float) into the bootstrap mask ``1 - terminated``."""
        reward = reward.reshape(-1).float()
        if self.reward_scale is not None:
            reward = self.reward_scale(reward)
        return reward, 1.0 - terminated.reshape(-1).to(reward.dtype)

    def _actor_and_alpha_step(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The actor's and the temperature's step: ``actor_and_alpha_losses(*inputs)`` (the learner's), one backward
        pass of ``actor_loss + alpha_loss`` (alpha_loss reaches only log_alpha, actor_loss never does), then the
        actor's and (when learned) log_alpha's Adam steps. Returns the metrics ``(actor_loss, entropy, alpha_loss)``,
        detached."""
        actor_loss, alpha_loss, entropy = self.actor_and_alpha_losses(*inputs)
        learn_alpha = self.alpha_optim is not None
        params = self.actor_params + ([self.entropy.log_alpha] if learn_alpha else [])
        grads = self._grads(actor_loss + alpha_loss if learn_alpha else actor_loss, params)
        self.actor_optim.step(grads[: len(self.actor_params)])
        if learn_alpha:
            self.alpha_optim.step(grads[len(self.actor_params):])
        return actor_loss.detach(), entropy, alpha_loss.detach()

    def _grads(self, loss: torch.Tensor, params: list[torch.Tensor]) -> Sequence[torch.Tensor]:
        """The gradients of ``loss`` with respect to ``params``, through :attr:`grad_reducer` (data parallel)."""
        return self._reduce(torch.autograd.grad(loss, params))

    def _reduce(self, grads: Sequence[torch.Tensor]) -> Sequence[torch.Tensor]:
        """``grads`` through :attr:`grad_reducer` (one call per backward pass), or unchanged without one."""
        return grads if self.grad_reducer is None else self.grad_reducer(list(grads))

    def _record(self, critic_loss, q_mean, actor=None) -> None:
        """Add this step's metrics to the on-device accumulator (no host sync)."""
        one = torch.ones((), dtype=torch.float32, device=self.device)
        with torch.no_grad():
            if actor is None:
                self._metric_sums[:3].add_(torch.stack([critic_loss, q_mean, one]))
            else:
                self._metric_sums.add_(torch.stack([critic_loss, q_mean, one, *actor, one]))

    def _update_target(self) -> None:
        if self.target_critic is None:
            return
        with torch.no_grad():
            torch._foreach_lerp_(self.target_params, self.critic_params, self.cfg.tau)

    # ------------------------------------------------------------------------------------------------- update
    def update(self, batch: Sequence[torch.Tensor], act_obs: torch.Tensor | None = None) -> torch.Tensor | None:
        """One gradient step on ``batch = (obs, action, reward, next_obs, terminated)`` (``fastsac.data.Batch``
        or any sequence in that order; on the learner's device), run by :attr:`runner`. Asynchronous: nothing is
        read back to the host. Actor and alpha are updated when ``num_updates % policy_delay == 0``; the entropy
        schedule advances by 1.

        With ``act_obs`` (observations, as ``act`` takes them): returns the stochastic policy's actions for them
        after this update, exactly what ``act(act_obs)`` called right after would return, computed inside the
        (compiled, captured) update where the learner can (``acts_in_update``). None without ``act_obs``."""
        self._check_batch(batch)
        inside, single = None, False  # the observations the update itself acts on
        if act_obs is not None and self.acts_in_update:
            inside, single = as_obs(act_obs, self.device)
            self._check_act_obs(inside)
        obs, action, reward, next_obs, terminated = batch
        update_actor = self.num_updates % self.cfg.policy_delay == 0
        noise = self._draw_noise(obs.shape[0])  # the update's noise, then the actions'
        acting = () if inside is None else (inside, self._draw_act_noise(inside.shape[0]))
        actions = self.runner(obs, action, reward, next_obs, terminated, noise, update_actor, *acting)
        self.num_updates += 1
        self.entropy.advance_schedule(1)
        if act_obs is None:
            return None
        if not acting:
            return self.act(act_obs)
        return actions[0] if single else actions

    def update_many(self, batch: Sequence[torch.Tensor], k: int) -> None:
        """``k`` updates from one call: ``batch`` (as :meth:`update` takes it) holds ``k * B`` samples, split into
        ``k`` consecutive minibatches of ``B``. The same as ``update`` on each in turn (the same noise draws and
        policy-delay pattern), except that an entropy schedule moves by ``k`` after the block; on CUDA with graphs
        the ``k`` updates replay as one CUDA graph (``fastsac.agents.runners.BlockRunner``). Asynchronous."""
        self._check_batch(batch)
        n = batch[0].shape[0]
        if isinstance(k, bool) or int(k) != k or k < 1 or n % k:
            raise ValueError(f"{type(self).__name__}.update_many: k must be an int >= 1 dividing the {n} samples, "
                             f"got {k!r}")
        k, size = int(k), n // int(k)
        if self._block_runner is None:
            self._block_runner = BlockRunner(self.runner, self.runner.graph_device, self._mutable_tensors,
                                             self.fallbacks)
        parts = [t.reshape(k, size, *t.shape[1:]) for t in batch]
        noise = torch.stack([self._draw_noise(size) for _ in range(k)])
        flags = tuple((self.num_updates + i) % self.cfg.policy_delay == 0 for i in range(k))
        self._block_runner(*parts, noise, flags)
        self.num_updates += k
        self.entropy.advance_schedule(k)

    def _check_batch(self, batch: Sequence[torch.Tensor]) -> None:
        """A ValueError naming what is wrong unless ``batch`` is ``(obs, action, reward, next_obs, terminated)`` of one
        batch size N: obs and next_obs (N, obs_dim), N rewards and N termination flags, and (continuous) actions
        (N, action_dim) or (discrete) N actions. Checked before anything is drawn or written."""
        if len(batch) != 5:
            raise ValueError(f"{type(self).__name__}.update: batch must be (obs, action, reward, next_obs, "
                             f"terminated), got {len(batch)} items")
        obs, action, reward, next_obs, terminated = batch
        n = obs.shape[0] if obs.dim() == 2 else -1
        rows = [("obs", obs, self.obs_dim), ("next_obs", next_obs, self.obs_dim)]
        rows += [] if self.discrete else [("action", action, self.action_dim)]
        for name, t, width in rows:
            if tuple(t.shape) != (n, width) or n < 1:
                raise ValueError(f"{type(self).__name__}.update: {name} must be ({'N' if n < 1 else n}, {width}), "
                                 f"got shape {tuple(t.shape)}")
        counted = [("reward", reward), ("terminated", terminated)] + ([("action", action)] if self.discrete else [])
        for name, t in counted:
            if t.numel() != n:
                raise ValueError(f"{type(self).__name__}.update: batch has {n} observations but {t.numel()} values "
                                 f"in {name} (shape {tuple(t.shape)})")

    def _check_act_obs(self, act_obs: torch.Tensor) -> None:
        if act_obs.dim() != 2 or act_obs.shape[1] != self.obs_dim:
            raise ValueError(f"{type(self).__name__}.update: act_obs must be (N, {self.obs_dim}) or ({self.obs_dim},) "
                             f"observations, got shape {tuple(act_obs.shape)}")

    def _draw_noise(self, batch_size: int) -> torch.Tensor:
        """The noise an update on ``batch_size`` samples draws (``_noise_shape``)."""
        out = torch.empty(self._noise_shape(batch_size), dtype=torch.float32, device=self.device)
        return out.normal_(generator=self.generator)

    def _draw_act_noise(self, n: int) -> torch.Tensor:
        """The noise ``act`` draws for ``n`` observations (the same draw, so acting inside the update or after it
        gives the same actions)."""
        out = torch.empty(self._act_noise_shape(n), dtype=torch.float32, device=self.device)
        return out.normal_(generator=self.generator)

    # ---- what an update writes -----------------------------------------------------------------------------
    def _mutable_tensors(self) -> list[torch.Tensor]:
        """Every tensor an update writes (restored after the warm-up runs that precede a capture)."""
        tensors = [*self.actor_params, *self.critic_params, *self.target_params, self.entropy.log_alpha]
        # Buffers written in place by an update: batch-renorm statistics (CrossQ), observation statistics.
        tensors += [*self.actor.buffers(), *self.critic.buffers()]
        if self.obs_norm is not None:
            tensors += list(self.obs_norm.buffers())
        for opt in (self.actor_optim, self.critic_optim, self.alpha_optim):
            if opt is not None:
                tensors += opt.state_tensors()
        return [*tensors, self._metric_sums]

    def _compared_tensors(self) -> list[tuple[str, torch.Tensor]]:
        """What a fast update's first call is checked on against the eager update (``runners.CheckedRunner``): what
        an update writes that changes smoothly with its arithmetic: the optimizers' moments, the networks' and
        observation normalization's buffers, each metric sum (the losses) on its own."""
        named = [(f"actor.{k}", t) for k, t in self.actor.named_buffers()]
        named += [(f"critic.{k}", t) for k, t in self.critic.named_buffers()]
        if self.obs_norm is not None:
            named += [(f"obs_norm.{k}", t) for k, t in self.obs_norm.named_buffers()]
        for name in ("actor_optim", "critic_optim", "alpha_optim"):
            opt = getattr(self, name)
            if opt is not None:
                named += [(f"{name}.exp_avg[{i}]", t) for i, t in enumerate(opt.exp_avg)]
                named += [(f"{name}.exp_avg_sq[{i}]", t) for i, t in enumerate(opt.exp_avg_sq)]
        return [*named, *((f"metric sums[{m}]", self._metric_sums[i:i + 1]) for i, m in enumerate(_SUMS))]

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
        """A snapshot (cloned tensors) of everything a resumed run needs to continue exactly: networks (with their
        buffers: batch-renorm statistics and step counters), target critics (None without), observation statistics
        (None without), optimizer states, the entropy module, the update counter, the learner's RNG and the metric
        sums, and the reward scale (under ``cfg.reward_norm``). Only tensors, numbers, strings, lists and dicts
        (``torch.load(weights_only=True)`` reads it)."""
        clone = lambda sd: {k: v.detach().clone() for k, v in sd.items()}  # noqa: E731
        return {
            "kind": type(self).__name__,
            "actor": clone(self.actor.state_dict()),
            "critic": clone(self.critic.state_dict()),
            "target_critic": None if self.target_critic is None else clone(self.target_critic.state_dict()),
            "actor_optim": self.actor_optim.state_dict(),
            "critic_optim": self.critic_optim.state_dict(),
            "alpha_optim": None if self.alpha_optim is None else self.alpha_optim.state_dict(),
            "entropy": self.entropy.state_dict(),
            "num_updates": self.num_updates,
            "generator": self.generator.get_state(),
            "generator_device": self.generator.device.type,
            "metric_sums": self._metric_sums.detach().clone(),
            **({} if self.obs_norm is None else {"obs_norm": clone(self.obs_norm.state_dict())}),
            **({} if self.reward_scale is None else {"reward_scale": clone(self.reward_scale.state_dict())}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a ``state_dict`` in place (tensor addresses are kept, so compiled code and captured CUDA
        graphs stay valid)."""
        if state.get("kind") != type(self).__name__:
            raise ValueError(f"{type(self).__name__}.load_state_dict: state was saved by {state.get('kind')!r}")
        if (state["alpha_optim"] is None) != (self.alpha_optim is None):
            raise ValueError(f"{type(self).__name__}.load_state_dict: the state's alpha mode (learned or fixed) "
                             "differs from this learner's (cfg.fixed_alpha)")
        if (state.get("reward_scale") is None) != (self.reward_scale is None):
            raise ValueError(f"{type(self).__name__}.load_state_dict: the state's reward scaling (on or off) differs "
                             "from this learner's (cfg.reward_norm)")
        if (state.get("obs_norm") is None) != (self.obs_norm is None):
            raise ValueError(f"{type(self).__name__}.load_state_dict: the state's observation normalization (on or "
                             "off) differs from this learner's (cfg.obs_norm)")
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        if self.target_critic is not None:
            self.target_critic.load_state_dict(state["target_critic"])
        if self.obs_norm is not None:
            self.obs_norm.load_state_dict(state["obs_norm"])
        if self.reward_scale is not None:
            self.reward_scale.load_state_dict(state["reward_scale"])  # sized by attach_envs: a mismatch raises
        self.actor_optim.load_state_dict(state["actor_optim"])
        self.critic_optim.load_state_dict(state["critic_optim"])
        if self.alpha_optim is not None:
            self.alpha_optim.load_state_dict(state["alpha_optim"])
        self.entropy.load_state_dict(state["entropy"])
        self.num_updates = int(state["num_updates"])
        self.rng_note = load_generator(self.generator, state["generator"], state.get("generator_device"),
                                       seed=self.cfg.seed, counter=self.num_updates)  # reseeds across device types
        with torch.no_grad():
            self._metric_sums.copy_(state["metric_sums"])

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(obs_dim={self.obs_dim}, device={self.device}, backend={self.backend!r}, "
                f"update={self.runner.describe()!r}, num_updates={self.num_updates})")


def as_obs(obs: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, bool]:
    """(N, obs_dim) float32 on ``device``; a single (obs_dim,) observation is batched (and unbatched on return)."""
    obs = torch.as_tensor(obs, device=device, dtype=torch.float32)
    return (obs.unsqueeze(0), True) if obs.dim() == 1 else (obs, False)
