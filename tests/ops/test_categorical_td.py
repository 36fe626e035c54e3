"""categorical_td_loss (the C51 critic loss) on every backend against float64 references written here.

Two independent references: ``project64`` (a plain loop over atoms in Python floats, the C51 algorithm as published)
and ``dense_projection`` (the projection as a K x K matrix, ``m_j = sum_k p_k max(0, 1 - |pos_k - j|)``, evaluated in
any dtype: PyTorch's own evaluation of the formula for the accuracy rule of tests/accuracy.py). The projected mass
``m`` of a backend is read back from the public op through its gradient: at zero logits
``d loss / d logits = sum(m) / K - m``.
"""

from __future__ import annotations

import importlib
import math

import pytest
import torch

from fastsac import ops

from tests.accuracy import assert_within_reference_error, reference_evaluations

from .conftest import DEVICE, randn

td_mod = importlib.import_module("fastsac.ops.categorical_td")

GAMMA, V_MIN, V_MAX = 0.97, -4.0, 6.0


# ---------------------------------------------------------------------------------------------------- references


def project64(p, reward, not_done, entropy_term, gamma, v_min, v_max):
    """C51's projection as a loop over samples and atoms, in Python floats (float64)."""
    B, K = p.shape
    dz = (v_max - v_min) / (K - 1)
    m = [[0.0] * K for _ in range(B)]
    p, r, nd, ent = p.double().tolist(), reward.double().tolist(), not_done.double().tolist(), entropy_term.double().tolist()
    for b in range(B):
        for k in range(K):
            t = r[b] + gamma * nd[b] * (v_min + k * dz - ent[b])
            t = min(max(t, v_min), v_max)
            pos = min(max((t - v_min) / dz, 0.0), K - 1.0)
            low = math.floor(pos)
            frac = pos - low
            m[b][low] += p[b][k] * (1.0 - frac)
            if frac > 0.0:
                m[b][low + 1] += p[b][k] * frac
    return torch.tensor(m, dtype=torch.float64, device=reward.device)


def dense_projection(p, reward, not_done, entropy_term, gamma, v_min, v_max):
    """The projection as a matrix product in the dtype of ``p``: ``m_j = sum_k p_k relu(1 - |pos_k - j|)``."""
    K = p.shape[-1]
    dz = (v_max - v_min) / (K - 1)
    atoms = torch.arange(K, dtype=p.dtype, device=p.device)
    z = v_min + atoms * dz
    t = (reward[:, None] + gamma * not_done[:, None] * (z[None, :] - entropy_term[:, None])).clamp(v_min, v_max)
    pos = ((t - v_min) / dz).clamp(0, K - 1)
    weights = (1 - (pos[:, :, None] - atoms[None, None, :]).abs()).clamp_min(0)  # (B, k, j)
    return (p[:, :, None] * weights).sum(1)


def loss64(logits, p, reward, not_done, entropy_term, gamma=GAMMA, v_min=V_MIN, v_max=V_MAX):
    """The float64 loss and its gradient's ingredients from the loop reference."""
    m = project64(p, reward, not_done, entropy_term, gamma, v_min, v_max)
    return -(torch.log_softmax(logits.double(), -1) * m).sum(-1), m


def plain_torch(logits, p, reward, not_done, entropy_term, gamma=GAMMA, v_min=V_MIN, v_max=V_MAX):
    """PyTorch's own evaluation in the inputs' dtype (the baseline of the accuracy rule)."""
    m = dense_projection(p, reward, not_done, entropy_term, gamma, v_min, v_max)
    return -(torch.log_softmax(logits, -1) * m).sum(-1)


def plain_grad(logits, p, reward, not_done, entropy_term, w, **kw):
    x = logits.detach().clone().requires_grad_()
    (plain_torch(x, p, reward, not_done, entropy_term, **kw) * w).sum().backward()
    return x.grad


