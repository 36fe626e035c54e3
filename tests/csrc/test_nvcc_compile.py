"""csrc/ops_cuda.cu compiles for the H100 (sm_90) with nvcc, even on a machine without a GPU or a CUDA torch.

nvcc's front end parses and type-checks the whole translation unit (the ATen launch glue included) against the
installed torch headers, then ptxas assembles every kernel instantiation for sm_90. The CPU torch wheel ships the
c10/cuda and ATen headers this file uses but not the generated c10/cuda/impl/cuda_cmake_macros.h, which
C10_CUDA_NO_CMAKE_CONFIGURE_FILE skips (it only matters on Windows). ops_cuda.cu deliberately avoids
ATen/cuda/CUDAContext.h, which needs the cuBLAS/cuSPARSE headers of a full CUDA toolkit.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest
import torch
from torch.utils import cpp_extension

CSRC = Path(__file__).resolve().parents[2] / "csrc"
TORCH_INCLUDE = Path(torch.__file__).resolve().parent / "include"

KERNELS = ["squashed_gaussian_fwd_kernel", "squashed_gaussian_bwd_kernel", "categorical_fwd_kernel",
           "categorical_bwd_kernel", "categorical_td_fwd_kernel", "categorical_td_bwd_kernel"]
# Itanium-mangled template arguments <scalar_t, acc_t, ...> of the instantiations.
SCALAR_ARGS = {"float": "Iff", "double": "Idd", "half": "IN3c104HalfEf", "bfloat16": "IN3c108BFloat16Ef"}
GROUP_SIZES = [1, 2, 4, 8, 16, 32]


def _nvcc() -> str | None:
    found = shutil.which("nvcc")
    if found:
        return found
    home = cpp_extension.CUDA_HOME or os.environ.get("CUDA_HOME") or "/usr/local/cuda"
    candidate = Path(home) / "bin" / "nvcc"
    return str(candidate) if candidate.is_file() else None


@pytest.fixture(scope="module")
def ptxas_report(tmp_path_factory):
    nvcc = _nvcc()
    if nvcc is None:
        pytest.skip("nvcc not found (no CUDA toolkit on PATH or in CUDA_HOME)")
    if not (TORCH_INCLUDE / "c10" / "cuda" / "CUDAStream.h").is_file():
        pytest.skip(f"this torch ships no c10/cuda headers under {TORCH_INCLUDE}")
    out = tmp_path_factory.mktemp("nvcc") / "ops_cuda.cubin"
    cmd = [
        nvcc, "-cubin", "-arch=sm_90", "-O3", "-std=c++20", "-Xptxas", "-v",
        "-DFASTSAC_WITH_CUDA", *cpp_extension.COMMON_NVCC_FLAGS,
        f"-I{CSRC}", f"-I{TORCH_INCLUDE}", f"-I{TORCH_INCLUDE / 'torch' / 'csrc' / 'api' / 'include'}",
        f"-I{sysconfig.get_paths()['include']}",
        str(CSRC / "ops_cuda.cu"), "-o", str(out),
    ]
    if not (TORCH_INCLUDE / "c10" / "cuda" / "impl" / "cuda_cmake_macros.h").is_file():
        cmd.insert(1, "-DC10_CUDA_NO_CMAKE_CONFIGURE_FILE")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    log = res.stdout + res.stderr
    assert res.returncode == 0, "nvcc failed:\n" + "\n".join(
        line for line in log.splitlines() if "error" in line.lower() or "ptxas" in line.lower())[-6000:]
    assert out.is_file() and out.stat().st_size > 0
    return log


def _entries(log: str) -> dict[str, str]:
    """Mangled kernel name -> its ptxas report (registers, spills) for sm_90."""
    entries, current = {}, None
    for line in log.splitlines():
        m = re.search(r"Compiling entry function '(\w+)' for 'sm_90'", line)
        if m:
            current = m.group(1)
            entries[current] = ""
        elif current is not None:  # "Function properties", "N bytes stack frame, ... spill ...", "Used N registers"
            entries[current] += line + "\n"
    return entries


def test_every_kernel_instantiation_assembles_for_sm90(ptxas_report):
    entries = _entries(ptxas_report)
    for kernel in KERNELS:
        for dtype, args in SCALAR_ARGS.items():
            for g in GROUP_SIZES:
                pattern = f"{kernel}{args}Li{g}E"
                assert any(pattern in name for name in entries), f"no sm_90 code for {kernel}<{dtype}, G={g}>"
    assert sum("sum_partials_kernel" in name for name in entries) == 2  # float and double accumulators


def test_single_precision_kernels_do_not_spill(ptxas_report):
    """fp32/fp16/bf16 kernels (the ones that matter for speed) keep everything in registers on sm_90."""
    spilling = []
    for name, report in _entries(ptxas_report).items():
        if "Idd" in name or "IdE" in name:  # float64 math calls out to slow paths with a stack frame
            continue
        m = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", report)
        assert m, f"no spill report for {name}"
        if int(m.group(1)) or int(m.group(2)):
            spilling.append(f"{name}: {m.group(0)}")
    assert not spilling, "\n".join(spilling)
