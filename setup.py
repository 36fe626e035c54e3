"""Optional build of the compiled extension ``fastsac._C``; all metadata lives in pyproject.toml.

The CUDA extension (csrc/*.cpp + csrc/*.cu) is built when torch is importable in the build environment with CUDA
support (``torch.version.cuda``) and a CUDA toolkit is found, or when ``FASTSAC_FORCE_CUDA=1``. It is optional for
real: wherever it is skipped or its build fails (compile or link), the install still succeeds, one line says why and
how to fix or force it, and the torch and Triton backends remain. Only ``FASTSAC_FORCE_CUDA=1`` turns a failed
build into an error; ``FASTSAC_SKIP_CUDA=1`` skips the build on purpose. pip shows a build's output only with
``-v``, so the line is also kept in the installed package (``fastsac.ops.extension.build_note()``).

Where the CUDA build is skipped for want of CUDA (not forced, torch importable), the CPU-only extension
(csrc/*.cpp, the CPU kernels that are ``auto``'s choice for CPU tensors) is built instead, as ``fastsac._C``
too; its flags come from ``fastsac/ops/cpu_build_flags.py`` (vectorized where the CPU allows). It is as optional:
a failed build leaves the install with the torch reference and one line saying why; ``FASTSAC_SKIP_EXTENSION=1``
skips it (and the CUDA build) on purpose.

The toolkit is looked for the way machines lay it out (:func:`find_cuda_home`): ``CUDA_HOME``, then ``CUDA_PATH``,
then the real toolkit behind the ``nvcc`` on PATH (which may be a symlink or a wrapper script outside the
toolkit), then ``/usr/local/cuda``, ``/usr/local/cuda-*`` (newest first) and ``/opt/cuda``. The root found is
handed to ``torch.utils.cpp_extension`` as ``CUDA_HOME``, whose own guess (two folders above nvcc) is wrong for
a wrapper.

Use ``pip install -e . --no-build-isolation`` (or ``pip install . --no-build-isolation``) so the build sees the
installed torch; under build isolation torch is absent from the build environment and the extension is skipped.
Architectures: ``TORCH_CUDA_ARCH_LIST`` when set, else :data:`CUDA_ARCHS` (+ PTX for newer GPUs).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
CSRC = "csrc"
NOTE_FILE = "_build_note.txt"  # in the installed package: why fastsac._C is absent (read by fastsac.ops.extension)
SKIP_LINE = "fastsac: building without the CUDA extension ({}); the torch and Triton backends remain"
CPU_LINE = ("fastsac: building the CPU-only extension fastsac._C (no CUDA build: {}); CPU tensors run its kernels, "
            "CUDA tensors the torch and Triton backends")
CPU_FAILED_LINE = ("fastsac: the CPU-only extension fastsac._C failed to build ({}); installed without it, CPU tensors "
                   "run the torch reference (slower per call). See the build log with pip install -v")
FAILED_LINE = ("fastsac: the CUDA extension fastsac._C failed to build ({}); installed without it, the torch and "
               "Triton backends remain. {} FASTSAC_FORCE_CUDA=1 makes this an error")
# SASS for the GPUs people train on, PTX of the newest for later ones (the driver JIT-compiles it).
CUDA_ARCHS = (
    ("80", "A100, A30"),
    ("86", "RTX 30xx, A10, A40, A6000"),
    ("89", "Ada: L4, L40, RTX 40xx"),
    ("90", "Hopper: H100, H200"),
)
PTX_ARCH = "90"
_skip_reason: str | None = None  # set when the extension is not even attempted; build_py writes it to NOTE_FILE


def _env_flag(name: str) -> bool:
    return os.environ.get(name) == "1"


# ---------------------------------------------------------------------------------------------------------------
# finding the toolkit


def is_toolkit(root: str | os.PathLike) -> bool:
    """Whether ``root`` is a CUDA toolkit's root: ``bin/nvcc`` and a ``libcudart`` in lib64/, lib/ or targets/*/lib."""
    root = Path(root)
    if not (root / "bin" / "nvcc").is_file():
        return False
    lib_dirs = [root / "lib64", root / "lib", *root.glob("targets/*/lib")]
    return any(next(d.glob("libcudart.so*"), None) is not None for d in lib_dirs if d.is_dir())


