"""End-to-end training throughput (env steps per second) on HalfCheetah-v5: fastsac vs baselines, side by side.

Providers, all of the same sizes (2x256 ReLU networks, batch 256, 1M replay capacity, UTD 1 = one gradient update
per env step, summed over envs):

* ``fastsac``        ``fastsac train --env HalfCheetah-v5`` with no flags: the shipped preset, the thread count
                     and the update decision the trainer makes for that full-length run (the rules of
                     ``fastsac.training.resolve``: all cores, the native update); only the step counts, evaluation, logging and
                     checkpoints are the benchmark's. EnvPool envs when installed. Steps/s from the run's
                     ``metrics.csv``.
* ``fastsac-eager``  the same with ``--update eager`` (shows what the fast update buys).
* ``baseline``       a plain CleanRL-style eager PyTorch SAC written below: two ``nn.Module`` critics,
                     ``torch.optim.Adam``, a NumPy replay buffer copied to the device per sample, a per-parameter
                     Polyak loop, gymnasium vector envs (``SyncVectorEnv``); ``--threads`` torch threads.
* ``sb3``            Stable-Baselines3 ``SAC`` (only when ``stable_baselines3`` imports), ``DummyVecEnv``,
                     ``train_freq=1``, ``gradient_steps=num_envs``; ``--threads`` torch threads.

Each provider first takes ``--learning-starts`` random steps, then ``--burn-in`` training steps (which include
compilation and warm-up) that are not timed, then ``--measure`` timed training steps; throughput = timed env steps
/ seconds (evaluation excluded). Configurations: ``1`` (1 env) and ``16`` (16 envs). Results are printed as a
table with ratios against ``baseline`` and ``sb3``; ``--json PATH`` also saves them. ``--repeats R`` runs every
provider R times, interleaved (round r runs each provider once, in turn), so that a change in the shared machine's
load hits all providers alike: the table then shows each provider's median and the median of the per-round ratios
(each ratio between runs minutes apart), with every round's ratio listed below it. ``--components`` adds one
more ``fastsac`` run with each call of its loop timed (act, env step, buffer add and sample, update, action log,
boundaries), printed per env step, with the time outside the update as a share of the update's; one timed
update's matrix products are recorded and replayed alone after the run, for the step an update doing only them
would take (bench_update.ProductsReplay), and the ratio products alone / update is printed (and saved as
``fastsac_products_over_update``): how much of the update is its matrix products.

    python bench/bench_sps.py                          # 1 and 16 envs, every provider available
    python bench/bench_sps.py --configs 1 --threads 2 --components --providers fastsac baseline sb3
    python bench/bench_sps.py --configs 1 --providers fastsac baseline --repeats 5   # on a shared machine
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import math
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "bench"):  # run from a checkout without installing; bench_update beside this file
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

ENV_ID = "HalfCheetah-v5"
HIDDEN = 256
LR = 3e-4
GAMMA = 0.99
TAU = 0.005
BATCH = 256
BUFFER = 1_000_000


@dataclass
class Setting:
    num_envs: int
    learning_starts: int
    burn_in: int
    measure: int
    device: str
    seed: int = 0

    @property
    def total(self) -> int:
        return self.learning_starts + self.burn_in + self.measure


# ------------------------------------------------------------------------------------------------------------
# fastsac: the real trainer, throughput read from its metrics.csv


def fastsac_config(s: Setting, update: str | None, out: Path):
    """The config of ``fastsac train --env HalfCheetah-v5`` with the benchmark's step counts; ``update=None``: the
    decision the trainer makes for the preset's own, full-length run."""
    from fastsac.training.config import config_from_dict
    from fastsac.training.presets import resolve_config
    from fastsac.training.resolve import decide_update

    preset, _ = resolve_config("auto", {"env_id": ENV_ID, "device": s.device})
    if update is None:
        update = decide_update(preset, torch.device(s.device), 17, 6, False).backend
    start = s.learning_starts + s.burn_in
    return config_from_dict({
        "num_envs": s.num_envs, "total_steps": s.total, "seed": s.seed, "update": update, "out": str(out),
        "buffer_size": BUFFER, "learning_starts": s.learning_starts, "eval_every": 0, "eval_episodes": 1,
        "log_every": math.gcd(start, s.measure), "checkpoint_every": 0, "progress": False, "tensorboard": False,
    }, preset, where="bench_sps")


