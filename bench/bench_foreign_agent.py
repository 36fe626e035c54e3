"""Imported into someone else's agent, does the fused op make it slower? A hand-written single-file eager SAC
(``examples/sac_pendulum.py``) in two versions, side by side in one run:

- ``plain``:   its own math: the squashed Gaussian sample and exact log-prob written out (softplus form of the
               tanh Jacobian, bounded log-std), and its own temperature (a log_alpha tensor and ``torch.optim.Adam``);
- ``fastsac``: the same loop with ``fastsac.ops.squashed_gaussian[_with_alpha_loss]`` and
               ``fastsac.entropy.EntropyModule`` (the example as shipped).

Same seeds, so both draw the same noise and batches. Steps/s are measured over the updates (one per env step)
after learning starts, in interleaved repeats (plain, fastsac, plain, ...), and reported as medians and their
ratio (target: fastsac >= 0.98x). Parity: over the first ``--parity-updates`` updates of one seed, the two
versions' critic and actor losses are compared step by step (the same math in other operations: they may part
only by float rounding).

    python bench/bench_foreign_agent.py                        # Pendulum-v1, 2x256, 1 thread
    python bench/bench_foreign_agent.py --env HalfCheetah-v5 --repeats 5
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
_spec = importlib.util.spec_from_file_location("sac_example", ROOT / "examples" / "sac_pendulum.py")
example = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(example)

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class PlainMath:
    """The example's PolicyMath written by hand, as an agent without fastsac has it."""

    def __init__(self, act_dim, lr, scale, bias, bounds):
        self.scale, self.bias, self.bounds = scale, bias, bounds
        self.log_alpha = torch.zeros((), requires_grad=True)
        self.target = -float(act_dim)
        self.opt = torch.optim.Adam([self.log_alpha], lr=lr)

    @property
    def alpha(self):
        return self.log_alpha.exp().detach()

    def sample(self, mean, raw):
        lo, hi = self.bounds
        log_std = lo + 0.5 * (hi - lo) * (torch.tanh(raw) + 1)
        noise = torch.randn_like(mean)
        u = mean + log_std.exp() * noise
        action = torch.tanh(u) * self.scale + self.bias
        log_prob = (-0.5 * noise.square() - log_std - LOG_SQRT_2PI
                    - 2 * (math.log(2) - u - F.softplus(-2 * u))).sum(-1) - torch.log(self.scale).sum()
        return action, log_prob

    def sample_with_alpha_loss(self, mean, raw):
        action, log_prob = self.sample(mean, raw)
        return action, log_prob, -(self.log_alpha * (log_prob.detach() + self.target)).mean()

    def alpha_step(self, alpha_loss):
        self.opt.zero_grad()
        alpha_loss.backward()
        self.opt.step()

    def deterministic(self, mean):
        return torch.tanh(mean) * self.scale + self.bias


VERSIONS = {"plain": PlainMath, "fastsac": example.FastsacMath}


def steps_per_second(version, env_id, learning_starts, measure, seed) -> float:
    times = []
    example.train(env_id, learning_starts + measure, seed, learning_starts, eval_every=10**9, eval_episodes=1,
                  log=lambda _: None, math=VERSIONS[version],
                  on_update=lambda step, c, a: times.append(time.perf_counter()))
    return (len(times) - 1) / (times[-1] - times[0])


def losses(version, env_id, learning_starts, updates, seed):
    out = []
    example.train(env_id, learning_starts + updates, seed, learning_starts, eval_every=10**9, eval_episodes=1,
                  log=lambda _: None, math=VERSIONS[version],
                  on_update=lambda step, c, a: out.append((float(c), float(a))))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="Pendulum-v1")
    p.add_argument("--learning-starts", type=int, default=500)
    p.add_argument("--measure", type=int, default=600, help="timed steps (one update each) per run")
    p.add_argument("--repeats", type=int, default=5, help="interleaved runs per version")
    p.add_argument("--parity-updates", type=int, default=300)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"{args.env}, 2x256, batch 256, 1 update per step, {args.threads} thread(s), torch {torch.__version__}; "
          f"{args.repeats} interleaved runs of {args.measure} timed steps per version")
    sps = {v: [] for v in VERSIONS}
    for r in range(args.repeats):
        for v in (VERSIONS if r % 2 == 0 else reversed(list(VERSIONS))):
            sps[v].append(steps_per_second(v, args.env, args.learning_starts, args.measure, seed=r))
    med = {v: statistics.median(x) for v, x in sps.items()}
    for v, x in sps.items():
        print(f"{v:8s} median {med[v]:7.1f} steps/s   runs: {', '.join(f'{s:.1f}' for s in x)}")
    ratio = med["fastsac"] / med["plain"]
    print(f"fastsac / plain: {ratio:.3f}x (target >= 0.98x)")
    a = losses("plain", args.env, args.learning_starts, args.parity_updates, seed=0)
    b = losses("fastsac", args.env, args.learning_starts, args.parity_updates, seed=0)
    rel = [max(abs(x - y) / max(abs(x), 1e-3) for x, y in zip(pa, pb)) for pa, pb in zip(a, b)]
    first_off = next((i for i, r in enumerate(rel) if r > 1e-3), None)
    print(f"parity over {len(rel)} updates (seed 0): largest relative difference of the critic/actor losses "
          f"{max(rel):.2e}; first update where they part by more than 1e-3: "
          f"{'none' if first_off is None else first_off}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
