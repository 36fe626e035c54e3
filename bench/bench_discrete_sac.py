"""Discrete SAC on a CPU: fastsac against a plain CleanRL-style PyTorch loop, end to end, in one run.

No maintained library hosts discrete SAC for vector observations (Stable-Baselines3 and SBX have none; CleanRL's
``sac_atari.py`` is the common reference, for pixels), so the peer is CleanRL's discrete SAC written for vector
observations at the sizes of fastsac's ``CartPole-v1`` preset: actor and two critics 64x64 ReLU, batch 128, UTD 1,
Adam 1e-3 (alpha 3e-4), Polyak 0.005 after every update, actor and alpha every update, target entropy 0.98 log|A|,
gamma 0.99; ``gymnasium`` CartPole-v1, one env.

Providers, each in its own process pinned to the first N cores with N threads (``pinned.run_pinned``), rounds
interleaved and alternating:

* ``fastsac``        the trainer with the ``CartPole-v1`` preset and the update its rule picks for the preset's own
                     full-length run (``decide_update``); steps/s from its ``metrics.csv``;
* ``fastsac-eager``  the same with ``update="eager"`` (what the compiled update buys);
* ``plain``          :func:`run_plain`: two ``nn.Sequential`` critics and their targets, ``torch.optim.Adam`` each,
                     a NumPy replay buffer copied into tensors per sample, a per-parameter Polyak loop, the math of
                     ``DiscreteSACLearner`` (exact expectations over the actions).

Each takes ``--learning-starts`` random steps, ``--burn-in`` untimed training steps (compile, first-call check,
warm-up), then ``--measure`` timed steps; the ratio fastsac / plain is taken per round.

    python bench/bench_discrete_sac.py --threads 1 2 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "bench"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from pinned import run_pinned  # noqa: E402

ENV_ID = PRESET = "CartPole-v1"
HIDDEN, BATCH, GAMMA, TAU, LR, ALPHA_LR, ENTROPY_SCALE = 64, 128, 0.99, 0.005, 1e-3, 3e-4, 0.98
RESULT = "BENCH_DISCRETE_SAC "  # a child's result line: this prefix, then JSON


def run_plain(args) -> float:
    """CleanRL's discrete SAC (``sac_atari.py``) on vector observations; steps/s over the timed steps."""
    import gymnasium
    import numpy as np
    import torch
    from torch import nn
    from torch.nn import functional as F

    torch.manual_seed(0)
    env = gymnasium.make(ENV_ID)
    obs_dim, n = env.observation_space.shape[0], env.action_space.n

    def net():
        return nn.Sequential(nn.Linear(obs_dim, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
                             nn.Linear(HIDDEN, n))

    actor, qf1, qf2 = net(), net(), net()
    qf1_target, qf2_target = net(), net()
    qf1_target.load_state_dict(qf1.state_dict())
    qf2_target.load_state_dict(qf2.state_dict())
    q_optimizer = torch.optim.Adam(list(qf1.parameters()) + list(qf2.parameters()), lr=LR)
    actor_optimizer = torch.optim.Adam(actor.parameters(), lr=LR)
    log_alpha = torch.zeros(1, requires_grad=True)
    a_optimizer = torch.optim.Adam([log_alpha], lr=ALPHA_LR)
    target_entropy = ENTROPY_SCALE * math.log(n)

    def policy(x):
        logits = actor(x)
        return F.softmax(logits, dim=-1), F.log_softmax(logits, dim=-1)

    total = args.learning_starts + args.burn_in + args.measure
    obs_buf = np.zeros((total, obs_dim), np.float32)
    next_buf = np.zeros((total, obs_dim), np.float32)
    act_buf = np.zeros((total, 1), np.int64)
    rew_buf = np.zeros((total, 1), np.float32)
    term_buf = np.zeros((total, 1), np.float32)
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    start = None
    for step in range(total):
        if step == args.learning_starts + args.burn_in:
            start = time.perf_counter()
        if step < args.learning_starts:
            action = env.action_space.sample()
        else:
            with torch.no_grad():
                probs, _ = policy(torch.as_tensor(obs).unsqueeze(0))
                action = int(torch.multinomial(probs, 1).item())
        next_obs, reward, terminated, truncated, _ = env.step(action)
        obs_buf[step], next_buf[step], act_buf[step] = obs, next_obs, action
        rew_buf[step], term_buf[step] = reward, float(terminated)
        obs = env.reset()[0] if terminated or truncated else next_obs
        if step < args.learning_starts:
            continue
        idx = rng.integers(0, step + 1, BATCH)
        b_obs, b_next = torch.as_tensor(obs_buf[idx]), torch.as_tensor(next_buf[idx])
        b_act, b_rew, b_term = torch.as_tensor(act_buf[idx]), torch.as_tensor(rew_buf[idx]), torch.as_tensor(
            term_buf[idx])
        alpha = log_alpha.exp().item()
        with torch.no_grad():
            next_probs, next_log_pi = policy(b_next)
            min_next = torch.min(qf1_target(b_next), qf2_target(b_next))
            next_v = (next_probs * (min_next - alpha * next_log_pi)).sum(dim=1, keepdim=True)
            target = b_rew + GAMMA * (1.0 - b_term) * next_v
        qf_loss = F.mse_loss(qf1(b_obs).gather(1, b_act), target) + F.mse_loss(qf2(b_obs).gather(1, b_act), target)
        q_optimizer.zero_grad()
        qf_loss.backward()
        q_optimizer.step()

        probs, log_pi = policy(b_obs)
        with torch.no_grad():
            min_q = torch.min(qf1(b_obs), qf2(b_obs))
        actor_loss = (probs * (alpha * log_pi - min_q)).sum(dim=1).mean()
        actor_optimizer.zero_grad()
        actor_loss.backward()
        actor_optimizer.step()
        entropy = -(probs.detach() * log_pi.detach()).sum(dim=1).mean()
        alpha_loss = log_alpha * (entropy - target_entropy)
        a_optimizer.zero_grad()
        alpha_loss.backward()
        a_optimizer.step()

        with torch.no_grad():
            for net_, target_net in ((qf1, qf1_target), (qf2, qf2_target)):
                for p, tp in zip(net_.parameters(), target_net.parameters()):
                    tp.data.copy_(TAU * p.data + (1 - TAU) * tp.data)
    return args.measure / (time.perf_counter() - start)


def run_fastsac(args, update: str | None) -> tuple[float, str]:
    """The trainer with the CartPole-v1 preset; (steps/s over the timed steps, the update that ran)."""
    from train_metrics import timed_preset_run

    return timed_preset_run(PRESET, args.learning_starts, args.burn_in, args.measure, args.threads[0], update,
                            (4, 2, True), env_backend="gymnasium")


def run_child(provider: str, threads: int, args) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--provider", provider, "--threads", str(threads),
           "--learning-starts", str(args.learning_starts), "--burn-in", str(args.burn_in),
           "--measure", str(args.measure)]
    done = run_pinned(cmd, threads, {"PYTHONPATH": str(ROOT)})
    for line in done.stdout.splitlines():
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT):])
    raise RuntimeError(f"{provider} at {threads} thread(s) failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def ratios(rounds: dict[str, list[float]], provider: str) -> list[float]:
    """``provider``'s steps/s over the plain loop's, per round."""
    return [a / b for a, b in zip(rounds[provider], rounds["plain"])]


def e2e(args) -> dict:
    results = {}
    for threads in args.threads:
        rounds: dict[str, list[float]] = {name: [] for name in args.providers}
        updates: dict[str, str] = {}
        for r in range(args.rounds):
            order = list(args.providers) if r % 2 == 0 else list(reversed(args.providers))
            for name in order:
                got = run_child(name, threads, args)
                rounds[name].append(got["sps"])
                if "update" in got:
                    updates[name] = got["update"]
                print(f"  threads {threads} round {r + 1}: {name} {got['sps']:.1f} steps/s", flush=True)
        results[threads] = {"rounds": rounds, "updates": updates,
                            "ratios": {n: ratios(rounds, n) for n in rounds if n != "plain"}}
        med = {name: statistics.median(v) for name, v in rounds.items()}
        line = ", ".join(f"{n} {v:.1f}" for n, v in med.items())
        for n, rs in results[threads]["ratios"].items():
            line += f"; {n} / plain per round {', '.join(f'{x:.2f}x' for x in rs)} (median {statistics.median(rs):.2f}x)"
        print(f"threads {threads}: {line} steps/s; updates: {updates}", flush=True)
    return results


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rounds", type=int, default=3, help="rounds per thread count (interleaved)")
    p.add_argument("--providers", nargs="+", default=["plain", "fastsac", "fastsac-eager"],
                   choices=("plain", "fastsac", "fastsac-eager"))
    p.add_argument("--learning-starts", type=int, default=1000)
    p.add_argument("--burn-in", type=int, default=500)
    p.add_argument("--measure", type=int, default=3000)
    p.add_argument("--json", help="save the results here")
    p.add_argument("--provider", help=argparse.SUPPRESS)  # a child process: one provider, prints its RESULT line
    args = p.parse_args(argv)
    if "plain" not in args.providers and not args.provider:
        p.error("--providers must include plain: the ratios are against it")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.provider:
        import torch

        torch.set_num_threads(args.threads[0])
        if args.provider == "plain":
            got = {"sps": run_plain(args)}
        else:
            sps, update = run_fastsac(args, "eager" if args.provider == "fastsac-eager" else None)
            got = {"sps": sps, "update": update}
        print(RESULT + json.dumps(got))
        return 0
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    print(f"bench_discrete_sac: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, git {rev.strip()}, "
          f"learning starts {args.learning_starts}, burn-in {args.burn_in}, measure {args.measure}", flush=True)
    out = {"e2e": e2e(args)}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
