"""The run directory (``--out``): the names of its files and the checks made before anything is written into it.

::

    config.json        the resolved configuration (every field)
    metrics.csv        one row per logged point (``fastsac.training.metrics_log``)
    tb/                TensorBoard events
    checkpoints/       latest.pt, written atomically (``fastsac.training.checkpoint``; its parts:
                       ``fastsac.training.checkpoint_format``)
    summary.json       how the run ended (finished, steps, final evaluation, steps/s, fallbacks, versions)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fastsac.training.checkpoint import CheckpointError, atomic_write_bytes
from fastsac.training.config import ConfigError

__all__ = ["CHECKPOINT_FILE", "CONFIG_FILE", "SUMMARY_FILE", "check_new_run_dir", "run_directory", "write_json"]

CHECKPOINT_FILE = Path("checkpoints") / "latest.pt"
CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"


def write_json(path: Path, data: dict[str, Any]) -> None:
    """``data`` as indented JSON, written atomically."""
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=False) + "\n").encode())


def check_new_run_dir(run_dir: Path) -> None:
    """Refuse an existing, non-empty run directory (an existing run is never overwritten)."""
    if run_dir.exists():
        if not run_dir.is_dir():
            raise ConfigError(f"--out {run_dir} exists and is not a directory; choose another --out")
        if any(run_dir.iterdir()):
            hint = (
                f"resume it with: fastsac train --resume {run_dir}"
                if (run_dir / CHECKPOINT_FILE).exists()
                else "remove it yourself if it is not needed"
            )
            raise ConfigError(
                f"run directory {run_dir} already exists and is not empty; refusing to overwrite it. "
                f"Choose another --out, or {hint}"
            )


def run_directory(run_dir: str | os.PathLike) -> Path:
    """An existing run directory (to read its checkpoint from); a missing one is a CheckpointError."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory {run_dir} does not exist (or is not a directory)")
    return run_dir
