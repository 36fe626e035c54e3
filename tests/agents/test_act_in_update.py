"""``update(batch, act_obs=obs)``: the update also returns the policy's actions for ``obs``, exactly what ``act(obs)``
called right after it returns (the same generator draws in the same order), computed inside the update where the
learner can (``acts_in_update``: continuous SAC, CrossQ), eagerly, compiled and from a CUDA graph's static output.

Cost: dynamo + AOTAutograd captures (``backend="aot_eager"``, seconds); no inductor compile.
"""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
import torch

from fastsac.agents import ActionSpec, LearnerConfig, make_learner, runners

from .helpers import replayed_from_graphs, simulate_cuda_graph_calls, trace_with_aot_eager
from .test_learner import ACT, NUM_ACTIONS, OBS, _batch, _flat_tensors

SMALL = LearnerConfig(hidden_sizes=(16, 16), update="eager", seed=11)

# kind -> (config, discrete): every learner, and SAC with observation normalization (act_obs is normalized with
# the statistics the update has just advanced)
KINDS = {
    "sac": (SMALL, False),
    "sac_obs_norm": (dataclasses.replace(SMALL, obs_norm=True), False),
    "crossq": (dataclasses.replace(SMALL, policy_delay=2).with_agent("crossq"), False),
    "discrete": (SMALL, True),
}


def _learner(kind, **changes):
    cfg, discrete = KINDS[kind]
    spec = ActionSpec(discrete, NUM_ACTIONS if discrete else ACT)
    return make_learner(OBS, spec, dataclasses.replace(cfg, **changes))


def _acting_obs(step, n=3):
    return torch.randn(n, OBS, generator=torch.Generator().manual_seed(100 + step))


def _assert_same_learner(a, b):
    sa, sb = _flat_tensors(a.state_dict()), _flat_tensors(b.state_dict())
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.mark.parametrize("kind", KINDS)
def test_the_update_returns_exactly_the_actions_act_gives_after_it(kind):
    separate, together = _learner(kind), _learner(kind)
    assert together.acts_in_update == (kind != "discrete")
    for step in range(4):  # policy_delay 2 for CrossQ: both update variants
        batch = _batch(8, seed=step, discrete=KINDS[kind][1])
        assert separate.update(batch) is None
        expected = separate.act(_acting_obs(step))
        actions = together.update(batch, act_obs=_acting_obs(step))
        assert torch.equal(actions, expected), step
    _assert_same_learner(separate, together)  # the generators included: the same draws, in the same order


@pytest.mark.parametrize("kind", ["sac", "discrete"])
def test_a_single_observation_gives_a_single_action(kind):
    learner = _learner(kind)
    action = learner.update(_batch(8, discrete=kind == "discrete"), act_obs=_acting_obs(0, n=1)[0])
    assert action.shape == (() if kind == "discrete" else (ACT,))


def test_acting_observations_of_the_wrong_width_are_refused_before_updating():
    learner, untouched = _learner("sac"), _learner("sac")
    with pytest.raises(ValueError, match=rf"act_obs must be \(N, {OBS}\).*got shape \(3, {OBS + 1}\)"):
        learner.update(_batch(8), act_obs=torch.zeros(3, OBS + 1))
    _assert_same_learner(learner, untouched)


@pytest.mark.parametrize("kind", ["sac", "sac_obs_norm", "crossq"])
def test_compiled_acting_update_is_one_graph_and_matches_eager(kind):
    """The actions are part of the one compiled graph (dynamo + AOTAutograd here) and equal eager ones up to
    float32 rounding; the first-call check compares them too and keeps compiling."""
    eager, traced = _learner(kind), trace_with_aot_eager(_learner(kind, update="compile"))
    stats = torch._dynamo.utils.counters["stats"]
    graphs_before = stats["unique_graphs"]
    for step in range(3):
        batch = _batch(8, seed=step)
        expected = eager.update(batch, act_obs=_acting_obs(step))
        actions = traced.update(batch, act_obs=_acting_obs(step))
        torch.testing.assert_close(actions, expected, rtol=1e-5, atol=1e-6)
    assert stats["unique_graphs"] - graphs_before == (2 if kind == "crossq" else 1)  # CrossQ: policy delay 2
    assert traced.fallbacks == [] and traced.runner.kind == "compile"
    assert all(d < runners.VERIFY_RTOL / 10 for d in traced.runner.checked.first_call_differences.values())


