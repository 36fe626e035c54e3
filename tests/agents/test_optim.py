"""ForeachAdam: matches torch.optim.Adam, checkpoints exactly, and traces into one graph."""

import pytest
import torch

from fastsac.agents.optim import ForeachAdam
from tests.agents.helpers import saved_and_loaded


def _params(seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(33, 17, generator=g), torch.randn(17, generator=g), torch.randn((), generator=g)]


def _grads(params, step, g):
    # Gradients of changing scale and sign, like a real run (and none equal to zero).
    return [torch.randn(p.shape, generator=g) * (1.0 + (step % 5)) + 0.1 for p in params]


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
@pytest.mark.parametrize("lr,betas,eps", [(1e-3, (0.9, 0.999), 1e-8), (3e-2, (0.5, 0.9), 1e-6)])
def test_matches_torch_adam(lr, betas, eps, weight_decay):
    start = _params(0)
    ref_params = [p.clone().requires_grad_() for p in start]
    ours = [p.clone() for p in start]
    ref = torch.optim.Adam(ref_params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    opt = ForeachAdam(ours, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    g = torch.Generator().manual_seed(1)
    for step in range(24):
        grads = _grads(start, step, g)
        for p, grad in zip(ref_params, grads):
            p.grad = grad.clone()
        ref.step()
        opt.step(grads)
    # Both run in float32 with the same formula; they differ only in where the scalar bias corrections are rounded
    # (torch: Python float64; ours: float64 device tensors rounded to float32), i.e. ~1 ulp per step. After 24
    # steps the parameters moved by up to ~24*lr; 2e-6 relative to that displacement is a few ulp per step.
    for p_ref, p, p0 in zip(ref_params, ours, start):
        moved = (p_ref.detach() - p0).abs().max()
        assert moved > 0.5 * lr  # the test does move the parameters
        torch.testing.assert_close(p, p_ref.detach(), rtol=0, atol=2e-6 * float(moved) + 1e-7)
    for key, ours_state in (("exp_avg", opt.exp_avg), ("exp_avg_sq", opt.exp_avg_sq)):
        for p_ref, s in zip(ref_params, ours_state):
            torch.testing.assert_close(s, ref.state[p_ref][key], rtol=1e-6, atol=1e-9)
    assert float(opt.step_count) == 24.0


def test_state_dict_round_trip_continues_identically():
    g = torch.Generator().manual_seed(3)
    a_params = _params(2)
    a = ForeachAdam(a_params, lr=1e-2)
    for step in range(5):
        a.step(_grads(a_params, step, g))
    saved = saved_and_loaded({"params": [p.clone() for p in a_params], "opt": a.state_dict()})

    b_params = [p.clone() for p in saved["params"]]
    b = ForeachAdam(b_params, lr=0.5)  # hyper-parameters come from the state
    exp_avg_ids = [id(t) for t in b.exp_avg]
    b.load_state_dict(saved["opt"])
    assert [id(t) for t in b.exp_avg] == exp_avg_ids  # loaded in place
    assert b.lr == 1e-2
    for step in range(5, 9):
        grads = _grads(a_params, step, g)
        a.step(grads)
        b.step(grads)
    for p, q in zip(a_params, b_params):
        assert torch.equal(p, q)


def test_rejects_mismatched_state_and_grads():
    opt = ForeachAdam(_params(0))
    with pytest.raises(ValueError, match="gradients"):
        opt.step([torch.zeros(1)])
    bad = ForeachAdam([torch.zeros(2)]).state_dict()
    with pytest.raises(ValueError, match="shapes"):
        opt.load_state_dict(bad)
    with pytest.raises(ValueError, match="empty"):
        ForeachAdam([])


def test_step_traces_into_one_graph():
    params = [p.requires_grad_() for p in _params(4)]
    opt = ForeachAdam(params, lr=1e-3)
    x = torch.randn(17)

    def train_step(x):
        loss = (params[0] @ x).square().sum() + params[1].sum() * params[2]
        opt.step(torch.autograd.grad(loss, params))

    with torch._dynamo.config.patch(trace_autograd_ops=True):
        explanation = torch._dynamo.explain(train_step)(x)
    assert explanation.graph_count == 1
    assert explanation.graph_break_count == 0, explanation.break_reasons


def test_changing_lr_takes_effect_on_the_next_step():
    """The step factors are computed one step ahead; setting ``lr`` recomputes them, so a changed lr is never
    applied one step late: the run equals one whose optimizer was built with the new lr at that point."""
    g = torch.Generator().manual_seed(5)
    a_params, b_params = _params(6), _params(6)
    a, b = ForeachAdam(a_params, lr=1e-2), ForeachAdam(b_params, lr=1e-2)
    grads = [_grads(a_params, step, g) for step in range(6)]
    for step in range(3):
        a.step(grads[step])
        b.step(grads[step])
    a.lr = 3e-3
    state = b.state_dict()
    state["lr"] = 3e-3
    b.load_state_dict(state)
    for step in range(3, 6):
        a.step(grads[step])
        b.step(grads[step])
    for p, q in zip(a_params, b_params):
        assert torch.equal(p, q)
    expected = -3e-3 / (1.0 - 0.9**7)  # the factor of step 7, held after step 6
    assert float(a.step_size) == pytest.approx(expected, rel=1e-7)


def test_compiled_step_reads_the_factors_set_one_step_ahead():
    """In a compiled step the one-step-ahead factors are graph inputs (loads, not recomputed per element). They are
    the eager step's bits at every step, and the parameters agree with eager to inductor's rounding: it contracts
    ``beta2 * v + (1 - beta2) * g * g`` into fused multiply-adds (~1 ulp of an update a step), which can flip the
    rounding of ``param + update`` by one ulp of the parameter (relative 1.2e-7)."""
    g = torch.Generator().manual_seed(7)
    eager_params, compiled_params = _params(8), _params(8)
    eager, compiled = ForeachAdam(eager_params, lr=1e-3), ForeachAdam(compiled_params, lr=1e-3)
    step = torch.compile(compiled.step, fullgraph=True)
    for k in range(6):
        grads = _grads(eager_params, k, g)
        eager.step(grads)
        step(grads)
        assert torch.equal(eager.step_size, compiled.step_size)
        assert torch.equal(eager.bias_correction2_sqrt, compiled.bias_correction2_sqrt)
        t = k + 2  # the factors held after step k + 1 are step k + 2's
        assert float(compiled.step_size) == pytest.approx(-1e-3 / (1.0 - 0.9**t), rel=1e-7)
        assert float(compiled.bias_correction2_sqrt) == pytest.approx((1.0 - 0.999**t) ** 0.5, rel=1e-7)
    for p, q, p0 in zip(eager_params, compiled_params, _params(8)):
        moved = float((p - p0).abs().max())
        assert moved > 1e-3
        torch.testing.assert_close(q, p, rtol=2.5e-7, atol=1e-6 * moved)
