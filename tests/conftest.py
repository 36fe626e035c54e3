"""Test-wide settings.

Without a GPU, Triton kernels run under the Triton interpreter. The variable must be set before any kernel is
decorated by ``@triton.jit`` (that is, before ``fastsac.kernels`` is imported), so it is set here, first.
"""

import os

try:  # decide on the interpreter before torch/triton are imported by any test module
    import torch

    _has_cuda = torch.cuda.is_available()
except Exception:  # pragma: no cover
    _has_cuda = False

if not _has_cuda:
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

# One thread: small ops on two threads stall unpredictably on the CI machine (see shared NOTES).
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    if _has_cuda:
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device (none present)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
