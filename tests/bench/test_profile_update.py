"""bench/profile_update.py: the profile splits a compiled update into its products, Inductor's kernels and the
rest, and leaves Inductor's configuration as it found it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch._inductor.config as inductor_config

_spec = importlib.util.spec_from_file_location(
    "profile_update", Path(__file__).resolve().parents[2] / "bench" / "profile_update.py")
profile_update = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(profile_update)


def test_profile_splits_a_compiled_sac_update():
    before = inductor_config.cpp.enable_kernel_profile
    out = profile_update.profile_update("sac", batch_size=64, warmup=1, rounds=1, iters=2)
    assert inductor_config.cpp.enable_kernel_profile == before
    events, parts = out["events"], out["parts"]
    # SAC's compiled update: its linear layers are BLAS products; its Adam steps and activations are Inductor's
    # kernels, each one recorded event under the kernel profile
    assert any(name in profile_update.PRODUCTS for name in events)
    assert any(profile_update.KERNEL_MARK in name for name in events)
    assert parts["products"] > 0 and parts["kernels"] > 0
    assert parts["products"] + parts["kernels"] + parts["other"] == pytest.approx(parts["total"])
    assert sum(ms for ms, _ in events.values()) / 2 == pytest.approx(parts["total"])
    assert len(out["rounds_ms"]) == 1 and out["rounds_ms"][0] > 0


def test_breakdown_sorts_events_by_kind():
    events = {"aten::bmm": (6.0, 3), "aten::addmm": (2.0, 1), "graph_0_cpp_fused_relu_0": (4.0, 2),
              "aten::copy_": (1.0, 5), "TorchDynamo Cache Lookup": (1.0, 2)}
    assert profile_update.breakdown(events, updates=2) == {"products": 4.0, "kernels": 2.0, "other": 1.0,
                                                           "total": 7.0}


def test_iters_must_hold_whole_actor_periods():
    with pytest.raises(ValueError, match="multiple of the policy delay"):
        profile_update.profile_update("flashsac", iters=3)


@pytest.mark.parametrize("argv, message", [
    (["--agent", "flashsac", "--iters", "3"], "multiple of the policy delay"),
    (["--agent", "ppo"], "agent must be one of"),
])
def test_command_line_turns_bad_arguments_into_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        profile_update.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
