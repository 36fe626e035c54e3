"""CUDA-only properties of the compiled kernels (fastsac._C built with CUDA): many blocks and grid-stride loops,
deterministic want_sum totals, agreement with the same C++ math on CPU, streams and CUDA-graph capture.

Accuracy over the full shape/dtype grid is in test_cpp_cpu.py, which runs on CUDA too when a GPU is present.
"""

from __future__ import annotations

import math

import pytest
import torch

from fastsac.ops import extension as E
from fastsac.ops import reference as R

pytestmark = [pytest.mark.gpu, pytest.mark.usefixtures("cuda_ext")]


def _sg(N, A, dtype, g, device="cuda"):
    mean = torch.randn(N, A, generator=g, dtype=torch.float64) * 3.0
    raw = torch.randn(N, A, generator=g, dtype=torch.float64) * 2.0
    noise = torch.randn(N, A, generator=g, dtype=torch.float64)
    cd = R.compute_dtype(dtype)
    scale = (torch.rand(A, generator=g, dtype=torch.float64) + 0.5).to(cd).to(device)
    bias = torch.randn(A, generator=g, dtype=torch.float64).to(cd).to(device)
    return [t.to(dtype).to(device) for t in (mean, raw, noise)] + [scale, bias, -5.0, 2.0]


@pytest.mark.parametrize("A", [6, 64])
def test_many_blocks_match_reference(A, gen):
    """N large enough that every block loops over several tiles (grid capped at 8 blocks per SM)."""
    g, seed = gen, gen.initial_seed()
    N = 200_003
    mean, raw, noise, scale, bias, lo, hi = _sg(N, A, torch.float32, g)
    action, log_prob, lp_sum = E.squashed_gaussian_fwd(mean, raw, noise, scale, bias, lo, hi, True)
    ref = R.squashed_gaussian_fwd(mean.double(), raw.double(), noise.double(), scale.double(), bias.double(), lo, hi,
                                  True)
    torch.testing.assert_close(action.double(), ref[0], rtol=1e-5, atol=1e-5, msg=lambda m: f"seed={seed}: {m}")
    torch.testing.assert_close(log_prob.double(), ref[1], rtol=1e-5, atol=1e-4, msg=lambda m: f"seed={seed}: {m}")
    bound = 64 * torch.finfo(torch.float32).eps * ref[1].abs().sum().item()
    assert abs(lp_sum.item() - ref[2].item()) <= bound, f"seed={seed}"

    logits = (torch.randn(N, A, generator=g) * 3.0).cuda()
    probs, log_probs, entropy, h_sum = E.categorical_fwd(logits, True)
    ref = R.categorical_fwd(logits.double(), True)
    torch.testing.assert_close(probs.double(), ref[0], rtol=1e-5, atol=1e-6, msg=lambda m: f"seed={seed}: {m}")
    torch.testing.assert_close(entropy.double(), ref[2], rtol=1e-5, atol=1e-5, msg=lambda m: f"seed={seed}: {m}")
    assert abs(h_sum.item() - ref[3].item()) <= 64 * torch.finfo(torch.float32).eps * ref[2].abs().sum().item()


def test_sums_are_deterministic(gen):
    g, seed = gen, gen.initial_seed()
    mean, raw, noise, scale, bias, lo, hi = _sg(100_000, 6, torch.float32, g)
    logits = (torch.randn(100_000, 6, generator=g) * 3.0).cuda()
    first = (E.squashed_gaussian_fwd(mean, raw, noise, scale, bias, lo, hi, True)[2],
             E.categorical_fwd(logits, True)[3])
    for _ in range(3):
        again = (E.squashed_gaussian_fwd(mean, raw, noise, scale, bias, lo, hi, True)[2],
                 E.categorical_fwd(logits, True)[3])
        assert torch.equal(again[0], first[0]) and torch.equal(again[1], first[1]), f"seed={seed}"


def test_cuda_matches_cpu_in_float64(gen):
    """The same sac_math.h on both devices: float64 results agree to rounding (libm vs CUDA exp/log ulps)."""
    g, seed = gen, gen.initial_seed()
    cpu = _sg(513, 17, torch.float64, g, device="cpu")
    gpu = [t.cuda() if isinstance(t, torch.Tensor) else t for t in cpu]
    for a, b in zip(E.squashed_gaussian_fwd(*cpu, True), E.squashed_gaussian_fwd(*gpu, True)):
        torch.testing.assert_close(b.cpu(), a, rtol=1e-12, atol=1e-12, msg=lambda m: f"seed={seed}: {m}")
    ga, glp = torch.randn(513, 17, dtype=torch.float64), torch.randn(513, dtype=torch.float64)
    args_cpu = (ga, glp, *cpu[:4], cpu[5], cpu[6])
    args_gpu = (ga.cuda(), glp.cuda(), *gpu[:4], gpu[5], gpu[6])
    for a, b in zip(E.squashed_gaussian_bwd(*args_cpu), E.squashed_gaussian_bwd(*args_gpu)):
        torch.testing.assert_close(b.cpu(), a, rtol=1e-12, atol=1e-12, msg=lambda m: f"seed={seed}: {m}")
    z = torch.randn(513, 17, generator=g, dtype=torch.float64) * 3.0
    z[::3, 2] = -math.inf
    for a, b in zip(E.categorical_fwd(z, True), E.categorical_fwd(z.cuda(), True)):
        torch.testing.assert_close(b.cpu(), a, rtol=1e-12, atol=1e-12, msg=lambda m: f"seed={seed}: {m}")


def test_runs_on_the_current_stream(gen):
    g = gen
    mean, raw, noise, scale, bias, lo, hi = _sg(50_000, 6, torch.float32, g)
    expected = E.squashed_gaussian_fwd(mean, raw, noise, scale, bias, lo, hi, True)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        out = E.squashed_gaussian_fwd(mean, raw, noise, scale, bias, lo, hi, True)
    torch.cuda.current_stream().wait_stream(side)
    for a, b in zip(out, expected):
        assert torch.equal(a, b)


def test_cuda_graph_capture_and_replay(gen):
    g, seed = gen, gen.initial_seed()
    mean, raw, noise, scale, bias, lo, hi = _sg(4096, 6, torch.float32, g)
    logits = (torch.randn(4096, 6, generator=g) * 3.0).cuda()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm up outside the capture
        E.squashed_gaussian_fwd(mean, raw, noise, scale, bias, lo, hi, True)
        E.categorical_fwd(logits, True)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        sg_out = E.squashed_gaussian_fwd(mean, raw, noise, scale, bias, lo, hi, True)
        cat_out = E.categorical_fwd(logits, True)
    new = _sg(4096, 6, torch.float32, g)
    for static, fresh in zip((mean, raw, noise), new[:3]):
        static.copy_(fresh)
    logits.copy_((torch.randn(4096, 6, generator=g) * 3.0).cuda())
    graph.replay()
    torch.cuda.synchronize()
    for a, b in zip(sg_out, E.squashed_gaussian_fwd(mean, raw, noise, scale, bias, lo, hi, True)):
        assert torch.equal(a, b), f"seed={seed}"
    for a, b in zip(cat_out, E.categorical_fwd(logits, True)):
        assert torch.equal(a, b), f"seed={seed}"
