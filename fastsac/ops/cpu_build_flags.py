"""The C++ compiler flags of the CPU code in ``csrc/``: one home for setup.py (the install-time build of
``fastsac._C``) and :func:`fastsac.ops.extension.load_cpu_extension` (the JIT build).

The CPU kernels have a vectorized float32 path written with ATen's ``at::vec::Vectorized`` (AVX2 + FMA + F16C; its
exp/log1p are the Sleef functions libtorch itself uses). It is compiled in only where the machine that builds
can run it: an x86-64 CPU that reports ``avx2``, ``fma`` and ``f16c`` (the build runs on the machine that
installs, so this is the machine that runs). ``FASTSAC_CPU_VEC=0`` builds the scalar path alone.

The kernels split their rows over threads with ``at::parallel_for``, which is inline code: where torch's ATen runs
on OpenMP (Linux wheels), it only spreads work when the extension is compiled and linked with ``-fopenmp`` (the
library it links, libgomp.so.1, is the one torch has already loaded). This file imports nothing from fastsac
(setup.py loads it by path, before the package exists), and torch only when asked for the OpenMP flags.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

BASE_FLAGS = ["-O3"]  # torch adds no optimisation flag of its own
AVX2_FLAGS = ["-mavx2", "-mfma", "-mf16c", "-DCPU_CAPABILITY=AVX2", "-DCPU_CAPABILITY_AVX2"]
ENV_VAR = "FASTSAC_CPU_VEC"


def cpu_flags_of(cpuinfo: str) -> set[str]:
    """The feature flags in a Linux ``/proc/cpuinfo`` text (those of its first processor)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


def can_vectorize(machine: str | None = None, cpuinfo: str | None = None, environ=os.environ) -> tuple[bool, str]:
    """``(whether the AVX2 path is compiled in, why)``."""
    if environ.get(ENV_VAR) == "0":
        return False, f"{ENV_VAR}=0"
    machine = (machine or platform.machine()).lower()
    if machine not in ("x86_64", "amd64"):
        return False, f"the CPU is {machine}, not x86-64"
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False, "no /proc/cpuinfo to read the CPU's features from"
    missing = {"avx2", "fma", "f16c"} - cpu_flags_of(cpuinfo)
    if missing:
        return False, f"the CPU lacks {', '.join(sorted(missing))}"
    return True, "x86-64 with AVX2, FMA and F16C"


def openmp_flags(platform_name: str = sys.platform, torch_has_openmp: bool | None = None) -> list[str]:
    """``-fopenmp`` where torch's ATen threads with OpenMP on Linux (GCC or clang with libgomp), else nothing (ATen's
    own thread pool needs no flag)."""
    if torch_has_openmp is None:
        import torch

        torch_has_openmp = bool(torch._C.has_openmp)
    return ["-fopenmp"] if torch_has_openmp and platform_name.startswith("linux") else []


def cxx_flags(**kwargs) -> list[str]:
    """The compiler flags for the C++ sources of the CPU code."""
    vectorize, _why = can_vectorize(**kwargs)
    return BASE_FLAGS + (AVX2_FLAGS if vectorize else []) + openmp_flags()


def link_flags() -> list[str]:
    """The linker flags of the extension."""
    return openmp_flags()
