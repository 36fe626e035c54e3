"""Entropy temperature (alpha) for SAC and on-policy agents: Velora-compatible, with schedules and controllers.

Two ways to weigh entropy, and they are not the same thing:

**Control the target** (the default, ``alpha_mode == "learned"``). ``log_alpha`` is learned as a Lagrange
multiplier for the constraint "policy entropy >= target" (Haarnoja et al. 2018, "SAC Algorithms and
Applications"). Alpha rises while the policy's entropy is below the target and falls while it is above, so the
*entropy level* is what you choose; alpha is whatever it takes to hold it. Scheduling ``target_entropy`` (or
calling :meth:`set_target_entropy`) moves that level during training, and alpha keeps adapting.

**Anneal the coefficient** (``fixed_alpha=True`` or ``alpha_schedule=...``). Alpha itself is the knob: constant, or
decayed by hand along a schedule. Nothing is learned and nothing feeds back from the policy; the entropy ends up
wherever the reward and the coefficient put it. This is original SAC (fixed alpha) and PPO's ``ent_coef`` decay.

Classes:

- :class:`EntropyModule` (continuous actions), :class:`EntropyModuleDiscrete` (discrete actions): Velora's
  ``EntropyModule`` / ``EntropyModuleDiscrete`` surface (``target``, ``log_alpha``, ``alpha``, ``optim``,
  ``compute_loss``, ``gradient_step``, ``config()``, ``state_dict``) with the discrete target's sign fixed and
  ``log_alpha`` kept in checkpoints.
- :class:`EntropyController`: the learned temperature for on-policy agents (PPO): ``step(mean_entropy)``.
- Schedules (:mod:`fastsac.entropy.schedules`): :class:`ConstantSchedule`, :class:`LinearSchedule`,
  :class:`CosineSchedule`, :class:`ExponentialSchedule`.

For compiled learners (``torch.compile(fullgraph=True)``): ``compute_loss`` reads the target only from
``target_tensor``, a 0-dim float32 tensor on ``device`` that is updated in place whenever the target changes, so
changing the target never recompiles. Move schedules with :meth:`advance_schedule` outside the compiled region.
"""

from fastsac.entropy import schedules
from fastsac.entropy.controller import EntropyController
from fastsac.entropy.schedules import ConstantSchedule, CosineSchedule, ExponentialSchedule, LinearSchedule, Schedule  # noqa: F401
from fastsac.entropy.schedules import as_schedule  # noqa: F401
from fastsac.entropy.temperature import EntropyModule, EntropyModuleDiscrete, EntropyParameters

__all__ = ["EntropyModule", "EntropyModuleDiscrete", "EntropyController", "EntropyParameters", *schedules.__all__]