def test_the_first_call_check_compares_the_returned_actions(monkeypatch):
    """A compiled update whose state is right but whose actions are wrong falls back all the same."""
    monkeypatch.delenv("FASTSAC_STRICT", raising=False)
    learner = _learner("sac", update="compile")

    class WrongActions:  # stands for a compiled update whose state is right but whose actions are off
        kind, what = "compile", "torch.compile of the update"

        def __call__(self, *args):
            return learner._update(*args) + 1e-2

    learner.runner.checked.use(WrongActions())
    with pytest.warns(UserWarning, match="returned actions"):
        actions = learner.update(_batch(8), act_obs=_acting_obs(0))
    reference = _learner("sac")
    torch.testing.assert_close(actions, reference.update(_batch(8), act_obs=_acting_obs(0)), rtol=0, atol=0)
    assert [f.kind for f in learner.fallbacks] == ["compile"] and learner.runner.kind == "eager"


class _SimulatedGraph:
    """A CUDA graph on CPU tensors: capturing records the function call made inside ``torch.cuda.graph``; replaying
    runs it again on the same (static) input tensors and writes the result into the captured output tensor."""

    recording: _SimulatedGraph | None = None

    def __init__(self):
        self.call = None

    def replay(self):
        fn, args, output = self.call
        result = fn(*args)
        if output is not None:
            output.copy_(result)


def _recording(fn):
    def call(*args):
        output = fn(*args)
        if _SimulatedGraph.recording is not None:
            _SimulatedGraph.recording.call = (fn, args, output)
        return output
    return call


@contextlib.contextmanager
def _simulated_capture(graph, **_):
    _SimulatedGraph.recording = graph
    try:
        yield
    finally:
        _SimulatedGraph.recording = None


@pytest.mark.parametrize("kind", ["sac", "crossq"])
def test_captured_update_fills_its_static_inputs_and_returns_its_static_output(monkeypatch, kind):
    """The real GraphRunner with CUDA's graph simulated on the CPU: the acting and the plain update are separate
    graphs (separate static inputs), the flag reaches the update in its place, and the returned actions are a copy
    of the graph's output (the next replay overwrites that). Warm-up runs and captures leave no trace: the
    replayed learner equals an eager one."""
    simulate_cuda_graph_calls(monkeypatch, _SimulatedGraph)
    monkeypatch.setattr(torch.cuda, "graph", _simulated_capture)
    eager, graphed = _learner(kind), replayed_from_graphs(_learner(kind))
    graphed.runner.graph._run_inner = _recording(graphed.runner.graph._run_inner)
    held = []
    for step in range(5):
        batch = _batch(8, seed=step)
        acting = step % 3 != 2  # steps 0, 1, 3, 4 act, step 2 does not
        kwargs = {"act_obs": _acting_obs(step)} if acting else {}
        expected = eager.update(batch, **kwargs)
        actions = graphed.update(batch, **kwargs)
        if acting:
            assert torch.equal(actions, expected), step
            held.append((actions, expected))
        else:
            assert actions is None
    assert all(torch.equal(a, e) for a, e in held)  # earlier results were not overwritten by later replays
    assert graphed.runner.graphed and graphed.fallbacks == []
    # sac: one acting graph and one plain (policy delay 1); crossq (delay 2): acting with and without the actor
    # step, and the plain one (step 2 updates the actor)
    assert graphed.runner.graph.num_graphs == (2 if kind == "sac" else 3)
    _assert_same_learner(eager, graphed)


@pytest.mark.gpu
@pytest.mark.parametrize("update", ["eager", "compile"])
def test_cuda_graph_acting_update_matches_eager(update):
    """On CUDA: the captured acting update returns the eager update's actions (up to rounding when compiled)."""
    cfg = dataclasses.replace(SMALL, hidden_sizes=(64, 64), policy_delay=2)
    eager = make_learner(OBS, ActionSpec(False, ACT), dataclasses.replace(cfg, cuda_graph=False), "cuda")
    graphed = make_learner(OBS, ActionSpec(False, ACT), dataclasses.replace(cfg, update=update, cuda_graph=True),
                           "cuda")
    for step in range(5):
        batch = tuple(t.cuda() for t in _batch(64, seed=step))
        obs = _acting_obs(step).cuda()
        expected = eager.update(batch, act_obs=obs)
        actions = graphed.update(batch, act_obs=obs)
        torch.testing.assert_close(actions, expected, rtol=1e-4, atol=1e-5)
    assert graphed.runner.graphed and graphed.runner.graph.flags == {True, False} and graphed.fallbacks == []