def make_case(gen, members, B, K, dtype=torch.float32, side_dtype=torch.float32, terminal_frac=0.3):
    lead = () if members is None else ((members,) if isinstance(members, int) else tuple(members))
    logits = randn((*lead, B, K), gen, dtype, scale=2.0)
    p = torch.softmax(randn((B, K), gen, torch.float64, scale=2.0), -1).to(side_dtype)
    reward = randn((B,), gen, side_dtype, scale=3.0)
    not_done = (torch.rand(B, generator=gen) > terminal_frac).to(device=DEVICE, dtype=side_dtype)
    entropy_term = randn((B,), gen, side_dtype, scale=0.7)
    return logits, p, reward, not_done, entropy_term


def projected_mass(backend, p, reward, not_done, entropy_term, members=2, **kw):
    """The backend's projection m, read from its gradient at zero logits: d loss / d z = sum(m) / K - m."""
    B, K = p.shape
    x = torch.zeros((members, B, K), device=DEVICE, dtype=p.dtype, requires_grad=True)
    ops.categorical_td_loss(x, p, reward, not_done, entropy_term, backend=backend, **kw).sum().backward()
    m = p.double().sum(-1, keepdim=True) / K - x.grad.double()
    torch.testing.assert_close(x.grad[0], x.grad[-1], rtol=0, atol=0)  # one projection for every member
    return m[0]


# ---------------------------------------------------------------------------------------------------- accuracy


def check_against_float64(backend, case, **kw):
    logits, p, r, nd, ent = case
    dtype = logits.dtype
    w = randn(logits.shape[:-1], torch.Generator().manual_seed(7), dtype)
    x = logits.clone().requires_grad_()
    loss = ops.categorical_td_loss(x, p, r, nd, ent, gamma=kw.get("gamma", GAMMA), v_min=kw.get("v_min", V_MIN),
                                   v_max=kw.get("v_max", V_MAX), backend=backend)
    assert loss.shape == logits.shape[:-1] and loss.dtype == dtype
    (loss * w).sum().backward()
    want, m = loss64(logits, p, r, nd, ent, **kw)
    # PyTorch's own evaluation of the formula: in float32 for 16-bit logits (as the op's contract: math in float32,
    # the result rounded to the logits' dtype), else in the logits' dtype.
    side = (p, r, nd, ent)
    cd = torch.float32 if dtype in (torch.bfloat16, torch.float16) else dtype

    def plain(z, *s):
        return plain_torch(z.to(cd), *(t.to(cd) for t in s), **kw).to(dtype)

    def plain_d(z, *s):
        return plain_grad(z.to(cd), *(t.to(cd) for t in s), w.to(cd), **kw).to(dtype)

    evals = reference_evaluations(plain, (logits, *side), dtype)
    assert_within_reference_error("loss", loss, want, evals, ctx=f"{backend}, seed in the test id")
    x64 = logits.double().requires_grad_()
    (-(torch.log_softmax(x64, -1) * m).sum(-1) * w.double()).sum().backward()
    grad_evals = reference_evaluations(plain_d, (logits, *side), dtype)
    # d_j = w (softmax_j M - m_j) is a difference: its rounding is bounded by the size of its two terms.
    scale = (w.double().abs()[..., None] * (torch.softmax(x64.detach(), -1) * m.sum(-1, keepdim=True) + m))
    assert_within_reference_error("d_logits", x.grad, x64.grad, grad_evals, scale=scale, ctx=backend)


SHAPES = [  # (members, B, K): no members dim, 2 members, B = 1, K = 2, K = 101, odd sizes, two leading dims
    (None, 1, 101), (2, 1, 2), (2, 7, 101), (None, 33, 11), (2, 300, 51), (3, 5, 2), ((2, 3), 4, 7),
]


@pytest.mark.parametrize("members,B,K", SHAPES, ids=[f"{m}x{b}x{k}" for m, b, k in SHAPES])
def test_loss_and_gradient_match_float64(backend, gen, members, B, K):
    check_against_float64(backend, make_case(gen, members, B, K))


