"""Fixtures of the C++/CUDA extension tests: one build of the CPU extension per test session."""

from __future__ import annotations

import pytest

from fastsac.ops import extension as _extension


@pytest.fixture(scope="session")
def cpp_ext():
    """The extension module the ``fastsac.ops.extension`` face uses on CPU.

    ``fastsac._C`` when it was built at install time (it has the same CPU code), else the CPU-only module
    JIT-built from csrc/ (about 40 s the first time, cached in ``fastsac.ops.extension.extension_dir()``).
    """
    try:
        return _extension.load()
    except ImportError:
        pass
    from torch.utils.cpp_extension import is_ninja_available

    if not is_ninja_available():
        pytest.skip("ninja is not installed (pip install ninja); it is needed to JIT-build the C++ extension")
    return _extension.load_cpu_extension()


@pytest.fixture
def cuda_ext(cpp_ext):
    """Skip unless the extension in use was built with CUDA (and a GPU is present: the ``gpu`` marker)."""
    if not _extension.is_available("cuda"):
        pytest.skip("fastsac._C was not built with CUDA (install with a CUDA torch and nvcc, --no-build-isolation)")
    return cpp_ext
