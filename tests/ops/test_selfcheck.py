"""Safe when unproven: the first time ``auto`` would choose a fast backend for a device, that backend is run once
against the torch reference; an error or a mismatch is one warning naming the backend and the error, and ``auto``
uses the next backend. On CPU the Triton interpreter stands in for the GPU: the tests put triton first in auto's
order for this device (on a GPU machine, the real order already starts with it) and break it on purpose."""

from __future__ import annotations

import warnings

import pytest
import torch

import fastsac.kernels
from fastsac import ops
from fastsac.fallbacks import FallbackError, FallbackWarning
from fastsac.ops import backends, selfcheck

from .conftest import DEVICE, _triton_can_run

pytestmark = pytest.mark.skipif(not _triton_can_run(), reason="triton cannot run here (not installed)")


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    """Triton first in auto's order for this device, no remembered results, no strict mode from outside."""
    monkeypatch.setitem(backends.AUTO_ORDER, DEVICE.type, ("triton", "torch"))
    monkeypatch.delenv("FASTSAC_STRICT", raising=False)
    monkeypatch.delenv("FASTSAC_BACKEND", raising=False)
    backends.reset()
    yield
    backends.reset()


def _x():
    return torch.randn(4, 3, device=DEVICE)


def _resolve_recording(x=None):
    x = _x() if x is None else x
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        name = ops.resolve_backend(x)
    return name, [w for w in caught if issubclass(w.category, FallbackWarning)]


def test_a_backend_that_matches_is_chosen_and_checked_once(monkeypatch):
    calls = []
    compare = selfcheck._compare
    monkeypatch.setattr(selfcheck, "_compare", lambda *a: calls.append(a) or compare(*a))
    x = _x()
    rng = torch.get_rng_state()
    name, caught = _resolve_recording(x)
    assert name == "triton" and caught == [] and selfcheck.failures(DEVICE) == []
    assert torch.equal(torch.get_rng_state(), rng)  # the check draws from its own generator
    assert ops.resolve_backend(_x()) == "triton" and len(calls) == 1


def test_a_failing_backend_warns_once_and_auto_uses_the_next(monkeypatch):
    def broken(*args):
        raise RuntimeError("no kernel image is available for execution on the device")

    monkeypatch.setattr(fastsac.kernels, "squashed_gaussian_fwd", broken)
    name, caught = _resolve_recording()
    assert name == "torch" and len(caught) == 1
    message = str(caught[0].message)
    assert "'triton'" in message and "no kernel image is available" in message and "RuntimeError" in message
    again, caught = _resolve_recording()
    assert again == "torch" and caught == []  # once per process and device
    (record,) = selfcheck.failures(DEVICE)
    assert record.kind == "backend" and "triton" in record.what and "no kernel image" in record.reason
    action, _ = ops.squashed_gaussian(_x(), _x(), _x())  # the op itself runs on the reference
    assert action.shape == (4, 3)
    assert ops.resolve_backend(_x(), backend="triton") == "triton"  # a backend named explicitly is not vetoed


def test_a_wrong_result_is_a_mismatch(monkeypatch):
    correct = fastsac.kernels.categorical_bwd
    monkeypatch.setattr(fastsac.kernels, "categorical_bwd", lambda *a: correct(*a) * 1.01)
    name, caught = _resolve_recording()
    assert name == "torch" and len(caught) == 1
    assert "mismatch against the torch reference" in str(caught[0].message)
    assert "mismatch" in selfcheck.failures(DEVICE)[0].reason


def test_strict_turns_the_fallback_into_an_error(monkeypatch):
    monkeypatch.setenv("FASTSAC_STRICT", "1")
    monkeypatch.setattr(fastsac.kernels, "categorical_fwd", lambda *a: (_ for _ in ()).throw(ValueError("boom")))
    with pytest.raises(FallbackError, match="'triton' backend's self-check .*ValueError: boom.*FASTSAC_STRICT=1"):
        ops.resolve_backend(_x())
