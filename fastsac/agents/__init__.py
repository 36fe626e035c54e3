"""Learners (SAC, discrete SAC, CrossQ, FlashSAC), their networks and optimizer, and how an update runs.

``make_learner(obs_dim, action_spec, cfg, device)`` returns the learner for ``cfg.agent`` and the action space.
Files: ``config.py`` (LearnerConfig, ActionSpec), ``learner.py`` (what every learner shares), ``sac.py``,
``discrete_sac.py``, ``crossq.py``, ``flashsac.py`` (the algorithms, each update read top to bottom in its
``_update``),
``sac_native.py`` (SAC's update as one C++ call on a CPU), ``networks.py``, ``normed_networks.py`` (LayerNorm,
SimBa and batch-renorm networks), ``flash_networks.py`` (FlashSAC's), ``noise_repeat.py`` (FlashSAC's repeated
exploration noise), ``normalization.py`` (BatchRenorm, RunningObsNorm), ``optim.py`` (ForeachAdam),
``cost.py`` (an update's matrix-product FLOPs), ``rng.py`` (generator states across devices); ``runners/`` (how an
update runs: the one choice, eager / torch.compile / native, the first-call check, CUDA-graph replay).
"""

from __future__ import annotations

from typing import Any

import torch

from fastsac.agents.config import ActionSpec, LearnerConfig
from fastsac.agents.crossq import CrossQLearner
from fastsac.agents.discrete_sac import DiscreteSACLearner
from fastsac.agents.flashsac import FlashSACLearner
from fastsac.agents.learner import Learner
from fastsac.agents.sac import SACLearner

__all__ = ["ActionSpec", "CrossQLearner", "DiscreteSACLearner", "FlashSACLearner", "Learner", "LearnerConfig",
           "SACLearner", "learner_class", "make_learner"]


def learner_class(agent: str, discrete: bool) -> type[Learner]:
    """The learner class for ``agent`` ("sac", "crossq" or "flashsac") and the kind of action space."""
    continuous_only = {"crossq": CrossQLearner, "flashsac": FlashSACLearner}
    if agent in continuous_only:
        if discrete:
            raise ValueError(f"agent {agent!r} is for continuous actions; this env has discrete actions. "
                             "Use agent 'sac' (discrete SAC) for it (--agent sac)")
        return continuous_only[agent]
    return DiscreteSACLearner if discrete else SACLearner


def make_learner(obs_dim: int, action_spec: Any, cfg: LearnerConfig | None = None,
                 device: torch.device | str = "cpu", *, policy_obs_dim: int | None = None) -> Learner:
    """The learner for ``cfg.agent`` and ``action_spec`` (see ``ActionSpec.from_any``): ``SACLearner`` or
    ``DiscreteSACLearner`` for ``sac``, ``CrossQLearner`` for ``crossq`` and ``FlashSACLearner`` for ``flashsac``
    (continuous actions only). ``policy_obs_dim``: asymmetric critics (continuous SAC), the policy reading the first
    ``policy_obs_dim`` features of each observation and the critics all ``obs_dim`` (an env's ``policy_obs_dim``)."""
    spec = ActionSpec.from_any(action_spec)
    cfg = LearnerConfig() if cfg is None else cfg
    cls = learner_class(cfg.agent, spec.discrete)
    if policy_obs_dim is None:
        return cls(obs_dim, spec.n, cfg, device)
    if cls is not SACLearner:
        raise ValueError(f"asymmetric critics (privileged critic observations, policy_obs_dim) are built for "
                         f"continuous SAC, not {cls.__name__}; use agent 'sac' or leave privileged_critic off")
    return cls(obs_dim, spec.n, cfg, device, policy_obs_dim=policy_obs_dim)
