"""Fused-op benchmark: every provider side by side in one run, reported as ratios (and bandwidth on CUDA).

Providers (each op, with and without its alpha loss):

- ``plain``:            the formula as users write it in plain PyTorch (softplus form of the tanh Jacobian for the
                        squashed Gaussian; log_softmax / exp / -sum(p log p) for the categorical; for the categorical
                        TD loss the C51 projection by two ``scatter_add_`` under no_grad, then
                        ``-(m * log_softmax(logits)).sum(-1)``), autograd backward;
- ``cleanrl``:          CleanRL's ``torch.distributions`` form (``Normal(mean, std).log_prob(x)`` minus
                        ``log(1 - tanh(x)^2 + 1e-6)``); squashed Gaussian only;
- ``plain_compiled``:   ``torch.compile`` of ``plain`` (inductor fuses it);
- ``fastsac``:          ``fastsac.ops`` as a user calls it, ``backend="auto"`` (on a CPU: the C++ extension's
                        kernels called directly where it is built, else the eager path on the torch backend; on
                        CUDA: the Triton kernels);
- ``fastsac_compiled``: ``torch.compile`` of a function calling ``fastsac.ops`` (one custom-op node);
- ``torch`` / ``triton`` / ``cpp``: fastsac with that backend named (on CUDA; on a CPU ``torch`` always and ``cpp``
                        (the C++ extension) where it is built, or JIT-built with ``--cpp-cpu``).

Ops: ``squashed_gaussian`` and ``categorical`` (``--dims``: the action dimension; with and without the alpha loss), and
``categorical_td`` (the C51 critic loss of ``fastsac.ops.categorical_td_loss``: ``--dims`` is the number of atoms K,
``--sizes`` the batch B, logits of ``TD_MEMBERS`` = 2 critic members; the ``op`` variant only).

Modes: ``fwd`` (forward under ``no_grad``) and ``fwdbwd`` (forward and backward of a loss using every output).
Method: fixed thread count; each case is timed in ``--rounds`` interleaved rounds (every provider once per round,
so load changes hit all of them alike), the median per provider (``--stat min``: the fastest round) is reported
with its ratio to ``plain`` (> 1 is faster). At batch 1 the difference to ``plain`` is the per-call overhead, printed on its own line.

    python bench/bench_ops.py                            # CPU: batches 1 .. 65536, A = 6
    python bench/bench_ops.py --device cuda --json out.json   # GPU: 256 .. 2^20 rows, bandwidth vs a device copy
    python bench/bench_ops.py --ops categorical_td --variants op --dims 101 --sizes 512 1024 --threads 2
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastsac import ops  # noqa: E402

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
BOUNDS = (-5.0, 2.0)
TD_MEMBERS, TD_GAMMA, TD_V_MIN, TD_V_MAX = 2, 0.99, -10.0, 10.0  # the categorical TD loss's case


# ------------------------------------------------------------------------------------------------ the baselines


def _bounded(log_std_raw):
    lo, hi = BOUNDS
    return lo + 0.5 * (hi - lo) * (torch.tanh(log_std_raw) + 1)


def plain_squashed_gaussian(mean, log_std_raw, noise, log_alpha=None, target=None):
    """SAC's sampling and exact log-prob as users write it (bounded log-std, softplus Jacobian)."""
    log_std = _bounded(log_std_raw)
    u = mean + log_std.exp() * noise
    action = torch.tanh(u)
    log_prob = (-0.5 * noise.square() - log_std - LOG_SQRT_2PI - 2 * (math.log(2) - u - F.softplus(-2 * u))).sum(-1)
    if log_alpha is None:
        return action, log_prob
    return action, log_prob, -(log_alpha * (log_prob.detach() + target)).mean()


