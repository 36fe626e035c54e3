"""Fallbacks of the learner, forced on CPU: a fused-op backend failing its self-check, a compile failure, a torch
too old for the one-graph update, a failed CUDA-graph capture. Each warns once, is kept in ``learner.fallbacks``,
leaves the learner's state as if the failed path had never run (the next path then gives exactly its own result),
and is an error under FASTSAC_STRICT=1. On a GPU: both learners' updates captured, on every backend, with no
fallback (the GPU tests run strict)."""

from __future__ import annotations

import contextlib
import dataclasses
import warnings

import pytest
import torch

import fastsac.kernels
from fastsac.agents import DiscreteSACLearner, LearnerConfig, SACLearner, runners
from fastsac.fallbacks import FallbackError, FallbackWarning
from fastsac.ops import backends

from .helpers import replayed_from_graphs, simulate_cuda_graph_calls
from .test_learner import ACT, NUM_ACTIONS, OBS, _assert_same_state, _batch

CFG = LearnerConfig(hidden_sizes=(16, 16), update="eager", seed=3)


@pytest.fixture(autouse=True)
def not_strict(monkeypatch):
    monkeypatch.delenv("FASTSAC_STRICT", raising=False)
    backends.reset()
    yield
    backends.reset()


@contextlib.contextmanager
def fallback_warnings():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught
    caught[:] = [w for w in caught if issubclass(w.category, FallbackWarning)]


def _failing_compile(message):
    """A stand-in for torch.compile whose compiled function damages the state half-way, then fails."""
    def compile_(fn, **_):
        def compiled(*args):
            with torch.no_grad():
                fn.__self__.actor_params[0].add_(1.0)
                fn.__self__.critic_optim.state_tensors()[0].add_(1.0)
            raise RuntimeError(message)
        return compiled
    return compile_


def _compiled_beside_eager(steps):
    """A compiling SAC learner and an eager one stepped on the same batches; the fallback warnings caught."""
    learner = SACLearner(OBS, ACT, dataclasses.replace(CFG, update="compile"))
    reference = SACLearner(OBS, ACT, CFG)
    with fallback_warnings() as caught:
        for step in range(steps):
            learner.update(_batch(seed=step))
            reference.update(_batch(seed=step))
    return learner, reference, caught


def test_compile_failure_restores_the_state_and_runs_eager(monkeypatch):
    monkeypatch.setattr(torch, "compile", _failing_compile("simulated: inductor could not compile"))
    learner, reference, caught = _compiled_beside_eager(steps=3)
    _assert_same_state(learner, reference)  # the damage was undone; each update ran eagerly, exactly once
    assert len(caught) == 1 and "simulated: inductor could not compile" in str(caught[0].message)
    (record,) = learner.fallbacks
    assert record.kind == "compile" and "SACLearner update" in record.what and "eager" in record.instead
    assert learner.runner.kind == "eager"


def test_compile_failure_is_an_error_when_strict(monkeypatch):
    monkeypatch.setattr(torch, "compile", _failing_compile("simulated: no compiler"))
    monkeypatch.setenv("FASTSAC_STRICT", "1")
    learner = DiscreteSACLearner(OBS, NUM_ACTIONS, dataclasses.replace(CFG, update="compile"))
    untouched = DiscreteSACLearner(OBS, NUM_ACTIONS, CFG)
    with pytest.raises(FallbackError, match="simulated: no compiler.*FASTSAC_STRICT=1"):
        learner.update(_batch(discrete=True))
    _assert_same_state(learner, untouched)


def _miscompiling(relative_error):
    """A stand-in for torch.compile whose compiled function is the eager update with its gradients off by
    ``relative_error``: the critic optimizer's first moments and the metric sums scaled by 1 + relative_error (the
    parameters' first Adam step hardly moves with that, which is why they are not what the check compares)."""
    def compile_(fn, **_):
        def compiled(*args):
            fn(*args)
            learner = fn.__self__
            with torch.no_grad():
                learner.critic_optim.exp_avg[0].mul_(1.0 + relative_error)
                learner._metric_sums.mul_(1.0 + relative_error)
        return compiled
    return compile_


