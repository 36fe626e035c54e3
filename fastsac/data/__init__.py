"""Data: the replay buffer and the environments that fill it.

``buffer.py`` (ReplayBuffer, Batch), ``envs.py`` (``make``), ``vec_env.py`` (the VecEnv contract: VecEnv,
StepResult), ``envpool_backend.py`` and ``gymnasium_backend.py`` (the two VecEnv backends), ``spaces.py``
(observation flattening and action mapping between gymnasium spaces and the learner's flat tensors).
"""

from fastsac.data import envs
from fastsac.data.buffer import Batch, ReplayBuffer, available_memory_bytes
from fastsac.data.envs import StepResult, VecEnv, make

__all__ = ["Batch", "ReplayBuffer", "StepResult", "VecEnv", "available_memory_bytes", "envs", "make"]