def cleanrl_squashed_gaussian(mean, log_std_raw, noise, log_alpha=None, target=None):
    """CleanRL's sac_continuous_action.py get_action: torch.distributions with log(1 - tanh^2 + 1e-6)."""
    std = _bounded(log_std_raw).exp()
    normal = torch.distributions.Normal(mean, std)
    x_t = mean + std * noise  # normal.rsample() with this noise
    y_t = torch.tanh(x_t)
    log_prob = (normal.log_prob(x_t) - torch.log(1 - y_t.pow(2) + 1e-6)).sum(-1)
    if log_alpha is None:
        return y_t, log_prob
    return y_t, log_prob, -(log_alpha * (log_prob.detach() + target)).mean()


def plain_categorical(logits, log_alpha=None, target=None):
    log_probs = torch.log_softmax(logits, -1)
    probs = log_probs.exp()
    entropy = -(probs * log_probs).sum(-1)
    if log_alpha is None:
        return probs, log_probs, entropy
    return probs, log_probs, entropy, log_alpha * (entropy.detach().mean() - target)


def plain_categorical_td(logits, target_probs, reward, not_done, entropy_term):
    """The C51 critic loss as users write it: the projection by two scatter_add_ (no gradient), then the
    cross-entropy against log_softmax under autograd."""
    K = target_probs.shape[-1]
    dz = (TD_V_MAX - TD_V_MIN) / (K - 1)
    with torch.no_grad():
        z = torch.linspace(TD_V_MIN, TD_V_MAX, K, device=logits.device, dtype=target_probs.dtype)
        t = (reward[:, None] + TD_GAMMA * not_done[:, None] * (z[None, :] - entropy_term[:, None]))
        pos = ((t.clamp(TD_V_MIN, TD_V_MAX) - TD_V_MIN) / dz).clamp(0, K - 1)
        low = pos.floor()
        frac = pos - low
        lo_idx = low.long()
        hi_idx = (lo_idx + 1).clamp(max=K - 1)
        m = torch.zeros_like(target_probs)
        m.scatter_add_(1, lo_idx, target_probs * (1 - frac))
        m.scatter_add_(1, hi_idx, target_probs * frac)
    return (-(m * torch.log_softmax(logits, -1)).sum(-1),)


def fastsac_provider(op, backend):
    if op == "categorical_td":
        def fn(logits, target_probs, reward, not_done, entropy_term):
            return (ops.categorical_td_loss(logits, target_probs, reward, not_done, entropy_term, gamma=TD_GAMMA,
                                            v_min=TD_V_MIN, v_max=TD_V_MAX, backend=backend),)
    elif op == "squashed_gaussian":
        def fn(mean, log_std_raw, noise, log_alpha=None, target=None):
            if log_alpha is None:
                return ops.squashed_gaussian(mean, log_std_raw, noise, log_std_bounds=BOUNDS, backend=backend)
            return ops.squashed_gaussian_with_alpha_loss(mean, log_std_raw, noise, log_alpha, target,
                                                         log_std_bounds=BOUNDS, backend=backend)
    else:
        def fn(logits, log_alpha=None, target=None):
            if log_alpha is None:
                return ops.categorical(logits, backend=backend)
            return ops.categorical_with_alpha_loss(logits, log_alpha, target, backend=backend)
    return fn


def providers(op, device, variant, mode, *, explicit_backends=True):
    """name -> callable taking the case's arguments. Compiled providers get their own object per (op, variant,
    mode) with dynamic shapes (one shared across grad modes and sizes would hit dynamo's recompile limit)."""
    plain = {"squashed_gaussian": plain_squashed_gaussian, "categorical": plain_categorical,
             "categorical_td": plain_categorical_td}[op]
    out = {"plain": plain}
    if op == "squashed_gaussian":
        out["cleanrl"] = cleanrl_squashed_gaussian
    out["plain_compiled"] = torch.compile(plain, dynamic=True)
    out["fastsac"] = fastsac_provider(op, "auto")
    out["fastsac_compiled"] = torch.compile(fastsac_provider(op, "auto"), dynamic=True)
    if explicit_backends:
        for backend in ops.BACKENDS:
            try:
                ops.resolve_backend(torch.empty(1, device=device), backend=backend)
            except ops.BackendUnavailableError:
                continue
            if backend == "triton" and device.type != "cuda":
                continue  # the interpreter is a test vehicle, not a provider
            if backend == ops.resolve_backend(torch.empty(1, device=device)):
                continue  # the same as "fastsac"
            out[backend] = fastsac_provider(op, backend)
    return out


