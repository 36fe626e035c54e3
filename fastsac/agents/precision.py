"""Mixed precision of a learner's networks (``LearnerConfig.amp``): which autocast dtype applies where, and the
calls that run a network under it.

``amp="bf16"`` is FastSAC's setting (holosoma ``agents/fast_sac/fast_sac_agent.py``: ``amp=True``,
``amp_dtype="bf16"``): the networks' forward passes, and so their backward passes, run under
``torch.autocast(dtype=torch.bfloat16)``; their outputs are cast back to float32, so the losses, the fused ops, the
optimizers and every saved tensor stay float32 (FastSAC also computes its losses under autocast; softmax and
log-softmax run in float32 there all the same). It applies on a CUDA device that supports bfloat16
(``torch.cuda.is_bf16_supported``). Anywhere else the networks run in float32 and the learner records a loud
fallback (kind ``amp``): a CPU's bfloat16 matrix products are slower than its float32 ones unless it has AMX.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from fastsac.fallbacks import Fallback, fall_back

__all__ = ["amp_dtype", "run_autocast"]


def amp_dtype(amp: str, device: torch.device, fallbacks: list[Fallback]) -> torch.dtype | None:
    """The autocast dtype of ``amp`` on ``device`` (``torch.bfloat16``), or None: ``amp="none"``, or a device where
    it does not apply (then a fallback is appended to ``fallbacks``)."""
    if amp == "none":
        return None
    if amp != "bf16":
        raise ValueError(f"amp must be 'none' or 'bf16', got {amp!r}")
    if device.type != "cuda":
        reason = f"the learner is on {device}; bf16 autocast is for CUDA devices"
    elif not torch.cuda.is_bf16_supported(including_emulation=False):
        reason = f"{torch.cuda.get_device_name(device)} has no native bfloat16"
    else:
        return torch.bfloat16
    fallbacks.append(fall_back("amp", "bf16 autocast of the networks (amp='bf16')", "float32 networks", reason))
    return None


def run_autocast(dtype: torch.dtype | None, device: torch.device, net: Callable[..., Any], *args: Any) -> Any:
    """``net(*args)``, under autocast to ``dtype`` on ``device`` with its outputs (a tensor or a tuple of tensors)
    cast back to float32; just ``net(*args)`` where ``dtype`` is None."""
    if dtype is None:
        return net(*args)
    with torch.autocast(device.type, dtype=dtype):
        out = net(*args)
    return tuple(t.float() for t in out) if isinstance(out, tuple) else out.float()