def _root_behind(nvcc: str) -> str | None:
    """The toolkit an ``nvcc`` belongs to: two folders above the file it resolves to, else the ``TOP`` its dry run
    reports (a wrapper script such as ``exec /usr/local/cuda-13.0/bin/nvcc "$@"`` runs the real one)."""
    real = Path(nvcc).resolve()
    if is_toolkit(real.parent.parent):
        return str(real.parent.parent)
    try:
        out = subprocess.run([nvcc, "--dryrun", "-c", "fastsac_probe.cu"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"^#\$ TOP=(.+)$", out.stdout + out.stderr, flags=re.MULTILINE)
    if m and is_toolkit(m.group(1).strip()):
        return str(Path(m.group(1).strip()).resolve())
    return None


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", Path(path).name)) or (0,)


def find_cuda_home(environ=os.environ, *, search=("/usr/local/cuda", "/usr/local/cuda-*", "/opt/cuda")):
    """``(root, how it was found)``, or ``(None, what was tried)``. ``CUDA_HOME`` / ``CUDA_PATH`` are the user's
    word and returned as given, even when they are no toolkit (the caller says so)."""
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if environ.get(var):
            return environ[var], var
    nvcc = shutil.which("nvcc", path=environ.get("PATH"))
    if nvcc:
        root = _root_behind(nvcc)
        if root:
            return root, f"the nvcc on PATH ({nvcc})"
    for pattern in search:
        for candidate in sorted(glob.glob(pattern), key=_version_key, reverse=True):
            if is_toolkit(candidate):
                return str(Path(candidate).resolve()), candidate
    tried = f"nvcc on PATH ({nvcc}), " if nvcc else "no nvcc on PATH, "
    return None, tried + ", ".join(search)


def cuda_arch_flags(environ=os.environ) -> list[str]:
    """nvcc's -gencode flags for :data:`CUDA_ARCHS` + PTX; none when ``TORCH_CUDA_ARCH_LIST`` is set (torch then
    turns that list into flags itself)."""
    if environ.get("TORCH_CUDA_ARCH_LIST"):
        return []
    flags = [f"-gencode=arch=compute_{sm},code=sm_{sm}" for sm, _gpus in CUDA_ARCHS]
    return [*flags, f"-gencode=arch=compute_{PTX_ARCH},code=compute_{PTX_ARCH}"]


def _nvcc_release(nvcc: str) -> str | None:
    """The CUDA release nvcc reports ("13.0"), or None if it cannot be read."""
    try:
        out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"release (\d+\.\d+)", out)
    return m.group(1) if m else None


# ---------------------------------------------------------------------------------------------------------------
# the note kept in the installed package


def _package_dir(cmd) -> Path:
    """Where the built package lies: the source tree for editable/in-place builds, else the build folder."""
    if getattr(cmd, "editable_mode", False) or getattr(cmd, "inplace", False):
        return ROOT / "fastsac"
    return Path(cmd.build_lib) / "fastsac"


