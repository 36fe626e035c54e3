"""The one place that chooses a backend for the fused ops.

Backends:
- ``torch``: the pure-PyTorch reference (``fastsac.ops.reference``); any device, always available.
- ``triton``: Triton kernels (``fastsac.kernels``); CUDA tensors, and CPU tensors under ``TRITON_INTERPRET=1``
  (the interpreter is a test vehicle, never chosen automatically for CPU tensors).
- ``cpp``: the compiled C++/CUDA extension (``fastsac.ops.extension``); CUDA tensors when ``fastsac._C`` was built
  with CUDA, CPU tensors whenever it is present (setup.py builds it CPU-only where there is no CUDA) or the
  JIT-built CPU module is loaded. It was named ``cuda`` before; that name now raises, naming ``cpp`` (no silent
  mapping: a name that says "cuda" would promise GPU-only code).

Selection: an explicit ``backend=`` argument, else ``FASTSAC_BACKEND``, else ``auto``. ``auto`` takes the first
usable backend in ``AUTO_ORDER`` for the tensors' device and falls back quietly where one cannot run here (not
installed, no device); a fast backend it would choose is first checked against the reference once per process
and device (``fastsac.ops.selfcheck``: a failure is a loud fallback). A backend named explicitly that cannot run
raises ``BackendUnavailableError`` saying why. For CPU tensors the decision is kept per request and dtype after
the first call (a dictionary read a call); :func:`reset` forgets it.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

import torch

from fastsac.ops import selfcheck

BACKENDS = ("torch", "triton", "cpp")
ENV_VAR = "FASTSAC_BACKEND"
# Former backend names -> their names now. Naming one raises and says the new name; nothing maps it silently.
RENAMED = {"cuda": "cpp"}
# On CUDA the Triton kernels come first: they are specialised per shape by constexprs and need no build step.
# On CPU the C++ extension comes first: one threaded pass over the rows, called without the custom-op dispatch in
# eager code (bench/bench_ops.py: faster than the plain PyTorch formula at every batch); the reference where it is
# not built. The Triton interpreter is for tests (see module docstring).
AUTO_ORDER = {"cuda": ("triton", "cpp", "torch"), "cpu": ("cpp", "torch")}  # keys: device types
_FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)


class BackendUnavailableError(RuntimeError):
    """A backend named explicitly cannot run the given tensors (or is unknown, or a former name)."""


def _renamed(name: str, env: bool = False) -> str:
    """What to tell a user who named ``name``, a former backend name (a key of ``RENAMED``)."""
    new = RENAMED[name]
    fix = f"set {ENV_VAR}={new}" if env else f"pass backend={new!r}"
    where = f"{ENV_VAR}={name}: " if env else ""
    return f"{where}backend {name!r} is now named {new!r} (the C++ extension runs CPU and CUDA tensors); {fix}"


_modules: dict[str, ModuleType | Exception] = {}


def _import(name: str) -> ModuleType:
    """Import a backend's module once; remember the failure so ``auto`` stays cheap."""
    if name not in _modules:
        if name not in BACKENDS:
            raise BackendUnavailableError(_why_unusable(name, "cpu", None))
        module_name = {
            "torch": "fastsac.ops.reference",
            "triton": "fastsac.kernels",
            "cpp": "fastsac.ops.extension",
        }[name]
        # Already imported (the reference and the extension's face always are): taken from sys.modules, which
        # torch.compile can trace, where a first call inside a trace could not call importlib.
        loaded = sys.modules.get(module_name)
        if loaded is not None:
            _modules[name] = loaded
        else:
            try:
                _modules[name] = importlib.import_module(module_name)
            except Exception as exc:  # ImportError, or triton failing to find a driver
                _modules[name] = exc
    module = _modules[name]
    if isinstance(module, Exception):
        raise BackendUnavailableError(f"the {name!r} backend cannot be imported: {module}") from module
    return module


