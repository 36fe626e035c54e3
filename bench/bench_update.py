"""One SAC update: fastsac (native, compiled and eager) against a CleanRL-style eager update, timed in the same run.

The baseline is CleanRL's ``sac_continuous_action.py`` update written out plainly below: two separate
``SoftQNetwork`` critics and their targets, ``torch.distributions.Normal`` with ``log(1 - tanh^2 + 1e-6)``,
three ``torch.optim.Adam`` optimizers, ``loss.backward()``, the alpha loss on a fresh no-grad actor sample
(as CleanRL does), a per-parameter Polyak loop and ``alpha = log_alpha.exp().item()``. Both sides: 2x256 ReLU
nets, batch 256, HalfCheetah sizes (obs 17, act 6), actor and alpha updated every step (no policy delay on
either side), the same pool of random batches.

fastsac's providers, named by their ``LearnerConfig.update``: ``fastsac_eager`` (``update="eager"``),
``fastsac_compiled`` (``update="compile"``: torch.compile) and, on a CPU with the C++ extension, ``fastsac_native``
(``update="native"``: ``fastsac.agents.sac_native``, one C++ call, nothing to compile), which ``update="auto"``
runs there. The headline ratio is the default's (native where it runs).

Method: fixed thread count (CPU), or CUDA with a device sync around each timed block; burn-in (which also
triggers the compile, timed separately); then ``--repeats`` rounds, each timing ``--iters`` updates of every
provider in turn (interleaved, so load changes hit all providers alike); the median of the per-round ms/update
is reported, with the ratio to the baseline. On CPU it also prints the matrix-product floor: the FLOPs no update
can avoid (``fastsac.agents.cost.update_flops``) at the rate a 256^3 ``torch.mm`` reaches in the same rounds, so
the gap between fastsac and the machine, and the largest ratio over the baseline any implementation could reach, are measured too.
That floor is optimistic: the update's small and oddly shaped products (23-wide first layers, 6-wide heads) run
well below a 256^3 product's rate. So the run also replays the compiled update's own BLAS calls alone, on the
tensors one compiled call used (``ProductsReplay``, the ``products_only`` row, interleaved like the others): what
an update doing exactly these products and nothing else costs here, and what share of fastsac's update is
everything else (the optimizer steps, activations, the fused op, the wrapper's Python, guards).

    python bench/bench_update.py --threads 1
    python bench/bench_update.py --threads 1 --clock cpu      # on a shared machine
    python bench/bench_update.py --threads 2 --repeats 15
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastsac.agents import LearnerConfig, SACLearner  # noqa: E402
from fastsac.agents.cost import update_flops  # noqa: E402

LOG_STD_MAX, LOG_STD_MIN = 2.0, -5.0


# ------------------------------------------------------------------------------------------- CleanRL-style SAC
class SoftQNetwork(nn.Module):
    def __init__(self, obs_dim, act_dim, hidden=256):
        super().__init__()
        self.fc1 = nn.Linear(obs_dim + act_dim, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, 1)

    def forward(self, x, a):
        x = torch.cat([x, a], 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class CleanRLActor(nn.Module):
    def __init__(self, obs_dim, act_dim, hidden=256):
        super().__init__()
        self.fc1 = nn.Linear(obs_dim, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc_mean = nn.Linear(hidden, act_dim)
        self.fc_logstd = nn.Linear(hidden, act_dim)
        self.register_buffer("action_scale", torch.ones(act_dim))
        self.register_buffer("action_bias", torch.zeros(act_dim))

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        mean = self.fc_mean(x)
        log_std = torch.tanh(self.fc_logstd(x))
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (log_std + 1)
        return mean, log_std

    def get_action(self, x):
        mean, log_std = self(x)
        std = log_std.exp()
        normal = torch.distributions.Normal(mean, std)
        x_t = normal.rsample()
        y_t = torch.tanh(x_t)
        action = y_t * self.action_scale + self.action_bias
        log_prob = normal.log_prob(x_t)
        log_prob -= torch.log(self.action_scale * (1 - y_t.pow(2)) + 1e-6)
        log_prob = log_prob.sum(1, keepdim=True)
        mean = torch.tanh(mean) * self.action_scale + self.action_bias
        return action, log_prob, mean


class CleanRLSAC:
    """CleanRL sac_continuous_action.py's update with policy_frequency=1 and autotune=True."""

    def __init__(self, obs_dim, act_dim, gamma=0.99, tau=0.005, q_lr=1e-3, policy_lr=3e-4, device="cpu"):
        self.actor = CleanRLActor(obs_dim, act_dim).to(device)
        self.qf1, self.qf2 = SoftQNetwork(obs_dim, act_dim).to(device), SoftQNetwork(obs_dim, act_dim).to(device)
        self.qf1_target, self.qf2_target = copy.deepcopy(self.qf1), copy.deepcopy(self.qf2)
        self.q_optimizer = torch.optim.Adam(list(self.qf1.parameters()) + list(self.qf2.parameters()), lr=q_lr)
        self.actor_optimizer = torch.optim.Adam(list(self.actor.parameters()), lr=policy_lr)
        self.target_entropy = -float(act_dim)
        self.log_alpha = torch.zeros(1, requires_grad=True, device=device)
        self.alpha = self.log_alpha.exp().item()
        self.a_optimizer = torch.optim.Adam([self.log_alpha], lr=q_lr)
        self.gamma, self.tau = gamma, tau

    def update(self, batch):
        obs, actions, rewards, next_obs, dones = batch
        with torch.no_grad():
            next_state_actions, next_state_log_pi, _ = self.actor.get_action(next_obs)
            qf1_next_target = self.qf1_target(next_obs, next_state_actions)
            qf2_next_target = self.qf2_target(next_obs, next_state_actions)
            min_qf_next_target = torch.min(qf1_next_target, qf2_next_target) - self.alpha * next_state_log_pi
            next_q_value = rewards.flatten() + (1 - dones.flatten()) * self.gamma * (min_qf_next_target).view(-1)

        qf1_a_values = self.qf1(obs, actions).view(-1)
        qf2_a_values = self.qf2(obs, actions).view(-1)
        qf1_loss = F.mse_loss(qf1_a_values, next_q_value)
        qf2_loss = F.mse_loss(qf2_a_values, next_q_value)
        qf_loss = qf1_loss + qf2_loss
        self.q_optimizer.zero_grad()
        qf_loss.backward()
        self.q_optimizer.step()

        pi, log_pi, _ = self.actor.get_action(obs)
        qf1_pi = self.qf1(obs, pi)
        qf2_pi = self.qf2(obs, pi)
        min_qf_pi = torch.min(qf1_pi, qf2_pi)
        actor_loss = ((self.alpha * log_pi) - min_qf_pi).mean()
        self.actor_optimizer.zero_grad()
        actor_loss.backward()
        self.actor_optimizer.step()

        with torch.no_grad():
            _, log_pi, _ = self.actor.get_action(obs)
        alpha_loss = (-self.log_alpha.exp() * (log_pi + self.target_entropy)).mean()
        self.a_optimizer.zero_grad()
        alpha_loss.backward()
        self.a_optimizer.step()
        self.alpha = self.log_alpha.exp().item()

        for param, target_param in zip(self.qf1.parameters(), self.qf1_target.parameters()):
            target_param.data.copy_(self.tau * param.data + (1 - self.tau) * target_param.data)
        for param, target_param in zip(self.qf2.parameters(), self.qf2_target.parameters()):
            target_param.data.copy_(self.tau * param.data + (1 - self.tau) * target_param.data)