@pytest.mark.parametrize("side", ["float32", "same"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_low_precision_within_rounding(backend, gen, dtype, side):
    """bf16 / fp16 logits (math in float32), the target side in float32 or in the logits' dtype."""
    case = make_case(gen, 2, 65, 51, dtype, side_dtype=torch.float32 if side == "float32" else dtype)
    check_against_float64(backend, case)


def test_float64(gen, backend):
    if backend == "triton":
        pytest.skip("the triton backend computes in float32 only (its float32 results are checked above)")
    logits, p, r, nd, ent = make_case(gen, 2, 9, 13, torch.float64, torch.float64)
    loss = ops.categorical_td_loss(logits, p, r, nd, ent, gamma=GAMMA, v_min=V_MIN, v_max=V_MAX, backend=backend)
    torch.testing.assert_close(loss, loss64(logits, p, r, nd, ent)[0], rtol=1e-12, atol=1e-12)
    # a float32 target side is taken as well (converted to float64)
    loss32 = ops.categorical_td_loss(logits, p.float(), r.float(), nd.float(), ent.float(), gamma=GAMMA, v_min=V_MIN,
                                     v_max=V_MAX, backend=backend)
    assert loss32.dtype == torch.float64


def test_gradcheck_float64(gen, backend):
    if backend == "triton":
        pytest.skip("the triton backend computes in float32 only; its gradients are checked against float64 above")
    logits, p, r, nd, ent = make_case(gen, 2, 4, 6, torch.float64, torch.float64)
    f = lambda z: ops.categorical_td_loss(z, p, r, nd, ent, gamma=GAMMA, v_min=V_MIN, v_max=V_MAX,  # noqa: E731
                                          backend=backend)
    assert torch.autograd.gradcheck(f, (logits.requires_grad_(),))


# ---------------------------------------------------------------------------------------------------- the projection


def test_projection_matches_the_loop_and_conserves_mass(backend, gen):
    _, p, r, nd, ent = make_case(gen, 2, 40, 21)
    m = projected_mass(backend, p, r, nd, ent, gamma=GAMMA, v_min=V_MIN, v_max=V_MAX)
    want = project64(p, r, nd, ent, GAMMA, V_MIN, V_MAX)
    torch.testing.assert_close(m, want, rtol=0, atol=2e-6)
    torch.testing.assert_close(m.sum(-1), p.double().sum(-1), rtol=0, atol=2e-6)
    assert (m > -2e-6).all()
    # the dense formula of this file agrees with the loop (the two references are one algorithm)
    torch.testing.assert_close(dense_projection(p.double(), r.double(), nd.double(), ent.double(), GAMMA, V_MIN,
                                                V_MAX), want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("gamma", [0.0, 0.5, -0.8, 1.7])
def test_projection_for_any_gamma(backend, gen, gamma):
    """gamma 0 (every atom on the reward), a contraction, a negative gamma (the atoms land in reverse order: the C++
    kernel's merge in atom order does not apply and it scatters) and a stretch (both ends clip)."""
    _, p, r, nd, ent = make_case(gen, 2, 24, 17)
    m = projected_mass(backend, p, r, nd, ent, gamma=gamma, v_min=-2.0, v_max=3.0)
    torch.testing.assert_close(m, project64(p, r, nd, ent, gamma, -2.0, 3.0), rtol=0, atol=2e-6)


def test_a_nan_input_gives_that_sample_a_nan_loss(backend, gen):
    """A NaN reward (or entropy term) poisons its own sample's loss in every member, no other, and never an index."""
    logits, p, r, nd, ent = make_case(gen, 2, 6, 9)
    r[1], ent[4] = float("nan"), float("nan")
    loss = ops.categorical_td_loss(logits, p, r, nd, ent, gamma=GAMMA, v_min=V_MIN, v_max=V_MAX, backend=backend)
    assert torch.isnan(loss[:, [1, 4]]).all()  # 4: gamma * not_done * (z - NaN) is NaN even when terminal
    assert torch.isfinite(loss[:, [0, 2, 3, 5]]).all()


def test_terminal_samples_put_everything_beside_the_reward(backend, gen):
    """not_done = 0: every atom lands on the reward: on an atom all of the mass goes there, between two atoms it is
    split by distance."""
    B, K = 4, 11  # dz = 1 on [-4, 6]
    p = torch.softmax(randn((B, K), gen, scale=2.0), -1)
    reward = torch.tensor([2.0, -1.25, 5.5, -4.0], device=DEVICE)
    zeros = torch.zeros(B, device=DEVICE)
    m = projected_mass(backend, p, reward, zeros, randn((B,), gen), gamma=GAMMA, v_min=V_MIN, v_max=V_MAX)
    want = torch.zeros(B, K, dtype=torch.float64, device=DEVICE)
    want[0, 6] = 1.0  # 2.0 is atom 6
    want[1, 2], want[1, 3] = 0.25, 0.75  # -1.25 between atoms 2 (-2) and 3 (-1)
    want[2, 9], want[2, 10] = 0.5, 0.5
    want[3, 0] = 1.0  # v_min itself
    torch.testing.assert_close(m, want * p.double().sum(-1, keepdim=True), rtol=0, atol=2e-6)


def test_atoms_clipped_at_both_ends(backend, gen):
    B, K = 3, 51
    p = torch.softmax(randn((B, K), gen, scale=2.0), -1)
    reward = torch.tensor([100.0, -100.0, 0.0], device=DEVICE)
    ones = torch.ones(B, device=DEVICE)
    m = projected_mass(backend, p, reward, ones, torch.zeros(B, device=DEVICE), gamma=1.0, v_min=V_MIN, v_max=V_MAX)
    assert m[0, -1].item() == pytest.approx(1.0, abs=2e-6) and m[0, :-1].abs().max().item() < 2e-6
    assert m[1, 0].item() == pytest.approx(1.0, abs=2e-6) and m[1, 1:].abs().max().item() < 2e-6
    # reward 0, gamma 1: the identity shift: m = p
    torch.testing.assert_close(m[2], p[2].double(), rtol=0, atol=2e-6)
    # gamma 1.5 stretches the support: the outer atoms clip at v_min and v_max, the mass is kept
    m = projected_mass(backend, p, torch.zeros(B, device=DEVICE), ones, torch.zeros(B, device=DEVICE), gamma=1.5,
                       v_min=-5.0, v_max=5.0)
    want = project64(p, torch.zeros(B), torch.ones(B), torch.zeros(B), 1.5, -5.0, 5.0).to(DEVICE)
    torch.testing.assert_close(m, want, rtol=0, atol=2e-6)
    assert m[:, 0].min() > p[:, 0].double().min() and m[:, -1].min() > p[:, -1].double().min()


def test_positions_exactly_on_atoms(backend, gen):
    """dz = 1 and integer shifts: every atom lands exactly on one (pos an integer, K - 1 included): m is p shifted,
    the shifted-out part heaped on the end atom; no mass is lost at an exact position."""
    B, K = 3, 11  # support -5 .. 5, dz = 1
    p = torch.softmax(randn((B, K), gen, scale=2.0), -1)
    reward = torch.tensor([2.0, -3.0, 0.0], device=DEVICE)
    ones, zeros = torch.ones(B, device=DEVICE), torch.zeros(B, device=DEVICE)
    m = projected_mass(backend, p, reward, ones, zeros, gamma=1.0, v_min=-5.0, v_max=5.0)
    p64 = p.double()
    want = torch.zeros_like(p64)
    want[0, 2:] = p64[0, :-2]
    want[0, -1] += p64[0, -2:].sum()
    want[1, :-3] = p64[1, 3:]
    want[1, 0] += p64[1, :3].sum()
    want[2] = p64[2]
    torch.testing.assert_close(m, want, rtol=0, atol=2e-6)


def test_loss_at_the_target_is_its_entropy(backend, gen):
    """logits = log(m): the cross-entropy is the entropy of m, and the gradient is 0 (m normalised)."""
    _, p, r, nd, ent = make_case(gen, None, 16, 31)
    m = project64(p, r, nd, ent, GAMMA, V_MIN, V_MAX)
    logits = m.clamp_min(1e-30).log().float().expand(2, -1, -1).contiguous().requires_grad_()
    loss = ops.categorical_td_loss(logits, p, r, nd, ent, gamma=GAMMA, v_min=V_MIN, v_max=V_MAX, backend=backend)
    entropy = -(m * m.clamp_min(1e-30).log()).sum(-1)
    torch.testing.assert_close(loss.double(), entropy.expand(2, -1), rtol=1e-5, atol=1e-5)
    loss.sum().backward()
    assert logits.grad.abs().max().item() < 1e-5


# ---------------------------------------------------------------------------------------------------- autograd


def test_no_gradient_to_the_target_side(backend, gen):
    logits, p, r, nd, ent = make_case(gen, 2, 8, 5)
    side = [t.clone().requires_grad_() for t in (p, r, nd, ent)]
    x = logits.clone().requires_grad_()
    loss = ops.categorical_td_loss(x, *side, gamma=GAMMA, v_min=V_MIN, v_max=V_MAX, backend=backend)
    loss.sum().backward()
    assert x.grad is not None and all(t.grad is None for t in side)
    with torch.no_grad():
        again = ops.categorical_td_loss(x, *side, gamma=GAMMA, v_min=V_MIN, v_max=V_MAX, backend=backend)
    assert not again.requires_grad
    torch.testing.assert_close(again, loss.detach(), rtol=0, atol=0)


def test_non_contiguous_logits(backend, gen):
    logits, p, r, nd, ent = make_case(gen, None, 6, 14)
    wide = torch.stack([logits, logits])[..., ::2]  # (2, 6, 7), strided
    got = ops.categorical_td_loss(wide, p[:, ::2], r, nd, ent, gamma=GAMMA, v_min=V_MIN, v_max=V_MAX, backend=backend)
    want = ops.categorical_td_loss(wide.contiguous(), p[:, ::2].contiguous(), r, nd, ent, gamma=GAMMA, v_min=V_MIN,
                                   v_max=V_MAX, backend=backend)
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_same_bits_at_any_thread_count(backend, gen):
    """Each sample's projection and loss are computed whole by one thread: the thread count changes no bit."""
    logits, p, r, nd, ent = make_case(gen, 2, 700, 51)
    w = randn(logits.shape[:-1], gen)
    results = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            x = logits.clone().requires_grad_()
            loss = ops.categorical_td_loss(x, p, r, nd, ent, gamma=GAMMA, v_min=V_MIN, v_max=V_MAX, backend=backend)
            (loss * w).sum().backward()
            results.append((loss.detach(), x.grad))
    finally:
        torch.set_num_threads(threads)
    for got, want in zip(*results):
        assert torch.equal(got, want)


def test_opcheck(backend, gen):
    logits, p, r, nd, ent = make_case(gen, 2, 6, 9)
    x = logits.requires_grad_()
    torch.library.opcheck(td_mod._categorical_td, (x, p, r, nd, ent, GAMMA, V_MIN, V_MAX, backend))
    m = td_mod._categorical_td(logits.detach(), p, r, nd, ent, GAMMA, V_MIN, V_MAX, backend)[1]
    torch.library.opcheck(td_mod._categorical_td_backward, (randn((2, 6), gen), logits.detach(), m, backend))


def test_opcheck_dispatcher_op(cpp_extension, gen):
    from fastsac.ops import extension

    ns = extension.dispatcher_ops(DEVICE.type)
    logits, p, r, nd, ent = make_case(gen, 2, 6, 9)
    torch.library.opcheck(ns.categorical_td.default, (logits.requires_grad_(), p, r, nd, ent, GAMMA, V_MIN, V_MAX))
    m = ns.categorical_td(logits.detach(), p, r, nd, ent, GAMMA, V_MIN, V_MAX)[1]
    torch.library.opcheck(ns.categorical_td_backward.default, (randn((2, 6), gen), logits.detach(), m))


def _op_nodes(gm):
    return [n for n in gm.graph.nodes if n.op == "call_function" and "categorical_td" in str(n.target)]


@pytest.mark.parametrize("compile_backend", ["torch", "cpp"])
def test_compiles_as_one_node_and_matches_eager(gen, compile_backend, request):
    """Under torch.compile(fullgraph=True) the loss is one node (the custom op, or the extension's dispatcher op)
    in the forward graph and its backward one node in the backward graph; results equal eager's."""
    if compile_backend == "cpp":
        request.getfixturevalue("cpp_extension")
    from functorch.compile import make_boxed_func
    from torch._functorch.aot_autograd import aot_module_simplified

    graphs = []

    def capture(gm, example_inputs):
        def record(g, _):
            graphs.append(g)
            return make_boxed_func(g.forward)

        return aot_module_simplified(gm, example_inputs, fw_compiler=record, bw_compiler=record)

    logits, p, r, nd, ent = make_case(gen, 2, 32, 101)

    def step(z):
        return ops.categorical_td_loss(z, p, r, nd, ent, gamma=GAMMA, v_min=V_MIN, v_max=V_MAX,
                                       backend=compile_backend).mean()

    torch._dynamo.reset()
    compiled = torch.compile(step, backend=capture, fullgraph=True)
    results = []
    for run in (compiled, step):
        z = logits.clone().requires_grad_()
        loss = run(z)
        loss.backward()
        results.append((loss.detach(), z.grad))
    (got_loss, got_grad), (want_loss, want_grad) = results
    torch.testing.assert_close(got_loss, want_loss, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(got_grad, want_grad, rtol=1e-6, atol=1e-7)
    assert len(graphs) == 2, "one forward and one backward graph"
    nodes = [n for g in graphs for n in _op_nodes(g)]
    names = sorted(str(n.target) for n in nodes)
    assert len(nodes) == 2 and sum("backward" in t for t in names) == 1, names
    assert not any("log_softmax" in str(n.target) or "scatter" in str(n.target)
                   for g in graphs for n in g.graph.nodes), "the op was decomposed"


@pytest.mark.parametrize("dynamic", [False, True])
def test_compiles_with_inductor(gen, dynamic):
    """With dynamic=True the numbers are traced symbolically (gamma a SymFloat): the checks must not break the
    graph (a graph break there made every call ~150 us slower on a CPU)."""
    logits, p, r, nd, ent = make_case(gen, 2, 16, 21)

    def f(z, gamma):
        loss = ops.categorical_td_loss(z, p, r, nd, ent, gamma=gamma, v_min=V_MIN, v_max=V_MAX)
        return torch.autograd.grad(loss.mean(), z)[0], loss.detach()

    torch._dynamo.config.trace_autograd_ops = True
    z = logits.clone().requires_grad_()
    compiled = torch.compile(f, fullgraph=True, dynamic=dynamic)
    for gamma in (GAMMA, 0.5):
        for got, want in zip(compiled(z, gamma), f(z, gamma)):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_eager_calls_do_not_dispatch_the_custom_op(gen, monkeypatch):
    """On the torch backend and with the extension on CPU tensors an eager call never enters the custom op."""
    backends = ["torch"] + (["cpp"] if DEVICE.type == "cpu" and "cpp" in ops.available_backends("cpu") else [])

    def boom(*args, **kwargs):
        raise AssertionError("the custom op was dispatched on an eager call")

    monkeypatch.setattr(td_mod, "_categorical_td", boom)
    logits, p, r, nd, ent = make_case(gen, 2, 8, 5)
    for backend in backends:
        x = logits.clone().requires_grad_()
        ops.categorical_td_loss(x, p, r, nd, ent, gamma=GAMMA, v_min=V_MIN, v_max=V_MAX, backend=backend).sum().backward()
        assert x.grad is not None


def test_auto_passes_a_large_support_over_triton(gen, monkeypatch):
    """The Triton kernels take K <= 256 atoms: where auto would choose Triton (first in its order, as on a GPU), a
    larger support runs on the next backend; Triton named explicitly raises."""
    pytest.importorskip("triton")
    from fastsac.ops import backends

    if "triton" not in ops.available_backends(DEVICE):
        pytest.skip("triton cannot run here")
    monkeypatch.setitem(backends.AUTO_ORDER, DEVICE.type, ("triton", "torch"))
    monkeypatch.delenv("FASTSAC_BACKEND", raising=False)
    backends.reset()
    try:
        logits, p, r, nd, ent = make_case(gen, 2, 3, 300)
        loss = ops.categorical_td_loss(logits, p, r, nd, ent, gamma=GAMMA, v_min=V_MIN, v_max=V_MAX)
        torch.testing.assert_close(loss.double(), loss64(logits, p, r, nd, ent)[0], rtol=1e-5, atol=1e-5)
        with pytest.raises(ValueError, match="2 <= K <= 256"):
            ops.categorical_td_loss(logits, p, r, nd, ent, gamma=GAMMA, v_min=V_MIN, v_max=V_MAX, backend="triton")
    finally:
        backends.reset()


# ---------------------------------------------------------------------------------------------------- bad input


def test_bad_inputs_raise_clear_errors(gen):
    logits, p, r, nd, ent = make_case(gen, 2, 4, 5)
    kw = dict(gamma=GAMMA, v_min=V_MIN, v_max=V_MAX)
    td = ops.categorical_td_loss
    cases = [
        (ValueError, "at least 2 dimensions", lambda: td(logits[0, 0], p, r, nd, ent, **kw)),
        (ValueError, "K >= 2", lambda: td(logits[..., :1], p[:, :1], r, nd, ent, **kw)),
        (ValueError, r"v_min < v_max", lambda: td(logits, p, r, nd, ent, gamma=GAMMA, v_min=1.0, v_max=1.0)),
        (ValueError, r"v_min < v_max", lambda: td(logits, p, r, nd, ent, gamma=GAMMA, v_min=2.0, v_max=-1.0)),
        (ValueError, "gamma must be finite", lambda: td(logits, p, r, nd, ent, gamma=float("nan"), v_min=0, v_max=1)),
        (TypeError, "gamma must be a Python number", lambda: td(logits, p, r, nd, ent, gamma=torch.tensor(0.9),
                                                                  v_min=V_MIN, v_max=V_MAX)),
        (ValueError, r"target_probs must have shape \(4, 5\)", lambda: td(logits, p[:, :4], r, nd, ent, **kw)),
        (ValueError, r"reward must have shape \(4,\)", lambda: td(logits, p, r[:3], nd, ent, **kw)),
        (ValueError, r"not_done must have shape", lambda: td(logits, p, r, nd[None], ent, **kw)),
        (TypeError, "entropy_term has dtype torch.float64", lambda: td(logits, p, r, nd, ent.double(), **kw)),
        (TypeError, "not_done has dtype torch.int64", lambda: td(logits, p, r, nd.long(), ent, **kw)),
        (TypeError, "target_probs must be a torch.Tensor", lambda: td(logits, p.tolist(), r, nd, ent, **kw)),
        (ValueError, "device", lambda: td(logits, p.to("meta"), r, nd, ent, **kw)),
        (TypeError, "logits has dtype", lambda: td(logits.long(), p, r, nd, ent, **kw)),
        (ValueError, "empty", lambda: td(logits[:, :0], p[:0], r[:0], nd[:0], ent[:0], **kw)),
    ]
    for exc, words, call in cases:
        with pytest.raises(exc, match=words):
            call()