def test_a_miscompiled_update_falls_back_and_keeps_the_eager_result(monkeypatch):
    """A compiled update whose first call is 1e-3 (relative) away from the eager update's numbers, as torch 2.11's
    compile of CrossQ's is (2.5e-3): a compile fallback; the learner keeps the eager result of that call and runs
    eagerly from then on, so it equals an eager learner exactly."""
    monkeypatch.setattr(torch, "compile", _miscompiling(1e-3))
    learner, reference, caught = _compiled_beside_eager(steps=3)
    _assert_same_state(learner, reference)
    assert len(caught) == 1
    (record,) = learner.fallbacks
    assert record.kind == "compile" and "other numbers than the eager update" in record.reason
    assert "critic_optim.exp_avg[0]" in record.reason or "metric sums" in record.reason
    assert learner.runner.kind == "eager"
    (difference,) = learner.runner.checked.first_call_differences.values()
    assert difference == pytest.approx(1e-3, rel=1e-3)


def test_a_compiled_update_within_rounding_is_kept(monkeypatch):
    """1e-6 relative (what inductor's reordered float32 arithmetic gives after one update) passes the check: the
    compiled function keeps running, and the learner keeps the first call's compiled result (not the eager one it
    was compared with), so that a process's first update computes what any later one would (exact resume)."""
    monkeypatch.setattr(torch, "compile", _miscompiling(1e-6))
    learner, reference, caught = _compiled_beside_eager(steps=1)
    assert not caught and not learner.fallbacks and learner.runner.kind == "compile"
    with torch.no_grad():  # the stand-in's compiled result: the eager one with these two scaled
        reference.critic_optim.exp_avg[0].mul_(1.0 + 1e-6)
        reference._metric_sums.mul_(1.0 + 1e-6)
    _assert_same_state(learner, reference)
    (difference,) = learner.runner.checked.first_call_differences.values()
    assert difference == pytest.approx(1e-6, rel=0.1)  # 1 + 1e-6 in float32 is 1 + 8 ulp = 1 + 9.5e-7


def test_a_miscompiled_update_is_an_error_when_strict(monkeypatch):
    monkeypatch.setattr(torch, "compile", _miscompiling(1e-2))
    monkeypatch.setenv("FASTSAC_STRICT", "1")
    learner = DiscreteSACLearner(OBS, NUM_ACTIONS, dataclasses.replace(CFG, update="compile"))
    with pytest.raises(FallbackError, match="other numbers than the eager update.*FASTSAC_STRICT=1"):
        learner.update(_batch(discrete=True))


def _kinked(fn_modify):
    """A stand-in for torch.compile whose compiled function is the eager update followed by ``fn_modify(learner)``."""
    def compile_(fn, **_):
        def compiled(*args):
            fn(*args)
            with torch.no_grad():
                fn_modify(fn.__self__)
        return compiled
    return compile_


def _one_sample_flipped(learner):
    """What a ReLU kink crossed by rounding does to a correct update: one sample's share of one row of a weight
    gradient changes (here: the row of the largest gradient element moves by 2% of that element, so the max-norm
    difference is 2%, far above VERIFY_RTOL, while the tensor's Frobenius norm moves by about 0.5%)."""
    rows = learner.critic_optim.exp_avg[2].view(-1, learner.critic_optim.exp_avg[2].shape[-1])
    rows[int(rows.abs().amax(dim=1).argmax())].add_(0.02 * rows.abs().max())


def test_a_kink_in_the_moments_is_kept_and_a_forward_difference_in_one_metric_is_not(monkeypatch):
    """The moments are compared by norm (MOMENT_RTOL), the forward quantities element by element: a correct update
    whose first call crossed a ReLU kink keeps running; an error in one metric sum alone (the actor loss of torch
    2.11's miscompiled CrossQ update, 2.2e-4 off) is caught, each sum relative to its own magnitude."""
    monkeypatch.setattr(torch, "compile", _kinked(_one_sample_flipped))
    learner, _, caught = _compiled_beside_eager(steps=1)
    assert not caught and learner.runner.kind == "compile"
    (moment,) = learner.runner.checked.first_call_moment_differences.values()
    assert 1e-4 < moment < runners.MOMENT_RTOL

    def actor_loss_off(learner):
        learner._metric_sums[3].mul_(1.0 + 2.2e-4)

    monkeypatch.setattr(torch, "compile", _kinked(actor_loss_off))
    learner, _, caught = _compiled_beside_eager(steps=1)
    (record,) = learner.fallbacks
    assert "metric sums[actor_loss]" in record.reason and learner.runner.kind == "eager"


