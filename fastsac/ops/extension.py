"""Python face of the C++/CUDA extension: the fused SAC primitives of ``fastsac.ops.reference``.

Two ways the compiled code can be present:

- ``fastsac._C``, built by ``setup.py`` at install time: CPU + CUDA where a CUDA build of torch and a CUDA
  toolkit are found, CPU only elsewhere (see setup.py);
- a CPU-only module JIT-built from ``csrc/`` by an explicit call to :func:`load_cpu_extension` (for an install
  without ``fastsac._C``; the tests use it where the install has none).

On CPU tensors the extension is the ``auto`` backend's first choice (``fastsac.ops.backends``): its kernels are
one pass over the rows, threaded over blocks of rows, vectorized where the build allowed it
(``fastsac.ops.cpu_build_flags``).

Where setup.py skipped ``fastsac._C`` or its build failed, it left one line saying why in the package
(:func:`build_note`); the errors below quote it. Importing this module never builds or fails. :func:`load` returns the module in use (``fastsac._C`` first, else
one already JIT-built in this process) and raises ``ImportError`` when there is none; :func:`is_available`
answers without raising. The primitives below take exactly the reference's arguments.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType

import torch

from fastsac.ops import cpu_build_flags

__all__ = [
    "build_note",
    "categorical_bwd",
    "categorical_fwd",
    "categorical_td_bwd",
    "categorical_td_fwd",
    "dispatcher_ops",
    "cpu_sources",
    "extension_dir",
    "is_available",
    "load",
    "load_cpu_extension",
    "module_for",
    "on_load",
    "register_dispatcher_op",
    "sources_dir",
    "squashed_gaussian_bwd",
    "squashed_gaussian_fwd",
]

_CPU_MODULE_NAME = "fastsac_cpp_cpu"
_BUILD_NOTE = Path(__file__).resolve().parents[1] / "_build_note.txt"  # written by setup.py (NOTE_FILE)
# The CPU module is every C++ source in csrc/ (the rule setup.py's CPU build follows; ops_cuda.cu is the CUDA
# build's); a directory holding these two is taken for csrc/.
_CSRC_MARKERS = ("bindings.cpp", "ops.h")

_compiled: ModuleType | None = None  # fastsac._C
_compiled_tried = False
_jit: ModuleType | None = None  # the JIT-built CPU module
_registrars: list = []  # on_load's functions, run for every module as it loads


def _import_compiled() -> ModuleType | None:
    global _compiled, _compiled_tried
    if not _compiled_tried:
        _compiled_tried = True
        try:
            _compiled = importlib.import_module("fastsac._C")
        except ImportError:
            _compiled = None
        else:
            for registrar in _registrars:
                registrar(_compiled)
    return _compiled


def build_note() -> str | None:
    """Why the install has no ``fastsac._C`` (setup.py's one line: skipped, or the build failed), or None."""
    try:
        return _BUILD_NOTE.read_text().strip() or None
    except OSError:
        return None


def _not_built() -> str:
    note = build_note()
    return f"fastsac._C was not built at install time ({note})" if note else \
        "fastsac._C was not built at install time (it needs a CUDA build of torch and a CUDA toolkit)"


def sources_dir() -> Path:
    """The directory holding the C++ sources: ``fastsac/csrc`` in an installed wheel, else ``<repo>/csrc``."""
    package = Path(__file__).resolve().parents[1]  # fastsac/
    for candidate in (package / "csrc", package.parent / "csrc"):
        if all((candidate / f).is_file() for f in _CSRC_MARKERS):
            return candidate
    raise FileNotFoundError(
        f"fastsac: the C++ sources ({', '.join(_CSRC_MARKERS)}, ...) were found in neither {package / 'csrc'} nor "
        f"{package.parent / 'csrc'}; install fastsac from a source checkout to JIT-build the CPU extension"
    )


def cpu_sources(src: Path) -> list[str]:
    """The CPU module's sources: every ``.cpp`` file in ``src`` (the C++ sources directory), sorted."""
    return sorted(str(p) for p in src.iterdir() if p.suffix == ".cpp")


def extension_dir() -> Path:
    """Build directory of the JIT-built module: ``$FASTSAC_EXTENSION_DIR`` or ``~/.cache/fastsac/...``.

    One sub-directory per Python and torch version, so builds for different environments never collide.
    """
    root = os.environ.get("FASTSAC_EXTENSION_DIR")
    if root:
        base = Path(root).expanduser()
    else:
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        base = Path(cache) / "fastsac" / "torch_extensions"
    tag = f"py{sys.version_info.major}{sys.version_info.minor}_torch{torch.__version__.replace('+', '_')}"
    return base / tag


def load_cpu_extension(*, verbose: bool = False) -> ModuleType:
    """Build (first call, ~40 s; cached on disk afterwards) and import the CPU-only extension from ``csrc/``.

    Needs a C++ compiler and ninja. Returns the module; later calls in the process return it at once.
    """
    global _jit
    if _jit is None:
        from torch.utils import cpp_extension

        src = sources_dir()
        build_dir = extension_dir()
        build_dir.mkdir(parents=True, exist_ok=True)
        _jit = cpp_extension.load(
            name=_CPU_MODULE_NAME,
            sources=cpu_sources(src),
            extra_cflags=cpu_build_flags.cxx_flags(),
            extra_ldflags=cpu_build_flags.link_flags(),
            extra_include_paths=[str(src)],
            build_directory=str(build_dir),
            verbose=verbose,
        )
        for registrar in _registrars:
            registrar(_jit)
        from fastsac.ops import backends

        backends.reset()  # ``auto`` may now choose the extension for CPU tensors
    return _jit


def load() -> ModuleType:
    """The extension module in use: ``fastsac._C`` if it was built at install time, else the JIT-built CPU one.

    Builds nothing; raises ``ImportError`` when neither is present.
    """
    module = _import_compiled() or _jit
    if module is None:
        raise ImportError(
            f"fastsac: the C++ extension is not available: {_not_built()}, and the CPU-only extension has not "
            "been built in this process (call fastsac.ops.extension.load_cpu_extension())"
        )
    return module


def module_for(device_type: str) -> ModuleType | None:
    """The loaded extension module that runs ``device_type`` tensors ("cpu" or "cuda"), or None."""
    for module in (_import_compiled(), _jit):
        if module is None:
            continue
        if device_type == "cpu" or (device_type == "cuda" and module.with_cuda):
            return module
    return None


def on_load(registrar) -> None:
    """Run ``registrar(module)`` for every extension module: those loaded now, and each one loaded later (the ops
    register the fake functions and autograd formulas of a module's dispatcher ops this way, outside any trace)."""
    loaded = [module for module in (_import_compiled(), _jit) if module is not None]  # runs earlier registrars
    for module in loaded:
        registrar(module)
    _registrars.append(registrar)


def register_dispatcher_op(name: str, fake, fake_backward, autograd) -> None:
    """For every extension module, loaded now or later: register the fake functions of its dispatcher ops ``name``
    and ``name_backward`` (csrc/library.cpp) and ``name``'s autograd, ``autograd(backward_op) -> (backward,
    setup_context)`` as ``torch.library.register_autograd`` takes them. A module built before the ops (or this op)
    were registered in C++ (no ``op_namespace``, or no op ``name``) is left alone."""

    def registrar(module) -> None:
        namespace = getattr(module, "op_namespace", None)
        if namespace is None or not hasattr(getattr(torch.ops, namespace), name):
            return  # a module built before its ops (or this op) were registered in C++: importing must not fail
        torch.library.register_fake(f"{namespace}::{name}", fake)
        torch.library.register_fake(f"{namespace}::{name}_backward", fake_backward)
        backward, setup = autograd(getattr(getattr(torch.ops, namespace), f"{name}_backward").default)
        torch.library.register_autograd(f"{namespace}::{name}", backward, setup_context=setup)

    on_load(registrar)


def dispatcher_ops(device_type: str):
    """``torch.ops.<namespace>`` of the loaded module that runs ``device_type`` tensors (csrc/library.cpp: the ops
    registered with torch's dispatcher, called without Python), or None where there is none."""
    module = module_for(device_type)
    namespace = getattr(module, "op_namespace", None)
    return None if namespace is None else getattr(torch.ops, namespace)


def is_available(device_type: str) -> bool:
    """Whether a compiled or loaded extension module runs on ``device_type`` ("cpu" or "cuda") here and now."""
    if device_type == "cuda" and not torch.cuda.is_available():
        return False
    return module_for(device_type) is not None


def _require(t: torch.Tensor) -> ModuleType:
    module = module_for(t.device.type)
    if module is None:
        if t.device.type == "cuda":
            raise RuntimeError(
                f"fastsac: no CUDA build of the C++ extension is installed ({_not_built()}); use the 'triton' "
                "or 'torch' backend, or reinstall fastsac with a CUDA toolkit and a CUDA build of torch"
            )
        load()  # raises the ImportError that explains what is missing
        raise RuntimeError(f"fastsac: the C++ extension does not support device {t.device}")
    return module


def _opt_float(x) -> float | None:
    return None if x is None else float(x)


def squashed_gaussian_fwd(mean, log_std, noise, scale, bias, lo, hi, want_sum):
    """``(action, log_prob, lp_sum)``; ``lp_sum`` is ``None`` unless ``want_sum``. See ``fastsac.ops.reference``."""
    return _require(mean).squashed_gaussian_fwd(
        mean, log_std, noise, scale, bias, _opt_float(lo), _opt_float(hi), bool(want_sum)
    )


def squashed_gaussian_bwd(grad_action, grad_log_prob, mean, log_std, noise, scale, lo, hi):
    """``(d_mean, d_log_std)``; ``d_log_std`` is with respect to the raw input when the bounds are set."""
    return _require(mean).squashed_gaussian_bwd(
        grad_action, grad_log_prob, mean, log_std, noise, scale, _opt_float(lo), _opt_float(hi)
    )


def categorical_fwd(logits, want_sum):
    """``(probs, log_probs, entropy, entropy_sum)``; ``entropy_sum`` is ``None`` unless ``want_sum``."""
    return _require(logits).categorical_fwd(logits, bool(want_sum))


def categorical_bwd(grad_probs, grad_log_probs, grad_entropy, logits):
    """``d_logits``."""
    return _require(logits).categorical_bwd(grad_probs, grad_log_probs, grad_entropy, logits)


def categorical_td_fwd(logits, target_probs, reward, not_done, entropy_term, gamma, v_min, v_max):
    """``(loss, m)``: the categorical TD loss ``(C, B)`` and the projected target ``(B, K)``."""
    return _require(logits).categorical_td_fwd(logits, target_probs, reward, not_done, entropy_term, float(gamma),
                                               float(v_min), float(v_max))


def categorical_td_bwd(grad_loss, logits, m):
    """``d_logits``."""
    return _require(logits).categorical_td_bwd(grad_loss, logits, m)
