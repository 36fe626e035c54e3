"""Test-wide settings.

Without a GPU, Triton kernels run under the Triton interpreter. The variable must be set before any kernel is
decorated by ``@triton.jit`` (that is, before ``fastsac.kernels`` is imported), so it is set here, first. With a
GPU, ``FASTSAC_STRICT=1``: a fast path that falls back (``fastsac.fallbacks``) is an error there.
"""

import os
import zlib

try:  # decide on the interpreter before torch/triton are imported by any test module
    import torch

    _has_cuda = torch.cuda.is_available()
except Exception:  # pragma: no cover
    _has_cuda = False

if not _has_cuda:
    os.environ.setdefault("TRITON_INTERPRET", "1")
else:  # on a GPU every fast path must really run: a fallback (fastsac.fallbacks) fails the test instead
    os.environ.setdefault("FASTSAC_STRICT", "1")

import pytest  # noqa: E402

# One thread: small ops on two threads stall unpredictably on the CI machine (see shared NOTES).
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")  # what a run's thread rule (and a `fastsac train` subprocess) reads


@pytest.fixture
def gen():
    """A CPU generator per test, seeded from the test's id: inputs are random draws, yet a failure reproduces by
    rerunning the test. ``FASTSAC_TEST_SEED=k`` shifts every seed, to rerun the tests on other draws
    (``g.initial_seed()`` is in the accuracy tests' failure messages)."""
    test_id = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]  # without the " (call)" phase suffix
    return torch.Generator(device="cpu").manual_seed(zlib.crc32(test_id.encode()) + int(os.environ.get("FASTSAC_TEST_SEED", 0)))


def pytest_collection_modifyitems(config, items):
    if _has_cuda:
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device (none present)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True, scope="session")
def bf16_rounds_to_nearest():
    """Make the interpreter round fp32 -> bf16 to nearest even, as the GPU does (``cvt.rn.bf16.f32``, asserted in
    test_triton_lowering.py). Triton 3.9's interpreter truncates that cast (``InterpreterBuilder.cast_impl`` calls
    ``_convert_float`` without a rounding mode), a 1-ulp error the compiled kernel does not have."""
    if _has_cuda:
        yield
        return
    try:
        import numpy as np
        import triton.language as tl
        from triton.runtime import interpreter
    except ImportError:
        yield
        return

    builder = getattr(interpreter, "InterpreterBuilder", None)
    original = getattr(builder, "cast_impl", None)
    if original is None:  # another Triton version: its interpreter is then trusted as it is
        yield
        return

    def cast_impl(self, src, dst_type):
        if src.dtype.scalar == tl.float32 and dst_type.scalar == tl.bfloat16:
            rounded = torch.from_numpy(np.array(src.data, dtype=np.float32)).to(torch.bfloat16)
            return interpreter.TensorHandle(rounded.view(torch.int16).numpy().view(np.uint16), dst_type.scalar)
        return original(self, src, dst_type)

    builder.cast_impl = cast_impl
    try:
        yield
    finally:
        builder.cast_impl = original
