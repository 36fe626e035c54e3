"""How a run runs its update: the thread count and the update decision (eager, compile, native), made once at the
run's start.

The rules are ``fastsac.training.resolve``'s (:func:`decide_threads`, :func:`decide_update`); this module is
everything the training package does with their results, in one place: the learner config they give
(:meth:`RunDecisions.learner_config`), the lines said at a run's start and after the first fast-path update, the
``summary.json`` fields, and the checkpoint's ``decisions`` part (a resume keeps the decisions its run started with,
since switching would change its numbers). Every name of the update decision and of the learner's report on its
update (``learner.runner``: ``kind``, ``describe()``, ``first_call_seconds``, ``describe_first_call()``) used by
``fastsac.training`` is here, so renaming one is an edit of this file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from fastsac.agents import LearnerConfig
from fastsac.training.config import TrainConfig
from fastsac.training.resolve import ThreadsDecision, UpdateChoice, decide_threads, decide_update, learner_config

__all__ = ["DECISIONS_LAYOUT", "RunDecisions", "eval_learner_config"]

#: The checkpoint's ``decisions`` part: each decision and the reason it was made (types of the values).
DECISIONS_LAYOUT: dict[str, Any] = {
    "update": {"backend": str, "reason": str},
    "threads": {"threads": int, "reason": str},
}


def eval_learner_config(config: TrainConfig) -> LearnerConfig:
    """The learner config of an evaluation (``fastsac eval``) or a check of a checkpoint: the plain eager update."""
    return learner_config(config, update="eager")


@dataclass(frozen=True)
class RunDecisions:
    """The run's thread count and how its update runs, each with its reason."""

    threads: ThreadsDecision
    update: UpdateChoice

    @classmethod
    def make(cls, config: TrainConfig, device: torch.device, env, *, previous: dict[str, Any] | None,
             data_parallel: bool) -> RunDecisions:
        """Decide for a run on ``env`` (a VecEnv); ``previous``: a resumed run's checkpoint ``decisions`` part
        (kept unless the resume names --threads or --update). Sets torch's thread count."""
        previous = previous or {}
        action_size = env.num_actions if env.is_discrete else env.action_dim
        threads = decide_threads(config, env.obs_dim, action_size, env.is_discrete, previous=previous.get("threads"))
        torch.set_num_threads(threads.threads)
        update = decide_update(config, device, env.obs_dim, action_size, env.is_discrete,
                               previous=previous.get("update"), data_parallel=data_parallel,
                               asymmetric=env.policy_obs_dim is not None)
        return cls(threads, update)

    @property
    def fast(self) -> bool:
        """Whether the update was decided to take a fast path (compile or native)."""
        return self.update.backend != "eager"

    def learner_config(self, config: TrainConfig) -> LearnerConfig:
        return learner_config(config, update=self.update.backend)

    def start_notes(self) -> list[str]:
        """What the run says before its learner exists."""
        return [f"threads: {self.threads.reason}", f"update: {self.update.reason}"]

    def update_note(self, learner) -> str | None:
        """What runs the update, said where the run starts (after the fallbacks a built learner already knows of).
        None for the eager update."""
        return f"update: {learner.runner.describe()}" if self.fast else None

    def first_call_note(self, learner) -> str | None:
        """What the first fast-path update took, once it has run (None before, and for eager updates)."""
        seconds = learner.runner.first_call_seconds
        return None if seconds is None or not self.fast else f"update: {learner.runner.describe_first_call()}"

    def summary(self, learner) -> dict[str, Any]:
        """The summary.json fields: the decision (``update``, ``update_reason``), what runs the update after any
        fallback (``update_kind``), its first call's seconds, the thread count."""
        return {
            "update": self.update.backend,
            "update_reason": self.update.reason,
            "update_kind": learner.runner.kind,
            "first_call_seconds": learner.runner.first_call_seconds,
            "threads": self.threads.threads,
            "threads_reason": self.threads.reason,
        }

    def to_checkpoint(self) -> dict[str, Any]:
        """The checkpoint's ``decisions`` part (:data:`DECISIONS_LAYOUT`)."""
        return {
            "update": {"backend": self.update.backend, "reason": self.update.reason},
            "threads": {"threads": self.threads.threads, "reason": self.threads.reason},
        }
