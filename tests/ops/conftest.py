"""Fixtures shared by the op tests: the device, every backend that can run there, fresh random inputs."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _triton_can_run() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return DEVICE.type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1"


def backend_params():
    """torch always; triton when it can run here; cpp (the C++ extension) always: its fixture builds/loads it."""
    params = [pytest.param("torch", id="torch")]
    if _triton_can_run():
        params.append(pytest.param("triton", id="triton"))
    else:  # pragma: no cover - visible in the test report, never silent
        params.append(pytest.param("triton", id="triton", marks=pytest.mark.skip(reason="triton is not installed")))
    params.append(pytest.param("cpp", id="cpp"))
    return params


@pytest.fixture(scope="session")
def cpp_extension():
    """The C++ extension for this device: the compiled fastsac._C, or (CPU) the JIT-built CPU variant.

    Building must succeed wherever a C++ compiler exists; only a machine without one skips these cases.
    """
    from fastsac.ops import extension as _extension

    if _extension.is_available(DEVICE.type):
        return _extension
    if DEVICE.type == "cuda":
        pytest.fail("CUDA is present but fastsac._C was not built: run `pip install --no-build-isolation -e .`")
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        pytest.skip("no C++ compiler to build the CPU variant of the extension")
    _extension.load_cpu_extension()
    assert _extension.is_available("cpu")
    return _extension


@pytest.fixture(params=backend_params())
def backend(request):
    if request.param == "cpp":
        request.getfixturevalue("cpp_extension")
    return request.param


def randn(shape, gen, dtype=torch.float32, scale=1.0, shift=0.0):
    return (torch.randn(shape, generator=gen, dtype=torch.float64) * scale + shift).to(device=DEVICE, dtype=dtype)


def uniform(shape, gen, lo, hi, dtype=torch.float32):
    return (torch.rand(shape, generator=gen, dtype=torch.float64) * (hi - lo) + lo).to(device=DEVICE, dtype=dtype)
