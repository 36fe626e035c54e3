"""Checking a loaded checkpoint against what it will be loaded into, before anything is loaded.

A layout says what a part must look like; :func:`check_structure` compares a saved value with it and raises one
:class:`~fastsac.training.checkpoint.CheckpointError` naming the checkpoint file, the first entry that does not
fit, and how many more do not. A layout is made of

- a dict: the same keys (an entry :class:`MayLack` may be absent), each value checked against its layout;
- a list or tuple: as many entries, each checked (:class:`Many`: any number of entries, each checked);
- a type (``int``, ``float``, ``str``, ``bool``): a value of that type (an int fits ``float``; a bool fits only
  ``bool``); ``None``: None; :class:`Maybe`: None or the layout;
- :class:`Tensor`: a tensor of that dtype and shape (``None`` in the shape: any size);
- :class:`Exactly`: that very value (an agent's learner kind, the run's env id);
- :class:`Opaque`: any value of a type, checked by what loads it.

:func:`layout_of` turns a fresh state (a new learner's ``state_dict()``) into its layout: every tensor's shape and
dtype, every key, every value's type. A torch optimizer's state dict (``state`` and ``param_groups``, whose
entries change between torch versions) is left to the optimizer's own loading. :func:`loading` turns what a
``load_state_dict`` still raises into a CheckpointError naming the file and the part.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fastsac.agents.rng import CPU_STATE_BYTES
from fastsac.training.checkpoint import FORMAT_VERSION, CheckpointError

__all__ = [
    "CUDA_STATE_BYTES",
    "Exactly",
    "Many",
    "MayLack",
    "Maybe",
    "Opaque",
    "Tensor",
    "check_generator",
    "check_structure",
    "layout_of",
    "loading",
]

#: A CUDA generator's state: Philox seed and offset, 8 bytes each (torch's CUDAGeneratorImpl::get_state; its
#: set_state also takes the 8-byte seed-only state of older torch versions).
CUDA_STATE_BYTES = (16, 8)


@dataclass(frozen=True)
class Tensor:
    shape: tuple[int | None, ...] | None  #: None: any shape; a None size: any size
    dtype: torch.dtype | None  #: None: any dtype


@dataclass(frozen=True)
class Many:
    item: Any  #: every entry's layout


@dataclass(frozen=True)
class Maybe:
    layout: Any  #: None, or a value of this layout


@dataclass(frozen=True)
class MayLack:
    layout: Any  #: a dict entry that may be absent


@dataclass(frozen=True)
class Exactly:
    value: Any
    what: str = "this run has"  #: how the message names where the value comes from


@dataclass(frozen=True)
class Opaque:
    type: type | tuple[type, ...]


def _is_optimizer_state(value: dict) -> bool:
    return set(value) == {"state", "param_groups"}


def layout_of(state: Any) -> Any:
    """The layout of a fresh state: its tensors' shapes and dtypes, its keys, its values' types."""
    if isinstance(state, torch.Tensor):
        return Tensor(tuple(state.shape), state.dtype)
    if isinstance(state, dict):
        return Opaque(dict) if _is_optimizer_state(state) else {k: layout_of(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return [layout_of(v) for v in state]
    return None if state is None else type(state)


def _shape(shape: tuple) -> str:
    return "(" + ", ".join("n" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _kind(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {_shape(tuple(value.shape))} and dtype {value.dtype}"
    if value is None:
        return "None"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def _fits_type(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind in (list, tuple):
        return isinstance(value, (list, tuple))
    return isinstance(value, kind)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _problems(saved: Any, layout: Any, where: str) -> Iterator[str]:
    """Every place where ``saved`` does not fit ``layout``, as a phrase naming it (``where``: its dotted name)."""
    if isinstance(layout, Maybe):
        if saved is not None:
            yield from _problems(saved, layout.layout, where)
    elif isinstance(layout, Tensor):
        if not isinstance(saved, torch.Tensor):
            need = "a tensor" if layout.shape is None else f"a tensor of shape {_shape(layout.shape)}"
            yield f"{where} is {_kind(saved)}, this run needs {need}"
        elif layout.dtype is not None and saved.dtype != layout.dtype:
            yield f"{where} has dtype {saved.dtype}, this run needs {layout.dtype}"
        elif layout.shape is not None and (saved.dim() != len(layout.shape) or any(
                n is not None and s != n for s, n in zip(saved.shape, layout.shape))):
            yield f"{where} has shape {_shape(tuple(saved.shape))}, this run needs {_shape(layout.shape)}"
    elif isinstance(layout, dict):
        if not isinstance(saved, dict):
            yield f"{where} is {_kind(saved)}, this run needs a dict"
            return
        for key, sub in layout.items():
            name = f"{where}.{key}" if where else str(key)
            if key in saved:
                yield from _problems(saved[key], sub.layout if isinstance(sub, MayLack) else sub, name)
            elif not isinstance(sub, MayLack):
                yield f"{name} is missing" if where else f"the part {key!r} is missing"
        for key in saved:
            if key not in layout:
                yield (f"{where} has an entry {key!r} that this run does not have" if where else
                       f"it has a part {key!r} that format {FORMAT_VERSION} does not have")
    elif isinstance(layout, Many):
        if not isinstance(saved, (list, tuple)):
            yield f"{where} is {_kind(saved)}, this run needs a list"
            return
        for i, value in enumerate(saved):
            yield from _problems(value, layout.item, f"{where}[{i}]")
    elif isinstance(layout, (list, tuple)):
        if not isinstance(saved, (list, tuple)):
            yield f"{where} is {_kind(saved)}, this run needs a list of {len(layout)}"
        elif len(saved) != len(layout):
            yield f"{where} has {len(saved)} entries, this run needs {len(layout)}"
        else:
            for i, (value, sub) in enumerate(zip(saved, layout)):
                yield from _problems(value, sub, f"{where}[{i}]")
    elif isinstance(layout, Exactly):
        if not _same(saved, layout.value):
            yield f"{where} is {saved!r}, {layout.what} {layout.value!r}"
    elif isinstance(layout, Opaque):
        if not isinstance(saved, layout.type):
            yield f"{where} is {_kind(saved)}, this run needs a {layout.type.__name__}"
    elif layout is None:
        if saved is not None:
            yield f"{where} is {_kind(saved)}, this run has None there"
    elif isinstance(layout, type):
        if not _fits_type(saved, layout):
            yield f"{where} is {_kind(saved)}, this run needs {'an' if layout is int else 'a'} {layout.__name__}"
    else:  # pragma: no cover - a layout this module does not know
        raise TypeError(f"check_structure: unknown layout {layout!r} at {where}")


def check_structure(saved: Any, layout: Any, path: str | Path, where: str = "") -> None:
    """Raise CheckpointError (one line: the file, the first misfit, how many more) unless ``saved`` fits."""
    problems = list(_problems(saved, layout, where))
    if problems:
        more = f" (and {len(problems) - 1} more misfit(s))" if len(problems) > 1 else ""
        raise CheckpointError(f"checkpoint {path}: {problems[0]}{more}; it was not written by this run, or was "
                              "changed since: restore it from a copy or start a new run")


def check_generator(state: torch.Tensor, device: str, path: str | Path, where: str, *,
                    recorded: str | None = None) -> None:
    """A generator state (``where``) must be the size of a state of its ``device`` type, as the entry ``recorded``
    records it (a CPU state taken for a CUDA one would be reseeded, a CUDA one taken for a CPU one fail to load:
    either way not the run's stream)."""
    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError, TypeError):
        kind = None
    sizes = {"cpu": (CPU_STATE_BYTES,), "cuda": CUDA_STATE_BYTES}.get(kind)
    if sizes is None:
        raise CheckpointError(f"checkpoint {path}: {recorded or where} is {device!r}, a generator device this fastsac "
                              "does not know (cpu or cuda); restore the checkpoint from a copy or start a new run")
    if state.numel() not in sizes:
        said = f", as {recorded} says it is" if recorded else ""
        raise CheckpointError(f"checkpoint {path}: {where} is {state.numel()} bytes, not the state of a {kind} "
                              f"generator ({' or '.join(map(str, sizes))} bytes){said}; restore the checkpoint "
                              "from a copy or start a new run")


@contextlib.contextmanager
def loading(path: str | Path, part: str) -> Iterator[None]:
    """Turn what loading ``part`` of the checkpoint at ``path`` still raises into a one-line CheckpointError."""
    try:
        yield
    except CheckpointError:
        raise
    except (ValueError, RuntimeError, TypeError, KeyError, IndexError) as exc:
        text = " ".join(str(exc).split())[:300]
        raise CheckpointError(f"checkpoint {path}: its {part} part does not load into this run "
                              f"({type(exc).__name__}: {text}); restore it from a copy or start a new run") from exc
