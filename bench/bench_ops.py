"""Fused-op benchmark: every provider side by side in one run, reported as ratios (and bandwidth on CUDA).

Providers:
- ``eager``:    the reference formula as plain PyTorch ops, autograd for the backward (what a user writes);
- ``compiled``: ``torch.compile`` of that same function (inductor fuses it);
- ``torch``:    fastsac's custom op on the reference backend (closed-form backward);
- ``triton``:   fastsac's Triton kernels (CUDA only; the CPU interpreter is a test vehicle, not timed);
- ``cuda``:     fastsac's C++/CUDA extension (on CPU: its C++ CPU build, JIT-compiled for the benchmark).

Modes: ``fwd`` (forward only, no grad) and ``fwdbwd`` (forward + backward of a loss using every output).

As a script (prints a table; ``--json`` saves it)::

    python bench/bench_ops.py                        # CPU sizes
    python bench/bench_ops.py --device cuda          # GPU: 256 .. 2^20 rows, bandwidth vs a device copy

As pytest-benchmark (one group per op/mode/shape)::

    python -m pytest bench/bench_ops.py --benchmark-only --benchmark-group-by=group
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time

import torch
import torch.nn.functional as F

from fastsac import ops

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
BOUNDS = (-5.0, 2.0)


# ------------------------------------------------------------------------------------------------ the eager baseline


def eager_squashed_gaussian(mean, log_std_raw, noise, log_alpha, target):
    """SAC's sampling + log-prob + alpha loss as users write it in PyTorch (exact Jacobian, bounded log-std)."""
    lo, hi = BOUNDS
    log_std = lo + 0.5 * (hi - lo) * (torch.tanh(log_std_raw) + 1)
    u = mean + log_std.exp() * noise
    action = torch.tanh(u)
    log_prob = (-0.5 * noise.square() - log_std - LOG_SQRT_2PI - 2 * (math.log(2) - u - F.softplus(-2 * u))).sum(-1)
    alpha_loss = -(log_alpha * (log_prob.detach() + target)).mean()
    return action, log_prob, alpha_loss


def eager_categorical(logits, log_alpha, target):
    log_probs = torch.log_softmax(logits, -1)
    probs = log_probs.exp()
    entropy = -(probs * log_probs).sum(-1)
    alpha_loss = log_alpha * (entropy.detach().mean() - target)
    return probs, log_probs, entropy, alpha_loss


def fused_squashed_gaussian(backend):
    def fn(mean, log_std_raw, noise, log_alpha, target):
        return ops.squashed_gaussian_with_alpha_loss(
            mean, log_std_raw, noise, log_alpha, target, log_std_bounds=BOUNDS, backend=backend
        )

    return fn


def fused_categorical(backend):
    def fn(logits, log_alpha, target):
        return ops.categorical_with_alpha_loss(logits, log_alpha, target, backend=backend)

    return fn


# ------------------------------------------------------------------------------------------------ cases


def make_case(op, n, a, device, dtype=torch.float32, seed=0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    rand = lambda *shape: torch.randn(*shape, generator=g).to(device=device, dtype=dtype)  # noqa: E731
    log_alpha = torch.zeros((), device=device, requires_grad=True)
    target = torch.full((), -float(a), device=device)
    if op == "squashed_gaussian":
        return [rand(n, a).requires_grad_(), rand(n, a).requires_grad_(), rand(n, a), log_alpha, target]
    return [(rand(n, a) * 3).requires_grad_(), log_alpha, target]


def providers(op, device):
    eager = eager_squashed_gaussian if op == "squashed_gaussian" else eager_categorical
    fused = fused_squashed_gaussian if op == "squashed_gaussian" else fused_categorical
    # One compiled object per (op, mode) with dynamic shapes: sharing one across grad modes and sizes would hit
    # dynamo's recompile limit and silently fall back to eager.
    out = {"eager": eager, "compiled": torch.compile(eager, dynamic=True), "torch": fused("torch")}
    if device.type == "cuda":
        out["triton"] = fused("triton")
    try:
        ops.resolve_backend(torch.empty(1, device=device), backend="cuda")
        out["cuda"] = fused("cuda")
    except ops.BackendUnavailableError:
        pass
    return out


def step_fn(fn, args, mode):
    """A callable running one forward (fwd) or forward + backward of all outputs (fwdbwd)."""
    if mode == "fwd":

        def run():
            with torch.no_grad():
                return fn(*args)

        return run
    grads = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]

    def run():
        outs = fn(*args)
        loss = sum(o.float().sum() for o in outs)
        return torch.autograd.grad(loss, grads)

    return run


