"""Atomic checkpoint files and validated loading.

A checkpoint is one ``torch.save`` file holding a dict with ``"kind": "fastsac.checkpoint"`` and a format number
(:data:`FORMAT_VERSION`; the parts of format 2 are described in ``fastsac.training.checkpoint_format``, which
checks them). It is written to a temporary file in the same directory, flushed, ``fsync``'d and renamed over the
target with ``os.replace``, so a crash leaves either the old checkpoint or the new one, never half a file. The directory is
``fsync``'d afterwards so the rename itself is durable.

Loading uses ``torch.load(weights_only=True)`` (no arbitrary code runs from a file), and every failure becomes a
:class:`CheckpointError` that says in one line which file, what was wrong and what to do: a missing file, a
truncated or corrupt file, a file that is not a fastsac checkpoint, another format than this fastsac's, or
(through :func:`check_config`) a configuration that does not match the run it came from.

RNG states are stored as tensors, ints and strings only, so they pass ``weights_only`` loading:
:func:`capture_rng_state` / :func:`restore_rng_state` cover Python's ``random``, NumPy's global generator, torch's
CPU generator and every CUDA device's generator, and restore on any device: what a device change leaves
unrestorable is reseeded deterministically and reported.
"""

from __future__ import annotations

import os
import pickle
import random
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fastsac.agents.rng import derived_seed

__all__ = [
    "CHECKPOINT_KIND",
    "FORMAT_VERSION",
    "CheckpointError",
    "atomic_write_bytes",
    "save_checkpoint",
    "load_checkpoint",
    "check_config",
    "capture_rng_state",
    "restore_rng_state",
]

CHECKPOINT_KIND = "fastsac.checkpoint"
#: The layout of the parts (``checkpoint_format``); bump it with every change of what a part holds. 1: the values
#: of format 2, all at the top level, unversioned parts. 2: parts grouped and documented, each checked on loading.
FORMAT_VERSION = 2


class CheckpointError(RuntimeError):
    """A checkpoint could not be written, read or used; the message says why and what to do."""


def _fsync_dir(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (a no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic_write(path: Path, write) -> None:
    """Call ``write(file_object)`` on a temp file next to ``path``, fsync it, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the mode open() would
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same directory, fsync, ``os.replace``)."""
    _atomic_write(Path(path), lambda f: f.write(data))


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Save ``state`` (a dict of tensors, numbers, strings, lists, dicts) atomically as a fastsac checkpoint.

    ``kind`` and ``format`` are added; any existing file at ``path`` is replaced only once the new one is complete.
    """
    if not isinstance(state, dict):
        raise TypeError(f"save_checkpoint: state must be a dict, got {type(state).__name__}")
    payload = {"kind": CHECKPOINT_KIND, "format": FORMAT_VERSION, **state}
    path = Path(path)
    _atomic_write(path, lambda f: torch.save(payload, f))
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device | None = "cpu") -> dict[str, Any]:
    """Load and validate a checkpoint written by :func:`save_checkpoint`.

    Raises :class:`CheckpointError` for a missing, empty, truncated or corrupt file, a file that is not a fastsac
    checkpoint, or one of another format. The parts are not checked here (``checkpoint_format.read_checkpoint``).
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(
            f"{path} is a directory, not a checkpoint file; pass the run directory to resume/evaluate, "
            f"or the file {path / 'checkpoints' / 'latest.pt'}"
        )
    if not path.exists():
        raise CheckpointError(
            f"checkpoint {path} does not exist; a run writes checkpoints/latest.pt at every --checkpoint-every "
            "steps and at its end: check the run directory, or start a new run without --resume"
        )
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes); it was never written completely")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"checkpoint {path} is not a readable torch checkpoint (truncated, corrupt, or another kind of file); "
            "restore it from a copy or start a new run"
        )
    try:  # torch writes a CRC-32 per zip member: a flipped byte anywhere is caught here, not loaded silently
        with zipfile.ZipFile(path) as archive:
            bad_member = archive.testzip()
    except Exception as exc:
        bad_member = f"<unreadable: {exc}>"
    if bad_member is not None:
        raise CheckpointError(
            f"checkpoint {path} is corrupt (checksum mismatch in {bad_member}); restore it from a copy or "
            "start a new run"
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:  # torch's message is several lines; one of them names what was found
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [""]
        found = next((line for line in lines if "Unsupported global" in line), lines[0]).split(" was not ")[0]
        raise CheckpointError(
            f"{path} holds objects a fastsac checkpoint never contains ({found[:200]}); it is not a fastsac checkpoint"
        ) from exc
    except Exception as exc:  # zip member truncated, CRC mismatch, bad pickle stream, ...
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); "
            "restore it from a copy or start a new run"
        ) from exc
    if not isinstance(state, dict) or state.get("kind") != CHECKPOINT_KIND:
        found = state.get("kind") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"{path} is not a fastsac checkpoint (expected kind {CHECKPOINT_KIND!r}, found {found!r})"
        )
    fmt = state.get("format")
    if fmt != FORMAT_VERSION or isinstance(fmt, bool):
        raise CheckpointError(f"checkpoint {path} has format {fmt!r}; this fastsac reads format {FORMAT_VERSION} "
                              f"only: {_format_advice(fmt, state.get('written_by'))}")
    return state