def test_moment_difference_is_a_norm_ratio_per_tensor():
    eager = [torch.tensor([3.0, 4.0]), torch.tensor([1.0, 0.0])]
    assert runners.moment_difference(["a", "b"], [t.clone() for t in eager], eager) == (0.0,
                                                                                      "all compared moments equal")
    ratio, where = runners.moment_difference(["a", "b"], [torch.tensor([3.0, 4.5]), eager[1]], eager)
    assert ratio == pytest.approx(0.1) and where.startswith("a:")
    ratio, where = runners.moment_difference(["a", "b"], [eager[0], torch.tensor([1.0, float("nan")])], eager)
    assert ratio == float("inf") and "non-finite" in where
    assert runners.is_moment("critic_optim.exp_avg[2]") and not runners.is_moment("critic.0_running_mean")
    assert runners.group_of("metric sums[q_mean]") == "metric sums"


def test_worst_difference_floors_noise_level_tensors_at_their_groups_scale():
    """A tensor at rounding-noise level (a batch-norm running mean that is zero by construction) is compared
    against GROUP_FLOOR of the largest tensor of its kind in the same network, not its own magnitude."""
    assert runners.group_of("actor.trunk.blocks.0.norm1.running_mean") == "actor:running_mean"
    assert runners.group_of("critic_optim.exp_avg_sq[3]") == "critic_optim:exp_avg_sq"
    names = ["actor.a.running_mean", "actor.b.running_mean"]
    eager = [torch.tensor([6e-7, -2e-7]), torch.tensor([0.5, -1.0])]
    fast = [torch.tensor([-5e-7, 3e-7]), torch.tensor([0.5, -1.0])]
    ratio, where = runners.worst_difference(names, fast, eager)
    assert ratio == pytest.approx(1.1e-6 / (runners.GROUP_FLOOR * 1.0)) and "floored" in where
    # alone in its group it is compared with itself, and the same rounding is a large relative difference
    assert runners.worst_difference(names[:1], fast[:1], eager[:1])[0] > 1.0
    # a real error in a tensor of ordinary size is still relative to itself
    ratio, _ = runners.worst_difference(names, [fast[0], torch.tensor([0.5, -1.003])], eager)
    assert ratio == pytest.approx(3e-3, rel=1e-3)


def test_worst_difference_reads_integer_and_non_finite_tensors():
    a = torch.tensor([1.0, 2.0, float("nan")])
    assert runners.worst_difference(["a"], [a.clone()], [a]) == (0.0, "all compared tensors equal")
    ratio, where = runners.worst_difference(["a"], [torch.tensor([1.0, 2.002, float("nan")])], [a])
    assert ratio == pytest.approx(1e-3, rel=1e-3) and where.startswith("a:")
    ratio, where = runners.worst_difference(["a"], [torch.tensor([1.0, float("nan"), 3.0])], [a])
    assert ratio == float("inf") and "non-finite" in where
    steps = torch.tensor([3, 4])
    assert runners.worst_difference(["steps"], [torch.tensor([3, 5])], [steps]) == (float("inf"), "steps differs")
    assert runners.worst_difference(["zeros"], [torch.zeros(3)], [torch.zeros(3)])[0] == 0.0
    # Against an all-zero eager tensor, differences count relative to 1e-12: 1e-20 is rounding, 1e-3 is not.
    assert runners.worst_difference(["tiny"], [torch.full((2,), 1e-20)], [torch.zeros(2)])[0] < 1e-4
    assert runners.worst_difference(["off"], [torch.full((2,), 1e-3)], [torch.zeros(2)])[0] > 1.0


