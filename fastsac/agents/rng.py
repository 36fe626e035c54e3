"""Random streams across devices: a generator's saved state fits only a generator of the same device type.

A CPU generator's state is the 5,056-byte Mersenne-Twister state; a CUDA generator's is 16 bytes (Philox seed and
offset). A learner trained on one device type and loaded on another (``fastsac eval`` of a GPU run on a laptop, a
resume with another ``--device``) cannot continue the saved stream, so :func:`load_generator` reseeds the generator
deterministically from the run's seed and a counter (the update count) and says so: the continuation is then
reproducible, though not the stream an uninterrupted run would have drawn.
"""

from __future__ import annotations

import hashlib

import torch

__all__ = ["CPU_STATE_BYTES", "derived_seed", "load_generator", "saved_device_type"]

CPU_STATE_BYTES = 5056  # torch's CPUGeneratorImplState: mt19937 state + bookkeeping


def derived_seed(seed: int, counter: int) -> int:
    """A seed that is a fixed function of the run's ``seed`` and ``counter`` (decorrelated from both)."""
    digest = hashlib.blake2b(f"fastsac:{int(seed)}:{int(counter)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1  # 63 bits: every torch generator takes it


def saved_device_type(state: torch.Tensor, recorded: str | None = None) -> str:
    """The device type a generator state was taken on: as recorded, else told by its size (older checkpoints)."""
    if recorded:
        return torch.device(recorded).type
    return "cpu" if state.numel() == CPU_STATE_BYTES else "cuda"


def load_generator(generator: torch.Generator, state: torch.Tensor, recorded: str | None, *, seed: int,
                   counter: int, what: str = "the learner's noise generator") -> str | None:
    """Restore ``state`` into ``generator``; where it was saved on another device type, reseed ``generator`` with
    :func:`derived_seed` instead. Returns None, or the note saying what was reseeded and why."""
    saved = saved_device_type(state, recorded)
    here = generator.device.type
    if saved == here:
        generator.set_state(state.cpu())
        return None
    generator.manual_seed(derived_seed(seed, counter))
    return (f"{what} was saved on {saved} and its state does not fit a {here} generator; reseeded from the seed "
            f"and the update count ({counter}), so the random stream differs from an uninterrupted run")
