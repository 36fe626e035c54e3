"""Learners (SAC, discrete SAC, CrossQ), their networks and optimizer.

``make_learner(obs_dim, action_spec, cfg, device)`` returns the learner for ``cfg.agent`` and the action space.
Files: ``config.py`` (LearnerConfig, ActionSpec), ``learner.py`` (what every learner shares), ``sac.py``,
``discrete_sac.py``, ``crossq.py`` (the algorithms), ``networks.py``, ``normed_networks.py`` (LayerNorm, SimBa and
batch-renorm networks), ``normalization.py`` (BatchRenorm, RunningObsNorm), ``optim.py`` (ForeachAdam),
``compilation.py`` and ``cuda_graph.py`` (one compiled graph, CUDA-graph replay, and their fallbacks), ``rng.py``
(generator states across devices).
"""

from __future__ import annotations

from typing import Any

import torch

from fastsac.agents.config import ActionSpec, LearnerConfig
from fastsac.agents.crossq import CrossQLearner
from fastsac.agents.discrete_sac import DiscreteSACLearner
from fastsac.agents.learner import Learner
from fastsac.agents.sac import SACLearner

__all__ = ["ActionSpec", "CrossQLearner", "DiscreteSACLearner", "Learner", "LearnerConfig", "SACLearner",
           "make_learner"]


def make_learner(obs_dim: int, action_spec: Any, cfg: LearnerConfig | None = None,
                 device: torch.device | str = "cpu") -> Learner:
    """The learner for ``cfg.agent`` and ``action_spec`` (see ``ActionSpec.from_any``): ``SACLearner`` or
    ``DiscreteSACLearner`` for ``sac``, ``CrossQLearner`` for ``crossq`` (continuous actions only)."""
    spec = ActionSpec.from_any(action_spec)
    cfg = LearnerConfig() if cfg is None else cfg
    if cfg.agent == "crossq":
        if spec.discrete:
            raise ValueError(f"agent 'crossq' is for continuous actions; this env has {spec.n} discrete actions. "
                             "Use agent 'sac' (discrete SAC) for it (--agent sac)")
        return CrossQLearner(obs_dim, spec.n, cfg, device)
    cls = DiscreteSACLearner if spec.discrete else SACLearner
    return cls(obs_dim, spec.n, cfg, device)
