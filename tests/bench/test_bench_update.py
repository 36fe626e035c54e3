"""bench/bench_update.py's matrix-product floor counts exactly the FLOPs fastsac's update performs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from fastsac.agents import LearnerConfig, SACLearner

_spec = importlib.util.spec_from_file_location(
    "bench_update", Path(__file__).resolve().parents[2] / "bench" / "bench_update.py")
bench_update = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_update)


def _counted_flops(update, batch) -> int:
    update(batch)  # first call: lazy state (optimizer moments) is created outside the count
    with FlopCounterMode(display=False) as counter:
        update(batch)
    return counter.get_total_flops()


@pytest.mark.parametrize(("obs_dim", "act_dim", "batch_size"), [(17, 6, 256), (5, 1, 32)])
def test_update_flops_matches_the_eager_update(obs_dim, act_dim, batch_size):
    torch.manual_seed(0)
    learner = SACLearner(obs_dim, act_dim, LearnerConfig(compile=False, hidden_sizes=(256, 256), policy_delay=1), "cpu")
    batch = bench_update.make_batches(1, batch_size, obs_dim, act_dim)[0]
    assert _counted_flops(learner.update, batch) == bench_update.update_flops(obs_dim, act_dim, 256, batch_size)


def test_cleanrl_baseline_needs_more_flops():
    """CleanRL's update also forms the critics' weight gradients in the actor step and runs one more actor pass
    for the alpha loss, so the floor (fastsac's count) is below the baseline's own count."""
    torch.manual_seed(0)
    batch = bench_update.make_batches(1, 256, 17, 6)[0]
    assert _counted_flops(bench_update.CleanRLSAC(17, 6).update, batch) > bench_update.update_flops(17, 6, 256, 256)