def _format_advice(fmt: Any, written_by: Any) -> str:
    """What to do with a checkpoint of format ``fmt``."""
    by = written_by.get("fastsac") if isinstance(written_by, dict) else None
    if isinstance(fmt, int) and not isinstance(fmt, bool) and fmt > FORMAT_VERSION:
        return (f"it was written by a newer fastsac{f' ({by})' if by else ''}; upgrade fastsac to evaluate or "
                "resume it")
    if isinstance(fmt, int) and not isinstance(fmt, bool) and 1 <= fmt < FORMAT_VERSION:
        return ("it was written by an older fastsac; evaluate or finish that run with the fastsac that wrote it, "
                "or start a new run")
    return "the file is damaged; restore it from a copy or start a new run"


def check_config(saved: dict[str, Any], current: dict[str, Any], mutable: set[str], *, source: str) -> None:
    """Raise :class:`CheckpointError` listing every key where ``current`` differs from ``saved``.

    Keys in ``mutable`` may differ (for example ``total_steps`` when extending a run). Nested dicts are compared
    key by key with dotted names (``learner.actor_lr``).
    """

    def flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in d.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                out.update(flat(value, name + "."))
            else:
                out[name] = value
        return out

    a, b = flat(saved), flat(current)
    diffs = [
        f"  {key}: checkpoint has {a.get(key, '<absent>')!r}, requested {b.get(key, '<absent>')!r}"
        for key in sorted(set(a) | set(b))
        if key not in mutable and a.get(key, "<absent>") != b.get(key, "<absent>")
    ]
    if diffs:
        raise CheckpointError(
            f"the configuration does not match the run in {source}:\n"
            + "\n".join(diffs)
            + f"\nonly these may change on resume: {', '.join(sorted(mutable))}; "
            "start a new run (another --out) to change the others"
        )


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU and CUDA generator states, as weights_only-loadable values."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": {
            "name": np_name,
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any], *, device: torch.device | str = "cpu", seed: int = 0,
                      counter: int = 0) -> list[str]:
    """Restore what :func:`capture_rng_state` returned, on any device (tensors may come with any map_location).

    A run on ``device`` whose CUDA generators cannot all be restored (saved on a CPU run, or on fewer GPUs) gets
    them reseeded from ``seed`` and ``counter`` (the step); CUDA states saved by a GPU run are not needed by a
    CPU run and are skipped where no CUDA exists. Returns notes on what was not restored exactly (empty: all was).
    """
    version, py_state, gauss = state["python"]
    random.setstate((version, tuple(py_state), gauss))
    npst = state["numpy"]
    np.random.set_state((npst["name"], npst["keys"].cpu().numpy().astype(np.uint32), npst["pos"], npst["has_gauss"],
                         npst["cached_gaussian"]))
    torch.set_rng_state(state["torch"].cpu())
    saved = [s.cpu() for s in state.get("cuda", [])]
    if not torch.cuda.is_available():
        return []  # a GPU run resumed on a CPU: CUDA generators do not exist here, and the run does not need them
    n = torch.cuda.device_count()
    for i, s in enumerate(saved[:n]):
        torch.cuda.set_rng_state(s, i)
    if torch.device(device).type != "cuda" or len(saved) >= n:
        return []
    missing = list(range(len(saved), n))
    for i in missing:
        with torch.cuda.device(i):
            torch.cuda.manual_seed(derived_seed(seed, counter * 1024 + i))
    where = "a CPU run" if not saved else f"a run with {len(saved)} GPU(s)"
    return [f"the checkpoint comes from {where}: CUDA generator(s) {missing} were reseeded from the seed and the "
            f"step ({counter})"]
