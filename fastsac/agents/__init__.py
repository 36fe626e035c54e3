"""Learners (SAC, discrete SAC), their networks and optimizer.

``make_learner(obs_dim, action_spec, cfg, device)`` returns the learner for an action space. Files: ``config.py``
(LearnerConfig, ActionSpec), ``learner.py`` (what every learner shares), ``sac.py``, ``discrete_sac.py`` (the
algorithms), ``networks.py``, ``optim.py`` (ForeachAdam), ``compilation.py`` and ``cuda_graph.py``.
"""

from __future__ import annotations

from typing import Any

import torch

from fastsac.agents.config import ActionSpec, LearnerConfig
from fastsac.agents.discrete_sac import DiscreteSACLearner
from fastsac.agents.learner import Learner
from fastsac.agents.sac import SACLearner

__all__ = ["ActionSpec", "DiscreteSACLearner", "Learner", "LearnerConfig", "SACLearner", "make_learner"]


def make_learner(obs_dim: int, action_spec: Any, cfg: LearnerConfig | None = None,
                 device: torch.device | str = "cpu") -> SACLearner | DiscreteSACLearner:
    """``SACLearner`` or ``DiscreteSACLearner`` for ``action_spec`` (see ``ActionSpec.from_any``)."""
    spec = ActionSpec.from_any(action_spec)
    cls = DiscreteSACLearner if spec.discrete else SACLearner
    return cls(obs_dim, spec.n, LearnerConfig() if cfg is None else cfg, device)