def run_fastsac(s: Setting, update: str | None, workdir: Path) -> float:
    from fastsac.training import train

    out = workdir / f"fastsac-{update}-{s.num_envs}"
    shutil.rmtree(out, ignore_errors=True)
    from train_metrics import steps_per_second

    train(fastsac_config(s, update, out))
    return steps_per_second(out, after=s.learning_starts + s.burn_in)


def fastsac_components(s: Setting, workdir: Path) -> dict[str, float]:
    """ms per env step in each call of the default fastsac run's loop, timed after learning starts + burn-in.
    Wrapping each call costs about a microsecond; ``other`` is the rest of the step (the loop's own Python).
    Evaluation and logging (the loop's boundaries) are left out, as the trainer's steps/s leaves them out. Where an
    env step is followed by one update (1 env), that update also computes the next actions: ``act`` then runs
    only once and its cost is inside ``update``."""
    import functools

    from bench_update import ProductsReplay

    from fastsac.agents.learner import Learner
    from fastsac.agents.sac import SACLearner
    from fastsac.data.buffer import ReplayBuffer
    from fastsac.data.envs import VecEnv
    from fastsac.training import session as S
    from fastsac.training import train

    totals: dict[str, float] = {}
    state = {"on": False, "steps": 0, "t0": 0.0}
    patched = []

    def wrap(cls, name, key):
        f = getattr(cls, name)

        @functools.wraps(f)
        def timed(*a, **k):
            if not state["on"]:
                return f(*a, **k)
            t = time.perf_counter()
            try:
                return f(*a, **k)
            finally:
                totals[key] = totals.get(key, 0.0) + time.perf_counter() - t

        setattr(cls, name, timed)
        patched.append((cls, name, f))

    replay = []  # the BLAS products of one timed update (bench_update.ProductsReplay), timed alone after the run
    update_fn = Learner.update

    def recording_update(self, *a, **k):
        if state["on"] and not replay:  # the first timed update (compiled by then, if it compiles)
            through = "inductor" if self.runner.kind == "compile" else "dispatcher"  # native (or eager): ATen's
            recorded, out = ProductsReplay.record(update_fn, self, *a, through=through, **k)
            replay.append(recorded)
            return out
        return update_fn(self, *a, **k)

    Learner.update = recording_update
    patched.append((Learner, "update", update_fn))
    wrap(VecEnv, "step", "env step (wrapper + simulator)")
    wrap(ReplayBuffer, "add", "buffer add")
    wrap(ReplayBuffer, "sample", "buffer sample")
    wrap(Learner, "update", "update")
    wrap(S.ActionLog, "append", "action log")
    wrap(SACLearner, "act", "act")
    loop = S.Session._loop

    def timed_loop(self, stop):
        """The session's loop, with the timing switched on at the first env step after learning starts + burn-in."""
        start = s.learning_starts + s.burn_in
        timed_step = VecEnv.step

        def switching(env, action):  # the training env only: the final evaluation's env steps in a boundary
            if not state["on"] and env is self.env and self.step + env.num_envs > start:
                state["on"], state["t0"], state["first"] = True, time.perf_counter(), self.step
            return timed_step(env, action)

        VecEnv.step = switching
        try:
            loop(self, stop)
        finally:
            VecEnv.step = timed_step
            state["seconds"] = time.perf_counter() - state["t0"] - state.get("paused", 0.0)
            state["steps"] = self.step - state["first"]

    boundaries = S.Session._boundaries

    def untimed_boundaries(self, before):
        """Evaluation, log rows and checkpoints are not training time (the trainer's sps leaves them out too)."""
        on, state["on"] = state["on"], False
        t = time.perf_counter()
        try:
            return boundaries(self, before)
        finally:
            state["paused"] = state.get("paused", 0.0) + (time.perf_counter() - t if on else 0.0)
            state["on"] = on

    S.Session._loop = timed_loop
    S.Session._boundaries = untimed_boundaries
    try:
        out = workdir / f"fastsac-components-{s.num_envs}"
        shutil.rmtree(out, ignore_errors=True)
        train(fastsac_config(s, None, out))
    finally:
        S.Session._loop = loop
        S.Session._boundaries = boundaries
        for cls, name, f in patched:
            setattr(cls, name, f)
    steps = state["steps"]
    per_step = {k: v / steps * 1e3 for k, v in totals.items()}
    per_step["other (loop)"] = state["seconds"] / steps * 1e3 - sum(per_step.values())
    per_step["total"] = state["seconds"] / steps * 1e3
    if replay and replay[0].calls:  # UTD 1: one update per env step
        per_step["update's BLAS products alone"] = _time_replay(replay[0])
    return per_step


