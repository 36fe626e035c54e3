"""Optional build of the compiled extension ``fastsac._C``; all metadata lives in pyproject.toml.

The CUDA extension (csrc/*.cpp + csrc/*.cu) is built when torch is importable in the build environment with CUDA
support (``torch.version.cuda``) and nvcc is found, or when ``FASTSAC_FORCE_CUDA=1`` (for instance a CUDA torch
on a build machine without a GPU; the build then fails loudly if it cannot compile). Otherwise one line says why
and no extension is built: the torch and Triton backends need none. ``FASTSAC_SKIP_CUDA=1`` skips it on purpose.

Use ``pip install -e . --no-build-isolation`` (or ``pip install . --no-build-isolation``) so the build sees the
installed torch; under build isolation torch is absent from the build environment and the extension is skipped.
Architectures: ``TORCH_CUDA_ARCH_LIST`` when set, else sm_80 and sm_90 (+ PTX for newer GPUs).
"""

from __future__ import annotations

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
SKIP_LINE = "fastsac: building without the CUDA extension ({}); the torch and Triton backends remain"


class build_py_with_csrc(build_py):
    """Also ship csrc/ as fastsac/csrc in wheels, so an installed fastsac can JIT-build the CPU extension."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):  # an editable install finds <repo>/csrc next to the package
            return
        dest = Path(self.build_lib) / "fastsac" / "csrc"
        dest.mkdir(parents=True, exist_ok=True)
        for src in sorted((ROOT / CSRC).glob("*")):
            if src.suffix in {".h", ".cuh", ".cpp", ".cu"}:
                shutil.copy2(src, dest / src.name)


def _cuda_arch_flags() -> list[str]:
    if os.environ.get("TORCH_CUDA_ARCH_LIST"):
        return []  # torch.utils.cpp_extension turns TORCH_CUDA_ARCH_LIST into -gencode flags itself
    return [
        "-gencode=arch=compute_80,code=sm_80",  # A100
        "-gencode=arch=compute_90,code=sm_90",  # H100 / H200
        "-gencode=arch=compute_90,code=compute_90",  # PTX, JIT-compiled by the driver on newer GPUs
    ]


def _nvcc_release(nvcc: str) -> str | None:
    """The CUDA release nvcc reports ("13.0"), or None if it cannot be read."""
    try:
        out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"release (\d+\.\d+)", out)
    return m.group(1) if m else None


def _cuda_extension():
    """(ext_modules, cmdclass) for the CUDA build, or None with the reason it is skipped printed."""
    if os.environ.get("FASTSAC_SKIP_CUDA") == "1":
        print(SKIP_LINE.format("FASTSAC_SKIP_CUDA=1"), file=sys.stderr)
        return None
    force = os.environ.get("FASTSAC_FORCE_CUDA") == "1"
    try:
        import torch
        from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CUDAExtension
    except ImportError as exc:
        if force:
            raise RuntimeError("fastsac: FASTSAC_FORCE_CUDA=1 but torch is not importable in the build "
                               "environment; install torch first and use --no-build-isolation") from exc
        print(SKIP_LINE.format("torch is not importable in the build environment; with build isolation use "
                               "--no-build-isolation"), file=sys.stderr)
        return None
    if not force:
        nvcc = shutil.which("nvcc") or (CUDA_HOME and shutil.which(os.path.join(CUDA_HOME, "bin", "nvcc")))
        if torch.version.cuda is None:
            print(SKIP_LINE.format(f"torch {torch.__version__} has no CUDA"), file=sys.stderr)
            return None
        if not nvcc:
            print(SKIP_LINE.format("nvcc not found; set CUDA_HOME or put nvcc on PATH"), file=sys.stderr)
            return None
        nvcc_cuda = _nvcc_release(nvcc)
        if nvcc_cuda and nvcc_cuda.split(".")[0] != torch.version.cuda.split(".")[0]:
            # torch.utils.cpp_extension refuses a different CUDA major version; say so instead of failing.
            print(SKIP_LINE.format(f"nvcc is CUDA {nvcc_cuda} but torch was built with CUDA {torch.version.cuda}; "
                                   "install a matching toolkit or torch, or force with FASTSAC_FORCE_CUDA=1"),
                  file=sys.stderr)
            return None

    sources = sorted(f"{CSRC}/{p.name}" for p in (ROOT / CSRC).iterdir() if p.suffix in {".cpp", ".cu"})
    ext = CUDAExtension(
        name="fastsac._C",
        sources=sources,
        include_dirs=[str(ROOT / CSRC)],
        define_macros=[("FASTSAC_WITH_CUDA", None)],
        extra_compile_args={
            "cxx": ["-O3"],
            # No --use_fast_math: the ops promise fp32 relative error well under 1e-5.
            "nvcc": ["-O3", "-lineinfo", *_cuda_arch_flags()],
        },
    )
    print(f"fastsac: building the CUDA extension fastsac._C (torch {torch.__version__}, CUDA {torch.version.cuda})",
          file=sys.stderr)
    return [ext], {"build_ext": BuildExtension}


cmdclass = {"build_py": build_py_with_csrc}
ext_modules = []
_cuda = _cuda_extension()
if _cuda is not None:
    ext_modules, extra_cmdclass = _cuda
    cmdclass.update(extra_cmdclass)

setup(ext_modules=ext_modules, cmdclass=cmdclass)
