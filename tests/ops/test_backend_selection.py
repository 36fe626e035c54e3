"""Backend choice: explicit argument, FASTSAC_BACKEND, auto fallback, loud failure for a named backend."""

from __future__ import annotations

import pytest
import torch

from fastsac import ops
from fastsac.ops import backends as _backends


def test_torch_is_always_available():
    assert "torch" in ops.available_backends()
    assert "torch" in ops.available_backends("cpu")


def test_auto_on_cpu_picks_the_extension_once_it_is_present(cpp_extension):
    """The C++ extension (built at install, or JIT-built by the fixture) is auto's choice for CPU tensors, in every
    dtype it takes; without it auto takes the reference (the next test)."""
    for dtype in (torch.float32, torch.float64, torch.bfloat16, torch.float16):
        x = torch.randn(3, 2, dtype=dtype)
        assert ops.resolve_backend(x) == "cuda"
        assert ops.resolve_backend(x, backend="auto") == "cuda"
        assert ops.resolve_backend(x, backend="torch") == "torch"


def test_environment_variable_overrides_auto(monkeypatch):
    x = torch.randn(3, 2)
    monkeypatch.setenv("FASTSAC_BACKEND", "torch")
    assert ops.resolve_backend(x) == "torch"
    monkeypatch.setenv("FASTSAC_BACKEND", "no-such-backend")
    with pytest.raises(ops.BackendUnavailableError, match="unknown backend 'no-such-backend'"):
        ops.squashed_gaussian(x, x, x)


def test_explicit_argument_wins_over_environment(monkeypatch):
    monkeypatch.setenv("FASTSAC_BACKEND", "no-such-backend")
    x = torch.randn(3, 2)
    assert ops.resolve_backend(x, backend="torch") == "torch"


def test_named_backend_that_cannot_run_raises(monkeypatch):
    """Triton on CPU tensors needs the interpreter; naming it without raises and says why."""
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    x = torch.randn(3, 2)
    with pytest.raises(ops.BackendUnavailableError, match="TRITON_INTERPRET|cannot be imported"):
        ops.squashed_gaussian(x, x, x, backend="triton")
    with pytest.raises(ops.BackendUnavailableError):
        ops.categorical(x, backend="triton")


def test_unknown_backend_name_raises():
    x = torch.randn(3, 2)
    with pytest.raises(ops.BackendUnavailableError, match="choose one of torch, triton, cuda"):
        ops.categorical(x, backend="cudnn")


def test_auto_falls_back_quietly_when_a_backend_fails_to_import(monkeypatch):
    monkeypatch.setitem(_backends._modules, "triton", ImportError("simulated: triton missing"))
    monkeypatch.setitem(_backends._modules, "cuda", ImportError("simulated: extension missing"))
    _backends.reset()
    try:
        x = torch.randn(3, 2)
        assert ops.resolve_backend(x) == "torch"
        assert ops.available_backends("cpu") == ["torch"]
        action, _ = ops.squashed_gaussian(x, x, x)
        assert action.shape == x.shape
    finally:
        _backends.reset()


@pytest.mark.gpu
def test_auto_on_cuda_picks_a_compiled_backend():
    x = torch.randn(3, 2, device="cuda")
    assert ops.resolve_backend(x) in ("triton", "cuda")