def _time_replay(replay, rounds: int = 7, iters: int = 30) -> float:
    """ms per call of a ``ProductsReplay``, the median of ``rounds`` timings of ``iters`` back-to-back calls."""
    replay()
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(iters):
            replay()
        times.append((time.perf_counter() - t) / iters * 1e3)
    return statistics.median(times)


# ------------------------------------------------------------------------------------------------------------
# A plain eager PyTorch SAC loop, CleanRL style (sac_continuous_action.py), for reference


class _QNet(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(obs_dim + act_dim, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
                                 nn.Linear(HIDDEN, 1))  # fmt: skip

    def forward(self, obs, act):
        return self.net(torch.cat([obs, act], 1))


class _Actor(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, low: np.ndarray, high: np.ndarray):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(obs_dim, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU())
        self.mean = nn.Linear(HIDDEN, act_dim)
        self.log_std = nn.Linear(HIDDEN, act_dim)
        self.register_buffer("scale", torch.tensor((high - low) / 2.0, dtype=torch.float32))
        self.register_buffer("bias", torch.tensor((high + low) / 2.0, dtype=torch.float32))

    def get_action(self, obs):
        h = self.trunk(obs)
        mean, log_std = self.mean(h), torch.tanh(self.log_std(h))
        log_std = -5 + 0.5 * (2 - (-5)) * (log_std + 1)
        normal = torch.distributions.Normal(mean, log_std.exp())
        u = normal.rsample()
        y = torch.tanh(u)
        action = y * self.scale + self.bias
        log_prob = normal.log_prob(u) - torch.log(self.scale * (1 - y.pow(2)) + 1e-6)
        return action, log_prob.sum(1, keepdim=True)


def run_baseline(s: Setting) -> float:
    import gymnasium
    from gymnasium.vector import AutoresetMode

    dev = torch.device(s.device)
    torch.manual_seed(s.seed)
    envs = gymnasium.make_vec(ENV_ID, num_envs=s.num_envs, vectorization_mode="sync",
                              vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP})  # fmt: skip
    obs_dim = envs.single_observation_space.shape[0]
    act_dim = envs.single_action_space.shape[0]
    low, high = envs.single_action_space.low, envs.single_action_space.high
    actor = _Actor(obs_dim, act_dim, low, high).to(dev)
    qf1, qf2 = _QNet(obs_dim, act_dim).to(dev), _QNet(obs_dim, act_dim).to(dev)
    qf1_t, qf2_t = _QNet(obs_dim, act_dim).to(dev), _QNet(obs_dim, act_dim).to(dev)
    qf1_t.load_state_dict(qf1.state_dict())
    qf2_t.load_state_dict(qf2.state_dict())
    q_opt = torch.optim.Adam(list(qf1.parameters()) + list(qf2.parameters()), lr=LR)
    a_opt = torch.optim.Adam(actor.parameters(), lr=LR)
    log_alpha = torch.zeros(1, requires_grad=True, device=dev)
    alpha_opt = torch.optim.Adam([log_alpha], lr=LR)
    target_entropy = -float(act_dim)
    cap = min(BUFFER, s.total)
    rb_obs = np.zeros((cap, obs_dim), np.float32)
    rb_next = np.zeros((cap, obs_dim), np.float32)
    rb_act = np.zeros((cap, act_dim), np.float32)
    rb_rew = np.zeros(cap, np.float32)
    rb_done = np.zeros(cap, np.float32)
    pos = size = 0
    rng = np.random.default_rng(s.seed)

    obs, _ = envs.reset(seed=s.seed)
    step, t_start = 0, None
    while step < s.total:
        if step < s.learning_starts:
            actions = envs.action_space.sample()
        else:
            with torch.no_grad():
                actions, _ = actor.get_action(torch.as_tensor(obs, dtype=torch.float32, device=dev))
            actions = actions.cpu().numpy()
        next_obs, rewards, terminations, truncations, infos = envs.step(actions)
        real_next = next_obs.copy()
        if "final_obs" in infos:
            for i in np.flatnonzero(infos["_final_obs"]):
                real_next[i] = infos["final_obs"][i]
        for i in range(s.num_envs):
            rb_obs[pos], rb_next[pos], rb_act[pos] = obs[i], real_next[i], actions[i]
            rb_rew[pos], rb_done[pos] = rewards[i], terminations[i]
            pos = (pos + 1) % cap
            size = min(size + 1, cap)
        obs = next_obs
        step += s.num_envs
        if step >= s.learning_starts:
            for _ in range(s.num_envs):
                idx = rng.integers(0, size, BATCH)
                b_obs = torch.as_tensor(rb_obs[idx], device=dev)
                b_next = torch.as_tensor(rb_next[idx], device=dev)
                b_act = torch.as_tensor(rb_act[idx], device=dev)
                b_rew = torch.as_tensor(rb_rew[idx], device=dev)
                b_done = torch.as_tensor(rb_done[idx], device=dev)
                alpha = log_alpha.exp().item()
                with torch.no_grad():
                    next_a, next_lp = actor.get_action(b_next)
                    min_q = torch.min(qf1_t(b_next, next_a), qf2_t(b_next, next_a)) - alpha * next_lp
                    target = b_rew + (1 - b_done) * GAMMA * min_q.view(-1)
                q_loss = nn.functional.mse_loss(qf1(b_obs, b_act).view(-1), target) + nn.functional.mse_loss(
                    qf2(b_obs, b_act).view(-1), target
                )
                q_opt.zero_grad()
                q_loss.backward()
                q_opt.step()
                pi, log_pi = actor.get_action(b_obs)
                actor_loss = (alpha * log_pi - torch.min(qf1(b_obs, pi), qf2(b_obs, pi))).mean()
                a_opt.zero_grad()
                actor_loss.backward()
                a_opt.step()
                with torch.no_grad():
                    _, log_pi = actor.get_action(b_obs)
                alpha_loss = (-log_alpha.exp() * (log_pi + target_entropy)).mean()
                alpha_opt.zero_grad()
                alpha_loss.backward()
                alpha_opt.step()
                with torch.no_grad():
                    for p, tp in zip(qf1.parameters(), qf1_t.parameters()):
                        tp.data.copy_(TAU * p.data + (1 - TAU) * tp.data)
                    for p, tp in zip(qf2.parameters(), qf2_t.parameters()):
                        tp.data.copy_(TAU * p.data + (1 - TAU) * tp.data)
        if t_start is None and step >= s.learning_starts + s.burn_in:
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t_start, step_start = time.perf_counter(), step
    if dev.type == "cuda":
        torch.cuda.synchronize()
    envs.close()
    return (step - step_start) / (time.perf_counter() - t_start)