# ---------------------------------------------------------------------------------------------------- harness
def make_batches(n, batch_size, obs_dim, act_dim, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        (
            torch.randn(batch_size, obs_dim, generator=g),
            torch.rand(batch_size, act_dim, generator=g) * 2 - 1,
            torch.randn(batch_size, generator=g),
            torch.randn(batch_size, obs_dim, generator=g),
            (torch.rand(batch_size, generator=g) < 0.01).float(),
        )
        for _ in range(n)
    ]


def time_updates(update, batches, iters, clock=time.perf_counter, sync=lambda: None):
    n = len(batches)
    sync()
    start = clock()
    for i in range(iters):
        update(batches[i % n])
    sync()
    return (clock() - start) / iters * 1e3


def gemm_gflops(n, device, sync, seconds=1.0) -> float:
    """Achieved GFLOP/s of an n x n x n float32 matrix product here (the size of the hidden layers' products)."""
    x, w = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    out = torch.empty(n, n, device=device)
    for _ in range(10):
        torch.mm(x, w, out=out)
    sync()
    iters, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(10):
            torch.mm(x, w, out=out)
        iters += 10
        sync()
    return 2.0 * n**3 * iters / (time.perf_counter() - start) / 1e9


class ProductsReplay:
    """The matrix products a compiled update hands to the BLAS library, recorded from one call with the very tensors
    it used, and replayed alone: the time an update doing those products, and nothing else, takes here.

    Inductor's generated code calls ``torch._inductor.select_algorithm.extern_kernels.{mm,addmm,bmm,baddbmm}``
    (``out=`` variants, on strided views of its own buffers): those four are wrapped for one call to list their
    arguments. Products Inductor writes as its own kernels (a 6-wide or 1-wide one it turns into a reduction) are
    not BLAS calls and not in the list. A product-count floor (``update_flops`` at a lone 256^3 product's rate)
    leaves out that small and oddly shaped products run slower than 256^3 ones; the replay does not."""

    NAMES = ("mm", "addmm", "bmm", "baddbmm")

    def __init__(self, calls):
        self.calls = calls

    #: the ATen products a dispatcher-level recording lists (the native update's, an eager update's)
    ATEN = ("mm", "addmm", "bmm", "baddbmm")

    @classmethod
    def record(cls, update, *args, through: str = "inductor", **kwargs):
        """Runs ``update(*args, **kwargs)`` once with its products listed; returns ``(replay, what update returned)``.

        ``through="inductor"``: the BLAS calls of Inductor's generated code (empty when the update ran no compiled
        graph). ``"dispatcher"``: every ATen matrix product that reaches torch's dispatcher, from C++ too (the
        native update's), through a ``TorchDispatchMode``; torch.compile refuses to run under one, so not for a
        compiled graph."""
        if through == "dispatcher":
            return cls._record_dispatched(update, *args, **kwargs)
        from torch._inductor import select_algorithm

        namespace, calls = select_algorithm.extern_kernels, []
        originals = {name: getattr(namespace, name) for name in cls.NAMES}

        def recording(fn):
            def call(*args, **kwargs):
                calls.append((fn, args, kwargs))
                return fn(*args, **kwargs)
            return call

        try:
            for name, fn in originals.items():
                setattr(namespace, name, recording(fn))
            out = update(*args, **kwargs)
        finally:
            for name, fn in originals.items():
                setattr(namespace, name, fn)
        return cls(calls), out

    @classmethod
    def _record_dispatched(cls, update, *args, **kwargs):
        from torch.utils._python_dispatch import TorchDispatchMode

        products = {getattr(torch.ops.aten, name).default for name in cls.ATEN}
        products |= {getattr(torch.ops.aten, name).out for name in cls.ATEN}
        calls = []

        class Recording(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                out = func(*args, **kwargs)
                if func in products:
                    calls.append((func, args, {**kwargs, "out": out} if "out" not in kwargs else kwargs))
                return out

        with Recording():
            out = update(*args, **kwargs)
        # Replayed as the out= overload into the recorded output: the same product, without allocating.
        replays = [(getattr(torch.ops.aten, func.overloadpacket.__name__).out, a, k) for func, a, k in calls]
        return cls(replays), out

    @property
    def flops(self) -> float:
        """2 per multiply-add of the recorded products."""
        total = 0.0
        for _, args, kwargs in self.calls:
            left = [t for t in args if isinstance(t, torch.Tensor)][-2]  # (..., m, k) @ (..., k, n)
            total += 2.0 * kwargs["out"].numel() * left.shape[-1]
        return total

    @torch.no_grad()
    def __call__(self, batch=None):
        for fn, args, kwargs in self.calls:
            fn(*args, **kwargs)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--obs-dim", type=int, default=17)
    p.add_argument("--act-dim", type=int, default=6)
    p.add_argument("--burn-in", type=int, default=20, help="untimed updates per provider before timing")
    p.add_argument("--iters", type=int, default=30, help="updates per provider per round")
    p.add_argument("--repeats", type=int, default=9, help="interleaved rounds")
    p.add_argument("--no-eager", action="store_true", help="skip fastsac's eager update")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall: perf_counter; cpu: process CPU time, which leaves out time the process waited for a "
                        "core (use it with --threads 1 on a shared machine; with more threads it adds them up)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    batches = [tuple(t.to(device) for t in b) for b in make_batches(8, args.batch_size, args.obs_dim, args.act_dim)]
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)

    providers = {"cleanrl_eager": CleanRLSAC(args.obs_dim, args.act_dim, device=device).update}
    if not args.no_eager:
        providers["fastsac_eager"] = SACLearner(args.obs_dim, args.act_dim, LearnerConfig(update="eager"), device).update
    compiled = SACLearner(args.obs_dim, args.act_dim, LearnerConfig(update="compile"), device)
    start = time.perf_counter()
    compiled.update(batches[0])
    sync()
    compile_s = time.perf_counter() - start
    providers["fastsac_compiled"] = compiled.update
    default = SACLearner(args.obs_dim, args.act_dim, LearnerConfig(update="auto"), device)
    if default.runner.kind == "native":  # a CPU with the C++ extension: the default update is native
        providers["fastsac_native"] = default.update
    products = ProductsReplay.record(compiled.update, batches[1])[0] if device.type == "cpu" else ProductsReplay([])
    if products.calls:
        providers["products_only"] = products

    clock = time.perf_counter if args.clock == "wall" else time.process_time
    for update in providers.values():
        time_updates(update, batches, args.burn_in, sync=sync)
    rounds = {name: [] for name in providers}
    gemm = []
    for _ in range(args.repeats):
        for name, update in providers.items():
            rounds[name].append(time_updates(update, batches, args.iters, clock, sync))
        if device.type == "cpu":  # on a GPU a 256^3 product is launch-bound: no meaningful floor
            gemm.append(gemm_gflops(256, device, sync, seconds=0.2))

    print(f"torch {torch.__version__}, threads {args.threads}, batch {args.batch_size}, obs {args.obs_dim}, "
          f"act {args.act_dim}, 2x256; {args.repeats} rounds x {args.iters} updates, burn-in {args.burn_in}, "
          f"{args.clock} clock")
    print(f"fastsac compile (first update): {compile_s:.1f} s")
    base = statistics.median(rounds["cleanrl_eager"])
    print(f"{'provider':<18}{'median ms':>11}{'min ms':>9}{'max ms':>9}{'speedup':>9}")
    for name, values in rounds.items():
        med = statistics.median(values)
        print(f"{name:<18}{med:>11.2f}{min(values):>9.2f}{max(values):>9.2f}{base / med:>8.2f}x")
    result = {name: statistics.median(v) for name, v in rounds.items()}
    paired = lambda a, b: statistics.median(x / y for x, y in zip(rounds[a], rounds[b]))  # noqa: E731
    fastest = "fastsac_native" if "fastsac_native" in rounds else "fastsac_compiled"
    ratio = result["cleanrl_eager"] / result[fastest]
    print(f"fastsac's default compiled update ({fastest[8:]}) vs CleanRL-style eager: {ratio:.2f}x (target >= 2.5x on "
          f"CPU; per round, paired: {paired('cleanrl_eager', fastest):.2f}x)")
    if fastest == "fastsac_native":
        print(f"native vs torch.compile, per round: {paired('fastsac_compiled', 'fastsac_native'):.3f}x")
    if not gemm:
        return 0 if math.isfinite(ratio) else 1
    # The matrix-product floor: the update's unavoidable FLOPs at the rate a 256^3 product reaches here.
    flops, rate = update_flops(args.obs_dim, args.act_dim, (256, 256), args.batch_size), statistics.median(gemm)
    floor_ms = flops / (rate * 1e9) * 1e3
    print(f"matrix-product floor: {flops / 1e6:.0f} MFLOP per update at {rate:.1f} GFLOP/s (256^3 torch.mm) = "
          f"{floor_ms:.2f} ms; fastsac's default runs at {flops / result[fastest] / 1e6:.1f} GFLOP/s "
          f"({floor_ms / result[fastest]:.0%} of the floor's rate); the most any update could gain "
          f"over CleanRL-style eager here: {result['cleanrl_eager'] / floor_ms:.2f}x")
    if products.calls:
        alone = result["products_only"]
        print(f"the torch.compile update's own {len(products.calls)} BLAS products ({products.flops / 1e6:.0f} MFLOP), "
              f"replayed alone on its tensors: {alone:.2f} ms = {alone / result['fastsac_compiled']:.0%} of that "
              f"update and {alone / result[fastest]:.0%} of fastsac's default; the rest of it "
              f"({result[fastest] - alone:.2f} ms) is everything else. The most an update doing these products could "
              f"gain over CleanRL-style eager here: {result['cleanrl_eager'] / alone:.2f}x")
    else:
        print("products replay: no BLAS products recorded from the compiled update (it did not run compiled)")
    return 0 if math.isfinite(ratio) else 1


if __name__ == "__main__":
    sys.exit(main())
