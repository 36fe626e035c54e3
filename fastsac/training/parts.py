"""What a run is built of, from its config and its env: the replay buffer and the layout of the actions it logs.

Shared by the session (which builds them), the checkpoint's expected layout (``checkpoint_format.expected_parts``:
what a checkpoint of this run must hold) and evaluation, so that the three agree by construction.
"""

from __future__ import annotations

import torch

from fastsac.data import ReplayBuffer
from fastsac.training.config import TrainConfig

__all__ = ["OBS_DTYPES", "action_layout", "make_buffer"]

OBS_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def action_layout(env) -> tuple[tuple[int, ...], torch.dtype]:
    """One env's action: ``((), int64)`` for discrete actions (an index), ``((action_dim,), float32)`` otherwise."""
    return ((), torch.int64) if env.is_discrete else ((env.action_dim,), torch.float32)


def make_buffer(config: TrainConfig, env, device: torch.device | str, capacity: int | None = None) -> ReplayBuffer:
    """The run's replay buffer for ``env`` (``capacity``: another size than ``config.buffer_size``, e.g. 1 for a
    buffer whose empty state shows the layout)."""
    return ReplayBuffer(
        config.buffer_size if capacity is None else capacity,
        env.obs_dim,
        env.num_actions if env.is_discrete else env.action_dim,
        device=device,
        obs_dtype=OBS_DTYPES[config.obs_dtype],
        discrete=env.is_discrete,
    )