def write_note(package_dir: Path, line: str | None) -> None:
    """Keep ``line`` as the package's build note, or remove a stale note when the extension was built."""
    path = Path(package_dir) / NOTE_FILE
    if line is None:
        path.unlink(missing_ok=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(line + "\n")


class build_py_with_csrc(build_py):
    """Also ship csrc/ as fastsac/csrc in wheels, so an installed fastsac can JIT-build the CPU extension; and keep
    the skip reason (if any) as the package's build note."""

    def run(self):
        super().run()
        if _skip_reason is not None:  # said here, when building, not each time pip runs this file for metadata
            print(SKIP_LINE.format(_skip_reason), file=sys.stderr)
            write_note(_package_dir(self), SKIP_LINE.format(_skip_reason))
        if getattr(self, "editable_mode", False):  # an editable install finds <repo>/csrc next to the package
            return
        dest = Path(self.build_lib) / "fastsac" / "csrc"
        dest.mkdir(parents=True, exist_ok=True)
        for src in sorted((ROOT / CSRC).glob("*")):
            if src.suffix in {".h", ".cuh", ".cpp", ".cu"}:
                shutil.copy2(src, dest / src.name)


def _failure_line(exc: BaseException, cuda_home: str, found_by: str) -> str:
    from setuptools.errors import LinkError

    stage = "link" if isinstance(exc, LinkError) else "compile"
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    fix = (f"Fix: point CUDA_HOME at the CUDA toolkit that matches torch (the folder whose bin/ holds nvcc and "
           f"whose lib64/ holds libcudart; used: {cuda_home}, from {found_by}) and reinstall; see the build log "
           "with pip install -v.")
    return FAILED_LINE.format(f"{stage} step: {first}", fix)


def _cpu_failure_line(exc: BaseException) -> str:
    from setuptools.errors import LinkError

    stage = "link" if isinstance(exc, LinkError) else "compile"
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return CPU_FAILED_LINE.format(f"{stage} step: {first}")


def _optional_build_ext(base, cuda_home: str, found_by: str, start_line: str = "", *, cpu_only: bool = False,
                        built_note: str | None = None):
    """``base`` (torch's BuildExtension) whose failure leaves the install without the extension, saying why.
    ``built_note``: the package's note after a successful build (the CPU-only build keeps why CUDA is absent)."""

    class OptionalBuildExtension(base):
        def build_extensions(self):
            if start_line:
                print(start_line, file=sys.stderr)
            try:
                super().build_extensions()
            except Exception as exc:  # CompileError, LinkError, ninja's RuntimeError, a CUDA version mismatch
                if _env_flag("FASTSAC_FORCE_CUDA"):
                    raise
                line = _cpu_failure_line(exc) if cpu_only else _failure_line(exc, cuda_home, found_by)
                print(line, file=sys.stderr)
                self.extensions = []  # nothing to copy in place or to put in the wheel
                if getattr(self, "editable_mode", False):  # an earlier in-place build would still be imported
                    for stale in (ROOT / "fastsac").glob("_C.*"):
                        stale.unlink()
                write_note(_package_dir(self), line)
            else:
                write_note(_package_dir(self), built_note)

    return OptionalBuildExtension


# ---------------------------------------------------------------------------------------------------------------
# the decision


def _skip(reason: str, force: bool):
    global _skip_reason
    if force:
        raise RuntimeError(f"fastsac: FASTSAC_FORCE_CUDA=1 but the CUDA extension cannot be built: {reason}")
    _skip_reason = reason
    return None


def cuda_extension():
    """(ext_modules, cmdclass) for the CUDA build, or None with the reason it is skipped kept for build_py."""
    force = _env_flag("FASTSAC_FORCE_CUDA")
    if _env_flag("FASTSAC_SKIP_CUDA"):
        return _skip("FASTSAC_SKIP_CUDA=1", force=False)
    try:
        import torch
    except ImportError:
        return _skip("torch is not importable in the build environment; install torch first and use "
                     "--no-build-isolation", force)
    if torch.version.cuda is None:
        return _skip(f"torch {torch.__version__} has no CUDA; install a CUDA build of torch to build it", force)
    cuda_home, found_by = find_cuda_home()
    if cuda_home is None:
        return _skip(f"no CUDA toolkit found (tried CUDA_HOME, CUDA_PATH, {found_by}); set CUDA_HOME to the "
                     "toolkit root", force)
    if not is_toolkit(cuda_home):
        return _skip(f"{found_by}={cuda_home} is not a CUDA toolkit root (it needs bin/nvcc and lib64/libcudart); "
                     "point it at the toolkit or unset it", force)
    nvcc_cuda = _nvcc_release(str(Path(cuda_home) / "bin" / "nvcc"))
    if nvcc_cuda and nvcc_cuda.split(".")[0] != torch.version.cuda.split(".")[0]:
        # torch.utils.cpp_extension refuses a different CUDA major version; say so instead of failing.
        return _skip(f"the toolkit in {cuda_home} is CUDA {nvcc_cuda} but torch was built with CUDA "
                     f"{torch.version.cuda}; install a matching toolkit or torch", force)

    os.environ["CUDA_HOME"] = cuda_home  # torch.utils.cpp_extension reads it when imported ...
    from torch.utils import cpp_extension

    cpp_extension.CUDA_HOME = cuda_home  # ... or already did
    sources = sorted(f"{CSRC}/{p.name}" for p in (ROOT / CSRC).iterdir() if p.suffix in {".cpp", ".cu"})
    cpu_flags = _cpu_build_flags()
    ext = cpp_extension.CUDAExtension(
        name="fastsac._C",
        sources=sources,
        include_dirs=[str(ROOT / CSRC)],
        define_macros=[("FASTSAC_WITH_CUDA", None)],
        extra_link_args=cpu_flags.link_flags(),
        extra_compile_args={
            "cxx": cpu_flags.cxx_flags(),  # the CPU kernels, as in the CPU-only build
            # No --use_fast_math: the ops promise fp32 relative error well under 1e-5.
            "nvcc": ["-O3", "-lineinfo", *cuda_arch_flags()],
        },
    )
    archs = os.environ.get("TORCH_CUDA_ARCH_LIST") or " ".join(f"sm_{sm}" for sm, _ in CUDA_ARCHS) + " +PTX"
    start = (f"fastsac: building the CUDA extension fastsac._C (torch {torch.__version__}, CUDA {torch.version.cuda}, "
             f"toolkit {cuda_home} from {found_by}, {archs})")
    return [ext], {"build_ext": _optional_build_ext(cpp_extension.BuildExtension, cuda_home, found_by, start)}


def _cpu_build_flags():
    """``fastsac/ops/cpu_build_flags.py``, loaded by path (the package is not importable while it is being built)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("fastsac_cpu_build_flags", ROOT / "fastsac" / "ops" /
                                                  "cpu_build_flags.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cpu_extension():
    """(ext_modules, cmdclass) for the CPU-only build where the CUDA one was skipped, or None (no torch in the build
    environment, or ``FASTSAC_SKIP_EXTENSION=1``)."""
    global _skip_reason
    if _env_flag("FASTSAC_SKIP_EXTENSION"):
        _skip_reason = "FASTSAC_SKIP_EXTENSION=1"
        return None
    try:
        from torch.utils import cpp_extension
    except ImportError:
        return None  # _skip_reason already says torch is not importable
    flags = _cpu_build_flags()
    vectorized, why = flags.can_vectorize()
    sources = sorted(f"{CSRC}/{p.name}" for p in (ROOT / CSRC).iterdir() if p.suffix == ".cpp")
    ext = cpp_extension.CppExtension(name="fastsac._C", sources=sources, include_dirs=[str(ROOT / CSRC)],
                                     extra_compile_args={"cxx": flags.cxx_flags()},
                                     extra_link_args=flags.link_flags())
    note = CPU_LINE.format(_skip_reason)
    start = f"{note} [{'vectorized: ' if vectorized else 'scalar: '}{why}]"
    _skip_reason = None  # said by the build itself (start line, then the note it keeps)
    build_ext = _optional_build_ext(cpp_extension.BuildExtension, "", "", start, cpu_only=True, built_note=note)
    return [ext], {"build_ext": build_ext}


if __name__ == "__main__":  # setuptools runs this file as __main__; tests import its helpers without building
    cmdclass = {"build_py": build_py_with_csrc}
    ext_modules = []
    _build = None if _env_flag("FASTSAC_SKIP_EXTENSION") else cuda_extension()
    if _build is None:
        _build = cpu_extension()
    if _build is not None:
        ext_modules, extra_cmdclass = _build
        cmdclass.update(extra_cmdclass)
    setup(ext_modules=ext_modules, cmdclass=cmdclass)