# ------------------------------------------------------------------------------------------------------------
# Stable-Baselines3


def run_sb3(s: Setting) -> float:
    import gymnasium
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import DummyVecEnv

    class Timer(BaseCallback):
        def __init__(self):
            super().__init__()
            self.start: tuple[int, float] | None = None

        def _on_step(self) -> bool:
            if self.start is None and self.num_timesteps >= s.learning_starts + s.burn_in:
                self.start = (self.num_timesteps, time.perf_counter())
            return True

    env = DummyVecEnv([lambda: gymnasium.make(ENV_ID) for _ in range(s.num_envs)])
    model = SAC("MlpPolicy", env, learning_rate=LR, buffer_size=min(BUFFER, s.total), learning_starts=s.learning_starts,
                batch_size=BATCH, tau=TAU, gamma=GAMMA, train_freq=1, gradient_steps=s.num_envs, ent_coef="auto",
                policy_kwargs={"net_arch": [HIDDEN, HIDDEN]}, device=s.device, seed=s.seed, verbose=0)  # fmt: skip
    timer = Timer()
    model.learn(total_timesteps=s.total, callback=timer, progress_bar=False)
    end = (model.num_timesteps, time.perf_counter())
    env.close()
    return (end[0] - timer.start[0]) / (end[1] - timer.start[1])


