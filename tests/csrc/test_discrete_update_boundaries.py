"""``discrete_sac_update_cpu`` (csrc/bindings.cpp, discrete_sac_update_check.cpp) checks every tensor and every action
index it is given before it writes any: a rejected call is a RuntimeError naming the entry point and the argument,
and every tensor stays as it was. Its valid arguments are built from a real ``DiscreteSACLearner`` as
fastsac/agents/discrete_sac_native.py packs them; the helpers are test_cpp_boundaries.py's."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from fastsac.agents import DiscreteSACLearner

from tests.csrc.test_cpp_boundaries import (CFG, F32, OBS, _drop, _grow, _noncontig, _set,
                                           assert_rejects_and_writes_nothing, learner_args, learner_tensors)

B, N = 8, 3  # batch, actions


def _learner(**changes) -> DiscreteSACLearner:
    return DiscreteSACLearner(OBS, N, dataclasses.replace(CFG, **changes), "cpu")


def _args(learner: DiscreteSACLearner, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    batch = [torch.randn(B, OBS, generator=g), torch.randint(0, N, (B,), generator=g).float(),
             torch.randn(B, generator=g), torch.randn(B, OBS, generator=g), (torch.arange(B) % 3 == 1).float()]
    return learner_args(learner, batch)


def _action(value):
    def make(t):
        t = t.clone()
        t[5] = value
        return t
    return make


CASES = {
    "actor_odd": (_drop(["actor"]), r"actor must be \[W, b\] for each hidden layer, then W_logits, b_logits.* got 5"),
    "critic_odd": (_drop(["critic"]), r"critic must be \[W, b\] for each layer.* got 5"),
    "target_critic_short": (_drop(["target_critic"]), r"target_critic must hold one tensor per tensor of critic"),
    "batch_six": (_set(["batch"], lambda b: b + [torch.zeros(0)]), r"batch must be \[obs, action, reward, next_obs, "
                  r"terminated\], got 6"),
    "actor_chain_broken": (_set(["actor", 2], lambda t: torch.zeros(t.shape[0], t.shape[1] + 1)),
                           r"actor\[2\] " + F32 + r" of shape \[\*, 16\]"),
    "actor_double": (_set(["actor", 0], lambda t: t.double()), r"actor\[0\] " + F32),
    "critic_outputs": (_set(["critic", 4], lambda t: torch.zeros(t.shape[0], N + 1, t.shape[2])),
                       r"critic\[4\] " + F32 + r" of shape \[2, 3, 6\] \(layer 2's weights, \(members, the actor's "
                       r"number of logits"),
    "critic_members": (_set(["critic", 1], _grow), r"critic\[1\] " + F32 + r" of shape \[2, 10\]"),
    "critic_input": (_set(["critic", 0], lambda t: torch.zeros(t.shape[0], t.shape[1], OBS + 1)),
                     r"critic\[0\] " + F32 + r" of shape \[\*, \*, 5\]"),
    "target_noncontig": (_set(["target_critic", 2], _noncontig), r"target_critic\[2\] " + F32 + r".*not contig"),
    "exp_avg_shape": (_set(["critic_opt", 0, 2], lambda t: t.reshape(-1)),
                      r"critic_opt\.exp_avg\[2\] " + F32 + r" of shape \[2, 6, 10\] \(as critic\[2\]\)"),
    "metric_sums_short": (_set(["metric_sums"], lambda t: torch.zeros(6)), r"metric_sums " + F32 + r" of shape \[7\]"),
    "obs_dim": (_set(["batch", 0], lambda t: torch.zeros(B, OBS + 1)), r"batch\[0\] \(obs\) " + F32),
    "empty_batch": (_set(["batch"], lambda b: [t[:0] for t in b]), r"batch\[0\] \(obs\) must hold at least one"),
    "action_int64": (_set(["batch", 1], lambda t: t.long()), r"batch\[1\] \(action\) " + F32 + r" of 8 elements"),
    "action_rows": (_set(["batch", 1], lambda t: t[:-1].clone()), r"batch\[1\] \(action\) " + F32 + r" of 8 elements"),
    "action_too_large": (_set(["batch", 1], _action(N)), r"must hold action indices, integers in \[0, 3\), got 3 at 5"),
    "action_negative": (_set(["batch", 1], _action(-1.0)), r"integers in \[0, 3\), got -1 at 5"),
    "action_fraction": (_set(["batch", 1], _action(0.5)), r"integers in \[0, 3\), got 0.5 at 5"),
    "action_nan": (_set(["batch", 1], _action(math.nan)), r"integers in \[0, 3\), got nan at 5"),
    "terminated_bool": (_set(["batch", 4], lambda t: t.bool()), r"batch\[4\] \(terminated\) " + F32),
    "gamma_nan": (_set(["gamma"], lambda x: math.nan), r"gamma and tau must be finite"),
    "beta1_one": (_set(["critic_opt", 3, 1], lambda x: 1.0), r"critic_opt betas must be in \[0, 1\)"),
}


@pytest.fixture
def discrete_update(cpp_ext):
    if not hasattr(cpp_ext, "discrete_sac_update_cpu"):
        pytest.fail("the C++ extension in use has no discrete_sac_update_cpu (csrc/bindings.cpp should always define "
                    "it)")
    return cpp_ext.discrete_sac_update_cpu


def test_the_valid_arguments_run_and_write(discrete_update):
    learner = _learner()
    before = [t.clone() for t in learner_tensors(learner)]
    assert discrete_update(**_args(learner)) is None
    changed = [not torch.equal(a, b) for a, b in zip(before, learner_tensors(learner))]
    assert sum(changed) > len(changed) // 2
    assert learner._metric_sums[2].item() == 1.0 and learner._metric_sums[6].item() == 1.0
    fixed = _learner(fixed_alpha=True, initial_alpha=0.2)
    args = _args(fixed)
    args["update_actor"] = False
    assert args["alpha_opt"] is None and discrete_update(**args) is None
    assert fixed._metric_sums[2].item() == 1.0 and fixed._metric_sums[6].item() == 0.0


@pytest.mark.parametrize("case", list(CASES))
def test_discrete_update_rejects_and_writes_nothing(discrete_update, case):
    mutate, message = CASES[case]
    learner = _learner()
    assert_rejects_and_writes_nothing(discrete_update, "discrete_sac_update_cpu", _args(learner),
                                      learner_tensors(learner), mutate, message)
