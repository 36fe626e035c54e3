"""bench/bench_update.py: its baseline does more matrix-product work than the floor it is measured against (the
floor's count itself is tested in tests/agents/test_cost.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from fastsac.agents.cost import update_flops

_spec = importlib.util.spec_from_file_location(
    "bench_update", Path(__file__).resolve().parents[2] / "bench" / "bench_update.py")
bench_update = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_update)


def _counted_flops(update, batch) -> int:
    update(batch)  # first call: lazy state (optimizer moments) is created outside the count
    with FlopCounterMode(display=False) as counter:
        update(batch)
    return counter.get_total_flops()


def test_cleanrl_baseline_needs_more_flops():
    """CleanRL's update also forms the critics' weight gradients in the actor step and runs one more actor pass
    for the alpha loss, so the floor (fastsac's count) is below the baseline's own count."""
    torch.manual_seed(0)
    batch = bench_update.make_batches(1, 256, 17, 6)[0]
    assert _counted_flops(bench_update.CleanRLSAC(17, 6).update, batch) > update_flops(17, 6, (256, 256), 256)


def test_products_replay_holds_the_compiled_updates_products():
    """The replay lists the BLAS products of one compiled call: together they are the update's matrix products
    (``update_flops``), less at most the few tiny ones Inductor writes as its own kernels; replaying them runs."""
    from fastsac.agents import LearnerConfig, SACLearner

    torch.manual_seed(0)
    batches = bench_update.make_batches(2, 256, 17, 6)
    learner = SACLearner(17, 6, LearnerConfig(update="compile"))
    learner.update(batches[0])  # compiles (and checks against eager)
    assert not learner.fallbacks
    replay, _ = bench_update.ProductsReplay.record(learner.update, batches[1])
    expected = update_flops(17, 6, (256, 256), 256)
    assert len(replay.calls) >= 16  # the sixteen 256 x 256 x 256-class products at least
    assert 0.99 * expected <= replay.flops <= expected
    replay()


def test_products_replay_through_the_dispatcher_holds_the_native_updates_products():
    """The native update's products come from C++ through torch's dispatcher: a dispatcher-level recording lists
    them (the update's matrix products less the critics' first-layer input gradient of the observations, which
    the actor's step does not need, and the 1-output layers' outer products, which it writes as loops)."""
    from fastsac.agents import LearnerConfig, SACLearner

    torch.manual_seed(0)
    batches = bench_update.make_batches(2, 256, 17, 6)
    learner = SACLearner(17, 6, LearnerConfig(update="native"))  # the README's set-up builds it: never skipped
    learner.update(batches[0])
    replay, _ = bench_update.ProductsReplay.record(learner.update, batches[1], through="dispatcher")
    assert 0.98 * update_flops(17, 6, (256, 256), 256) <= replay.flops <= update_flops(17, 6, (256, 256), 256)
    replay()


def test_products_replay_is_empty_for_an_eager_update():
    torch.manual_seed(0)
    batch = bench_update.make_batches(1, 32, 17, 6)[0]
    assert bench_update.ProductsReplay.record(bench_update.CleanRLSAC(17, 6).update, batch)[0].calls == []