# ------------------------------------------------------------------------------------------------------------


def _git_revision() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()  # fmt: skip
    except Exception:
        return "unknown"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", type=int, default=[1, 16], help="numbers of envs to measure (default: 1 16)")
    p.add_argument("--providers", nargs="+", default=["fastsac", "fastsac-eager", "baseline", "sb3"],
                   choices=["fastsac", "fastsac-eager", "baseline", "sb3"], help="what to measure")  # fmt: skip
    p.add_argument("--learning-starts", type=int, default=1024, help="random steps before updates (default: 1024)")
    p.add_argument("--burn-in", type=int, default=256, help="untimed training steps (compilation, warm-up)")
    p.add_argument("--measure", type=int, default=1024, help="timed training steps (default: 1024)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=2,
                   help="torch threads of the baseline and SB3 (default: 2, torch's default on this 2-core machine); "
                        "fastsac decides its own (fastsac.training.resolve.decide_threads)")
    p.add_argument("--repeats", type=int, default=1,
                   help="interleaved rounds of every provider per config (default 1); medians and per-round ratios")
    p.add_argument("--components", action="store_true", help="also time each call of fastsac's loop")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    providers = list(args.providers)
    if "sb3" in providers and importlib.util.find_spec("stable_baselines3") is None:
        print("stable_baselines3 is not installed: skipping sb3")
        providers.remove("sb3")
    for n in args.configs:
        for name, value in (("learning-starts", args.learning_starts), ("burn-in", args.burn_in), ("measure", args.measure)):
            if value % n or value <= 0:
                p.error(f"--{name} ({value}) must be a positive multiple of every config's number of envs ({n})")

    from fastsac.data import envs as fenvs

    if args.repeats < 1:
        p.error(f"--repeats must be >= 1, got {args.repeats}")
    results: dict[int, dict[str, list[float]]] = {}  # steps/s of every round
    components: dict[int, dict[str, float]] = {}
    from fastsac.training.resolve import decide_threads

    cfg_threads = decide_threads(fastsac_config(Setting(1, 1, 1, 1, args.device), None, Path("unused")), 17, 6,
                                 False).threads
    with tempfile.TemporaryDirectory(prefix="bench_sps_") as tmp:
        for n in args.configs:
            s = Setting(n, args.learning_starts, args.burn_in, args.measure, args.device)
            results[n] = {provider: [] for provider in providers}
            for r in range(args.repeats):
                for provider in providers:
                    t0 = time.perf_counter()
                    if provider == "fastsac":
                        sps = run_fastsac(s, None, Path(tmp))
                    elif provider == "fastsac-eager":
                        sps = run_fastsac(s, "eager", Path(tmp))
                    elif provider == "baseline":
                        sps = run_baseline(s)
                    else:
                        sps = run_sb3(s)
                    results[n][provider].append(sps)
                    where = f" round {r + 1}/{args.repeats}" if args.repeats > 1 else ""
                    print(f"  {n:>3} env(s)  {provider:<14} {sps:9.1f} steps/s   ({time.perf_counter() - t0:.0f} s)"
                          f"{where}", flush=True)
            if args.components:
                parts = fastsac_components(s, Path(tmp))
                components[n] = parts
                print(f"  {n:>3} env(s)  fastsac, ms per env step: " +
                      ", ".join(f"{k} {v:.3f}" for k, v in parts.items()), flush=True)

    backend = "envpool" if fenvs.envpool_available() else "gymnasium"
    print()
    print(f"{ENV_ID}, UTD 1, batch {BATCH}, 2x{HIDDEN}, device {args.device}, torch {torch.__version__}, "
          f"baseline/SB3 {args.threads} thread(s), fastsac {cfg_threads} (its rule), fastsac envs: {backend}; "
          f"{args.measure} timed steps after {args.burn_in} "
          f"burn-in steps and {args.learning_starts} random steps")  # fmt: skip
    header = f"{'envs':>4}  " + "".join(f"{p:>14}" for p in providers)
    ratios = [(a, b) for a in ("fastsac", "fastsac-eager") for b in ("baseline", "sb3") if a in providers and b in providers]
    header += "".join(f"{a + '/' + b:>24}" for a, b in ratios)
    print(header)
    def paired(row, a, b):  # the per-round ratios a / b
        return [x / y for x, y in zip(row[a], row[b])]

    for n, row in results.items():
        line = f"{n:>4}  " + "".join(f"{statistics.median(row[p]):14.1f}" for p in providers)
        line += "".join(f"{statistics.median(paired(row, a, b)):23.2f}x" for a, b in ratios)
        print(line)
    if args.repeats > 1:
        print(f"(medians of {args.repeats} interleaved rounds; each ratio is the median of the per-round ratios)")
        for n, row in results.items():
            for a, b in ratios:
                rounds = ", ".join(f"{x:.2f}x" for x in paired(row, a, b))
                print(f"{n:>4} env(s) {a}/{b} per round: {rounds}")
    for n, parts in components.items():
        outside = parts["total"] - parts["update"]
        print(f"{n:>4} env(s): fastsac step {parts['total']:.3f} ms = update {parts['update']:.3f} ms + "
              f"{outside:.3f} ms outside it ({outside / parts['update']:.0%} of the update; target <= 15%)")
        products = parts.get("update's BLAS products alone")
        if products is None:
            continue
        bound = f"{products + outside:.3f} ms a step"
        if "baseline" in results[n]:  # the plain loop's ms per env step, median of its rounds
            plain = 1e3 / statistics.median(results[n]["baseline"])
            bound += f": at most {plain / (products + outside):.2f}x the plain loop's {plain:.3f} ms"
        print(f"{n:>4} env(s): an update doing only its BLAS products ({products:.3f} ms, replayed alone after the "
              f"run) in this loop: {bound}")
        print(f"{n:>4} env(s): products alone / update: {products / parts['update']:.2f} (the update's work "
              f"besides its matrix products: {parts['update'] - products:.3f} ms a step)")
    if args.json is not None:
        args.json.write_text(json.dumps({
            "env": ENV_ID, "device": args.device, "torch": torch.__version__, "threads": args.threads,
            "python": platform.python_version(), "machine": platform.machine(), "git": _git_revision(),
            "date": datetime.datetime.now().isoformat(timespec="seconds"), "learning_starts": args.learning_starts,
            "burn_in": args.burn_in, "measure": args.measure, "fastsac_env_backend": backend,
            "repeats": args.repeats,
            "steps_per_second": {str(n): {p: statistics.median(v) for p, v in r.items()} for n, r in results.items()},
            "steps_per_second_rounds": {str(n): r for n, r in results.items()},
            "fastsac_ms_per_step": {str(n): c for n, c in components.items()},
            "fastsac_products_over_update": {str(n): c["update's BLAS products alone"] / c["update"]
                                             for n, c in components.items() if "update's BLAS products alone" in c},
        }, indent=2) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