def test_torch_without_trace_autograd_ops_updates_eagerly_with_one_warning(monkeypatch):
    monkeypatch.setattr(runners.update_runner, "trace_autograd_ops_supported", lambda: False)
    monkeypatch.setattr(torch, "compile", lambda *a, **k: pytest.fail("must not try to compile"))
    with fallback_warnings() as caught:
        learner = SACLearner(OBS, ACT, dataclasses.replace(CFG, update="compile"))
        reference = SACLearner(OBS, ACT, CFG)
        for step in range(2):
            learner.update(_batch(seed=step))
            reference.update(_batch(seed=step))
    _assert_same_state(learner, reference)
    assert len(caught) == 1 and "trace_autograd_ops" in str(caught[0].message)
    assert [f.kind for f in learner.fallbacks] == ["torch_version"]


@pytest.mark.parametrize("discrete", [False, True], ids=["sac", "discrete"])
def test_failed_capture_restores_the_state_and_runs_without_a_graph(monkeypatch, discrete):
    """The real GraphRunner on CPU tensors with CUDA's calls stubbed: the warm-up runs change the state, then the
    capture itself fails; the update of that call then runs without a graph on the same inputs (its noise drawn
    once), and every later one too."""
    simulate_cuda_graph_calls(monkeypatch, lambda: (_ for _ in ()).throw(RuntimeError("simulated capture")))
    cls, n = (DiscreteSACLearner, NUM_ACTIONS) if discrete else (SACLearner, ACT)
    learner, reference = replayed_from_graphs(cls(OBS, n, CFG)), cls(OBS, n, CFG)
    with fallback_warnings() as caught:
        for step in range(3):
            learner.update(_batch(seed=step, discrete=discrete))
            reference.update(_batch(seed=step, discrete=discrete))
    _assert_same_state(learner, reference)
    assert not learner.runner.graphed and learner.runner.graph.failed and learner.runner.graph.num_graphs == 0
    assert len(caught) == 1 and "simulated capture" in str(caught[0].message)
    assert [f.kind for f in learner.fallbacks] == ["cuda_graph"]


@pytest.mark.skipif(backends._why_unusable("triton", "cpu", None) is not None,
                    reason="needs the Triton interpreter (TRITON_INTERPRET=1, set by conftest without a GPU)")
def test_a_backend_failing_its_self_check_is_a_learner_fallback(monkeypatch):
    monkeypatch.setitem(backends.AUTO_ORDER, "cpu", ("triton", "torch"))
    monkeypatch.setattr(fastsac.kernels, "squashed_gaussian_bwd", lambda *a: (_ for _ in ()).throw(
        RuntimeError("simulated: PTX JIT compilation failed")))
    with fallback_warnings() as caught:
        learner = SACLearner(OBS, ACT, CFG)
    assert learner.backend == "torch" and len(caught) == 1
    (record,) = learner.fallbacks
    assert record.kind == "backend" and "'triton'" in record.what and "PTX JIT" in record.reason


# ---------------------------------------------------------------------------------------------------------- GPU
@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["triton", "cpp", "torch"])
@pytest.mark.parametrize("discrete", [False, True], ids=["sac", "discrete"])
def test_both_updates_capture_on_every_backend(backend, discrete):
    """CUDA graphs of both updates (both policy-delay variants), Triton and the extension under capture: the
    graphed update equals eager updates and nothing fell back (the GPU tests run with FASTSAC_STRICT=1)."""
    if backend == "cpp" and "cpp" not in backends.available_backends("cuda"):
        pytest.skip("fastsac._C is not built with CUDA here")
    cfg = dataclasses.replace(CFG, hidden_sizes=(64, 64), policy_delay=2, backend=backend)
    cls, n = (DiscreteSACLearner, NUM_ACTIONS) if discrete else (SACLearner, ACT)
    eager = cls(OBS, n, dataclasses.replace(cfg, cuda_graph=False), "cuda")
    graphed = cls(OBS, n, dataclasses.replace(cfg, cuda_graph=True), "cuda")
    for step in range(5):
        batch = tuple(t.cuda() for t in _batch(64, seed=step, discrete=discrete))
        eager.update(batch)
        graphed.update(batch)
    assert graphed.runner.graphed and graphed.runner.graph.num_graphs == 2 and graphed.fallbacks == []
    _assert_same_state(eager, graphed, rtol=1e-4, atol=1e-5)
