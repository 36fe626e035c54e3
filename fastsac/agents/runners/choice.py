"""The one function that decides how a learner's update runs: :func:`choose_update`.

``cfg.update`` asks for one of :data:`UPDATE_BACKENDS`:

- ``eager``: the update as written, op by op;
- ``compile``: ``torch.compile`` of it as one graph (``fullgraph=True``);
- ``native``: the learner's hand-written C++ update (SAC's on a CPU: ``csrc/sac_update_cpu.cpp``); asking for it
  where it does not apply is an error that says why;
- ``auto``: the fastest that applies: native where the learner has one for this config and device, else compile.

On CUDA, whichever runs is also replayed from CUDA graphs (``cfg.cuda_graph``; ``fastsac.agents.runners.cuda_graph``).
Whether compiling pays for a short CPU run is the training run's decision, made before the learner exists
(``fastsac.training.resolve.decide_update``), which calls this function for the fast path it prices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["UPDATE_BACKENDS", "UpdateChoice", "choose_update"]

#: The values of ``LearnerConfig.update`` (and ``--update``).
UPDATE_BACKENDS = ("auto", "eager", "compile", "native")


@dataclass(frozen=True)
class UpdateChoice:
    """How an update runs (``backend``: eager, compile or native) and why (a sentence)."""

    backend: str
    reason: str


def choose_update(learner_cls: Any, cfg: Any, device: torch.device | str, *,
                  data_parallel: bool = False, asymmetric: bool = False) -> UpdateChoice:
    """How a ``learner_cls`` learner built from ``cfg`` on ``device`` runs its update (see the module docstring).

    ``data_parallel``: the learner's gradients will be averaged over ranks (``Learner.grad_reducer``), which the
    native update has no place for; ``asymmetric``: its critics see privileged observations its policy does not
    (``policy_obs_dim``), which the native update is not written for either. Raises ValueError for ``native`` where
    the learner has no native update here.
    """
    device = torch.device(device)
    requested = cfg.update
    if requested not in UPDATE_BACKENDS:
        raise ValueError(f"update must be one of {', '.join(UPDATE_BACKENDS)}, got {requested!r}")
    if requested in ("eager", "compile"):
        return UpdateChoice(requested, f"update {requested!r} requested")
    no_native = ("the critics see privileged observations the policy does not (asymmetric critics), which it is not "
                 "written for") if asymmetric else learner_cls.native_unsupported(cfg, device,
                                                                                   data_parallel=data_parallel)
    if requested == "native":
        if no_native is not None:
            raise ValueError(f"update 'native' cannot run here: {no_native}; use update 'compile' (or 'auto', which "
                             "takes the native update where it applies)")
        return UpdateChoice("native", "update 'native' requested")
    if no_native is None:
        return UpdateChoice("native", "the learner's native update applies here")
    return UpdateChoice("compile", f"no native update: {no_native}")
