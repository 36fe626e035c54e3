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
        assert ops.resolve_backend(x) == "cpp"
        assert ops.resolve_backend(x, backend="auto") == "cpp"
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
    with pytest.raises(ops.BackendUnavailableError, match="choose one of torch, triton, cpp"):
        ops.categorical(x, backend="cudnn")


def test_auto_falls_back_quietly_when_a_backend_fails_to_import(monkeypatch):
    monkeypatch.setitem(_backends._modules, "triton", ImportError("simulated: triton missing"))
    monkeypatch.setitem(_backends._modules, "cpp", ImportError("simulated: extension missing"))
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
    assert ops.resolve_backend(x) in ("triton", "cpp")


def test_resolve_backend_names_the_extension_cpp_for_cpu_tensors(cpp_extension):
    """The C++ extension's backend is ``cpp`` (it runs CPU and CUDA tensors); CPU tensors are its to run."""
    x = torch.randn(3, 2)
    assert ops.resolve_backend(x) == "cpp"
    assert ops.resolve_backend(x, backend="cpp") == "cpp"
    assert "cpp" in ops.available_backends("cpu") and "cuda" not in ops.BACKENDS


def _every_entry(backend):
    """Each public entry point called with ``backend`` (None: the default ``auto``)."""
    x, log_alpha = torch.randn(3, 2), torch.tensor(0.0)
    kw = {} if backend is None else {"backend": backend}
    return {
        "resolve_backend": lambda: ops.resolve_backend(x, **kw),
        "squashed_gaussian": lambda: ops.squashed_gaussian(x, x, x, **kw),
        "squashed_gaussian_with_alpha_loss": lambda: ops.squashed_gaussian_with_alpha_loss(x, x, x, log_alpha, -2.0,
                                                                                           **kw),
        "categorical": lambda: ops.categorical(x, **kw),
        "categorical_with_alpha_loss": lambda: ops.categorical_with_alpha_loss(x, log_alpha, 0.5, **kw),
    }


ENTRIES = list(_every_entry(None))


@pytest.mark.parametrize("entry", ENTRIES)
def test_the_former_name_cuda_as_argument_raises_naming_cpp(entry, cpp_extension):
    """``backend="cuda"`` was the C++ extension's name; it raises and names ``cpp`` (no silent mapping)."""
    with pytest.raises(ops.BackendUnavailableError,
                       match=r"backend 'cuda' is now named 'cpp' \(the C\+\+ extension runs CPU and CUDA tensors\); "
                             r"pass backend='cpp'"):
        _every_entry("cuda")[entry]()


@pytest.mark.parametrize("entry", ENTRIES)
def test_the_former_name_cuda_in_the_environment_raises_naming_cpp(entry, monkeypatch, cpp_extension):
    monkeypatch.setenv("FASTSAC_BACKEND", "cuda")
    _backends.reset()  # nothing remembered from an earlier request may answer for this one
    with pytest.raises(ops.BackendUnavailableError,
                       match=r"FASTSAC_BACKEND=cuda: backend 'cuda' is now named 'cpp' .*; set FASTSAC_BACKEND=cpp"):
        _every_entry(None)[entry]()
    assert ops.resolve_backend(torch.randn(3, 2), backend="torch") == "torch"  # an explicit argument still wins


def test_the_former_name_raises_from_every_lookup():
    """Below the public entries too: the custom ops' backend argument and the backend registry name ``cpp``."""
    x = torch.randn(3, 2)
    assert "is now named 'cpp'" in _backends._why_unusable("cuda", "cpu", None)
    with pytest.raises(ops.BackendUnavailableError, match="is now named 'cpp'"):
        _backends.backend_module("cuda")
    with pytest.raises(ops.BackendUnavailableError, match="is now named 'cpp'"):
        torch.ops.fastsac.categorical(x, None, "cuda")