def _why_unusable(name: str, device_type: str, dtype: torch.dtype | None) -> str | None:
    """``None`` when ``name`` can run tensors of this device type and dtype, else the reason it cannot."""
    if name in RENAMED:
        return _renamed(name)
    if name not in BACKENDS:
        return f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)} or 'auto'"
    try:
        module = _import(name)
    except BackendUnavailableError as exc:
        return str(exc)
    if name == "torch":
        return None
    supported = getattr(module, "SUPPORTED_DTYPES", _FLOAT_DTYPES)
    if dtype is not None and dtype not in supported:
        return f"the {name!r} backend does not support {dtype}; it takes {', '.join(map(str, supported))}"
    if name == "triton":
        if device_type == "cuda":
            return None if torch.cuda.is_available() else "no CUDA device is present"
        if device_type == "cpu":
            if os.environ.get("TRITON_INTERPRET") == "1":
                return None
            return "Triton runs CPU tensors only under TRITON_INTERPRET=1 (set before import; a test vehicle)"
        return f"Triton does not run {device_type} tensors"
    # name == "cpp": the compiled extension
    if module.is_available(device_type):
        return None
    note = module.build_note()
    return (
        f"the C++/CUDA extension is not available for {device_type} tensors; build it with "
        "`pip install --no-build-isolation -e .` on a machine with a CUDA build of torch and nvcc "
        "(or call fastsac.ops.extension.load_cpu_extension() for the CPU build)"
        + (f"; at install: {note}" if note else "")
    )


def _requested(backend: str | None) -> str:
    """The name asked for: ``backend``, else ``FASTSAC_BACKEND``, else ``auto``; a former name raises at once."""
    if backend is None or backend == "auto":
        backend = os.environ.get(ENV_VAR, "auto") or "auto"
        if backend in RENAMED:
            raise BackendUnavailableError(_renamed(backend, env=True))
    elif backend in RENAMED:
        raise BackendUnavailableError(_renamed(backend))
    return backend


def requested_backend(backend: str | None) -> str:
    """The backend name asked for: ``backend``, else ``FASTSAC_BACKEND``, else ``"auto"``."""
    return _requested(backend)


def available_backends(device: str | torch.device | None = None) -> list[str]:
    """Backends that can run now: for ``device`` (type) if given, else for CUDA when present, else CPU."""
    if device is None:
        device_type = "cuda" if torch.cuda.is_available() else "cpu"
    else:
        device_type = torch.device(device).type
    return [name for name in BACKENDS if _why_unusable(name, device_type, None) is None]


# (requested, dtype, auto's CPU order) -> the backend that runs; a name that cannot run raises and is not kept
_cpu_choices: dict[tuple[str, torch.dtype, tuple[str, ...]], str] = {}


def reset() -> None:
    """Forget the CPU decisions and every self-check result (a newly loaded extension; tests)."""
    _cpu_choices.clear()
    selfcheck.reset()


def resolve_backend(*tensors: torch.Tensor, backend: str | None = "auto") -> str:
    """The backend that runs for these tensors: the named one (raises if it cannot) or the ``auto`` choice."""
    requested = _requested(backend)
    if requested == "torch":
        return "torch"  # always usable: decided without lookups
    if tensors and tensors[0].is_cpu:
        key = (requested, tensors[0].dtype, AUTO_ORDER["cpu"])
        name = _cpu_choices.get(key)
        if name is None:
            name = _resolve(tensors, requested)
            if not torch.compiler.is_compiling():  # a trace cannot run the self-check: decide again outside it
                _cpu_choices[key] = name
        return name
    return _resolve(tensors, requested)


def _resolve(tensors: tuple[torch.Tensor, ...], requested: str) -> str:
    device_type = tensors[0].device.type if tensors else ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = tensors[0].dtype if tensors else None
    if requested != "auto":
        reason = _why_unusable(requested, device_type, dtype)
        if reason is not None:
            raise BackendUnavailableError(f"backend {requested!r} cannot run here: {reason}")
        return requested
    order = AUTO_ORDER.get(device_type, ("torch",))
    device = tensors[0].device if tensors else torch.device(device_type)
    for i, name in enumerate(order):
        if _why_unusable(name, device_type, dtype) is None and (
                name == "torch" or selfcheck.passes(name, device, _import(name), _import("torch"), order[i + 1:])):
            return name  # a fast backend is chosen only once it has matched the reference here (selfcheck)
    return "torch"


def backend_module(name: str) -> ModuleType:
    """The module holding ``name``'s primitives (see ``fastsac.ops.reference``)."""
    return _import(name)
