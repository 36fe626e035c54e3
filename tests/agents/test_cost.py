"""fastsac.agents.cost.update_flops counts exactly the matrix-product FLOPs of the eager updates."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from fastsac.agents import ActionSpec, LearnerConfig, make_learner
from fastsac.agents.cost import update_flops


def _batch(n, obs_dim, act, discrete):
    g = torch.Generator().manual_seed(0)
    action = torch.randint(act, (n,), generator=g) if discrete else torch.rand(n, act, generator=g) * 2 - 1
    return (torch.randn(n, obs_dim, generator=g), action, torch.randn(n, generator=g),
            torch.randn(n, obs_dim, generator=g), torch.zeros(n))


def counted_flops(update, batch) -> int:
    update(batch)  # first call outside the count
    with FlopCounterMode(display=False) as counter:
        update(batch)
    return counter.get_total_flops()


@pytest.mark.parametrize("discrete", [False, True])
@pytest.mark.parametrize(("obs_dim", "act", "hidden", "batch_size"),
                         [(17, 6, (256, 256), 256), (5, 1, (64, 64), 32), (11, 3, (32, 48, 16), 7)])
def test_update_flops_matches_the_eager_update(discrete, obs_dim, act, hidden, batch_size):
    n = max(act, 2) if discrete else act
    learner = make_learner(obs_dim, ActionSpec(discrete, n),
                           LearnerConfig(update="eager", hidden_sizes=hidden, policy_delay=1))
    batch = _batch(batch_size, obs_dim, n, discrete)
    assert counted_flops(learner.update, batch) == update_flops(obs_dim, n, hidden, batch_size, discrete=discrete)