# ------------------------------------------------------------------------------------------------ cases and timing


def make_case(op, n, a, device, variant, dtype=torch.float32, seed=0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    rand = lambda *shape: torch.randn(*shape, generator=g).to(device=device, dtype=dtype)  # noqa: E731
    extra = []
    if variant == "alpha":
        extra = [torch.zeros((), device=device, requires_grad=True), torch.full((), -float(a), device=device)]
    if op == "squashed_gaussian":
        return [rand(n, a).requires_grad_(), rand(n, a).requires_grad_(), rand(n, a), *extra]
    if op == "categorical_td":  # a = K atoms; TD_MEMBERS critic members; a fifth of the samples terminal
        probs = torch.softmax(torch.randn(n, a, generator=g) * 2, -1).to(device)
        not_done = (torch.rand(n, generator=g) > 0.2).float().to(device)
        return [(rand(TD_MEMBERS, n, a) * 2).requires_grad_(), probs, rand(n) * 3, not_done, rand(n) * 0.5]
    return [(rand(n, a) * 3).requires_grad_(), *extra]


def step_fn(fn, args, mode):
    """A callable running one forward (fwd, under no_grad) or forward + backward of all outputs (fwdbwd)."""
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
    if op == "categorical_td":  # fwd: read logits, target probs, 3 vectors; write loss and m. bwd: read logits, m,
        c = TD_MEMBERS         # the loss's gradient; write d_logits
        fwd = c * na + na + 3 * n * elem + c * n * elem + na
        bwd = c * na + na + c * n * elem + c * na
    elif op == "squashed_gaussian":
        fwd = 3 * na + na + n * elem  # read mean, log_std, noise; write action, log_prob
        bwd = 3 * na + na + n * elem + 2 * na  # re-read inputs, read grad_action, grad_log_prob; write 2 grads
    else:
        fwd = na + 2 * na + n * elem  # read logits; write probs, log_probs, entropy
        bwd = na + 2 * na + n * elem + na  # read logits and 3 grads; write d_logits
    return fwd if mode == "fwd" else fwd + bwd


def _sync(device):
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def time_interleaved(runs: dict, device, min_time=0.2, rounds=5, stat="median") -> dict:
    """Seconds per call of each run, timed in interleaved rounds after a burn-in: the median of the rounds, or with
    ``stat="min"`` the fastest round (on a machine that other work shares, the round least disturbed by it)."""
    sync = _sync(device)
    inner = {}
    for name, run in runs.items():
        for _ in range(3):
            run()
        sync()
        t0 = time.perf_counter()
        run()
        sync()
        inner[name] = max(1, int(min_time / rounds / max(time.perf_counter() - t0, 1e-6)))
    samples = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            sync()
            t0 = time.perf_counter()
            for _ in range(inner[name]):
                run()
            sync()
            samples[name].append((time.perf_counter() - t0) / inner[name])
    reduce = min if stat == "min" else statistics.median
    return {name: reduce(v) for name, v in samples.items()}


def copy_bandwidth(device, nbytes=1 << 28):
    """Device-to-device copy bandwidth (bytes/s counting read + write), the ceiling for a streaming kernel."""
    src = torch.empty(nbytes // 4, device=device)
    dst = torch.empty_like(src)
    return 2 * nbytes / time_interleaved({"copy": lambda: dst.copy_(src)}, device)["copy"]


def run_all(device, sizes, dims, ops_list=("squashed_gaussian", "categorical"), modes=("fwd", "fwdbwd"),
            variants=("op", "alpha"), rounds=5, stat="median"):
    device = torch.device(device)
    rows = []
    bw = copy_bandwidth(device, nbytes=(1 << 28) if device.type == "cuda" else (1 << 26))
    print(f"# torch {torch.__version__}, {device}, {torch.get_num_threads()} thread(s); device copy bandwidth "
          f"{bw / 1e9:.1f} GB/s; {stat} of {rounds} rounds; ratios: plain time / provider time (> 1: faster than plain)",
          flush=True)
    overheads = []
    for op in ops_list:
        for variant in variants:
            if op == "categorical_td" and variant != "op":
                continue  # no alpha-loss variant
            for mode in modes:
                provs = providers(op, device, variant, mode)
                for a in dims:
                    for n in sizes:
                        args = make_case(op, n, a, device, variant)
                        times = time_interleaved({name: step_fn(fn, args, mode) for name, fn in provs.items()},
                                                 device, rounds=rounds, stat=stat)
                        moved = bytes_moved(op, mode, n, a)
                        cells = []
                        for name, t in times.items():
                            row = {"op": op, "variant": variant, "mode": mode, "n": n, "a": a, "provider": name,
                                   "us": t * 1e6, "vs_plain": times["plain"] / t,
                                   "vs_cleanrl": times["cleanrl"] / t if "cleanrl" in times else None,
                                   "vs_plain_compiled": times["plain_compiled"] / t,
                                   "gbps": moved / t / 1e9, "frac_copy_bw": moved / t / bw}
                            rows.append(row)
                            cells.append(f"{name} {t * 1e6:.1f}us x{row['vs_plain']:.2f}")
                        print(f"{op:17s} {variant:5s} {mode:6s} n={n:<7d} A={a:<3d} | " + " | ".join(cells), flush=True)
                        if n == 1:
                            overheads.append((op, variant, mode, a, (times["fastsac"] - times["plain"]) * 1e6))
    for op, variant, mode, a, us in overheads:
        print(f"per-call overhead at batch 1: {op} {variant} {mode} A={a}: fastsac - plain = {us:+.1f} us")
    slower = [r for r in rows if r["provider"] == "fastsac" and r["vs_plain"] < 1.0]
    print(f"fastsac (provider-selected path) slower than plain in {len(slower)} of "
          f"{sum(r['provider'] == 'fastsac' for r in rows)} cases" +
          "".join(f"\n  {r['op']} {r['variant']} {r['mode']} n={r['n']} A={r['a']}: x{r['vs_plain']:.2f}" for r in slower))
    return {"device": str(device), "copy_bandwidth_gbps": bw / 1e9, "threads": torch.get_num_threads(), "rows": rows}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--sizes", type=int, nargs="+", default=None, help="batch rows (default: device-dependent)")
    p.add_argument("--dims", type=int, nargs="+", default=[6], help="action dims")
    p.add_argument("--ops", nargs="+", default=["squashed_gaussian", "categorical"])
    p.add_argument("--modes", nargs="+", default=["fwd", "fwdbwd"])
    p.add_argument("--variants", nargs="+", default=["op", "alpha"], help="op: without, alpha: with the alpha loss")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds per case")
    p.add_argument("--stat", choices=("median", "min"), default="median",
                   help="per provider: the median round, or the fastest (the least disturbed where other work runs)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (fixed for stable timings)")
    p.add_argument("--cpp-cpu", action="store_true", help="JIT-build the C++ CPU extension and include it (CPU)")
    p.add_argument("--json", default=None, help="write the rows to this file")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.cpp_cpu and device.type == "cpu":
        from fastsac.ops import extension

        extension.load_cpu_extension()
    sizes = args.sizes or ([256, 4096, 65536, 1 << 20] if device.type == "cuda" else [1, 16, 256, 4096, 65536])
    result = run_all(device, sizes, args.dims, tuple(args.ops), tuple(args.modes), tuple(args.variants), args.rounds,
                     args.stat)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