def bytes_moved(op, mode, n, a, elem=4):
    """Compulsory DRAM traffic of the fused op (what a perfect kernel reads and writes once)."""
    na = n * a * elem
    if op == "squashed_gaussian":
        fwd = 3 * na + na + n * elem  # read mean, log_std, noise; write action, log_prob
        bwd = 3 * na + na + n * elem + 2 * na  # re-read inputs, read grad_action, grad_log_prob; write 2 grads
    else:
        fwd = na + 2 * na + n * elem  # read logits; write probs, log_probs, entropy
        bwd = na + 2 * na + n * elem + na  # read logits and 3 grads; write d_logits
    return fwd if mode == "fwd" else fwd + bwd


def time_it(run, device, min_time=0.2, repeats=5):
    """Median seconds per call over interleavable repeats, after a burn-in."""
    for _ in range(3):
        run()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    run()
    sync()
    once = max(time.perf_counter() - t0, 1e-6)
    inner = max(1, int(min_time / repeats / once))
    samples = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        for _ in range(inner):
            run()
        sync()
        samples.append((time.perf_counter() - t0) / inner)
    return statistics.median(samples)


def copy_bandwidth(device, nbytes=1 << 28):
    """Device-to-device copy bandwidth (bytes/s counting read + write), the ceiling for a streaming kernel."""
    src = torch.empty(nbytes // 4, device=device)
    dst = torch.empty_like(src)
    seconds = time_it(lambda: dst.copy_(src), device)
    return 2 * nbytes / seconds


def run_all(device, sizes, dims, ops_list=("squashed_gaussian", "categorical"), modes=("fwd", "fwdbwd")):
    device = torch.device(device)
    rows = []
    bw = copy_bandwidth(device, nbytes=(1 << 28) if device.type == "cuda" else (1 << 26))
    print(f"# device copy bandwidth: {bw / 1e9:.1f} GB/s ({device})", flush=True)
    for op in ops_list:
        provs_by_mode = {mode: providers(op, device) for mode in modes}
        for a in dims:
            for n in sizes:
                args = make_case(op, n, a, device)
                for mode in modes:
                    times = {}
                    for name, fn in provs_by_mode[mode].items():
                        times[name] = time_it(step_fn(fn, args, mode), device)
                    moved = bytes_moved(op, mode, n, a)
                    for name, t in times.items():
                        row = {
                            "op": op, "mode": mode, "n": n, "a": a, "provider": name, "us": t * 1e6,
                            "vs_eager": times["eager"] / t, "vs_compiled": times["compiled"] / t,
                            "gbps": moved / t / 1e9, "frac_copy_bw": moved / t / bw,
                        }
                        rows.append(row)
                        print(
                            f"{op:18s} {mode:7s} n={n:<8d} A={a:<3d} {name:9s} {t * 1e6:10.1f} us  "
                            f"x{row['vs_eager']:6.2f} eager  x{row['vs_compiled']:6.2f} compiled  "
                            f"{row['gbps']:7.1f} GB/s ({100 * row['frac_copy_bw']:5.1f}% of copy)",
                            flush=True,
                        )
    return {"device": str(device), "copy_bandwidth_gbps": bw / 1e9, "rows": rows}


# ------------------------------------------------------------------------------------------------ pytest-benchmark

try:
    import pytest
except ImportError:  # pragma: no cover
    pytest = None

if pytest is not None:
    _DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    _SIZES = [256, 4096, 65536, 1 << 20] if _DEVICE.type == "cuda" else [256, 4096, 65536]

    @pytest.mark.parametrize("mode", ["fwd", "fwdbwd"])
    @pytest.mark.parametrize("a", [6, 17])
    @pytest.mark.parametrize("n", _SIZES)
    @pytest.mark.parametrize("op", ["squashed_gaussian", "categorical"])
    @pytest.mark.parametrize("provider", ["eager", "compiled", "torch", "triton", "cuda"])
    def test_bench(benchmark, provider, op, n, a, mode):
        provs = providers(op, _DEVICE)
        if provider not in provs:
            pytest.skip(f"{provider} cannot run on {_DEVICE}")
        benchmark.group = f"{op} {mode} n={n} A={a}"
        run = step_fn(provs[provider], make_case(op, n, a, _DEVICE), mode)
        run()
        sync = torch.cuda.synchronize if _DEVICE.type == "cuda" else (lambda: None)
        benchmark(lambda: (run(), sync()))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--sizes", type=int, nargs="+", default=None, help="batch rows (default: device-dependent)")
    p.add_argument("--dims", type=int, nargs="+", default=[6, 17], help="action dims")
    p.add_argument("--ops", nargs="+", default=["squashed_gaussian", "categorical"])
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (fixed for stable timings)")
    p.add_argument("--cpp-cpu", action="store_true", help="JIT-build the C++ CPU extension and include it (CPU)")
    p.add_argument("--json", default=None, help="write the rows to this file")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.cpp_cpu and device.type == "cpu":
        from fastsac.ops import extension as _extension

        _extension.load_cpu_extension()
    sizes = args.sizes or ([256, 4096, 65536, 1 << 20] if device.type == "cuda" else [256, 4096, 65536])
    result = run_all(device, sizes, args.dims, tuple(args.ops))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
