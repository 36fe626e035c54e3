"""FlashSAC's own PyTorch update (Holiday-Robot/FlashSAC, MIT) beside fastsac's, on this CPU, at its MuJoCo sizes.

Theirs, unmodified: the repository is exported (``git archive HEAD``) from ``--flashsac-src`` (a checkout, a bare
repository or an exported tree) or from the mirror ``--flashsac-mirror`` into ``--src-cache``/<commit>, and
``flash_rl.agents.flashSAC.agent.FlashSACAgent`` is imported from there. Its package imports need two things the
system Python lacks: ``omegaconf`` (``flash_rl/agents/__init__.py``) and ``jax`` (``flash_rl/types.py``:
``import jax.numpy``, for a type alias only); hydra, wandb and the rest of its pyproject are for train.py and its
loggers, not imported here. So their side runs in a venv over the system site-packages (torch 2.13.0+cpu,
gymnasium, mujoco reused; pip cannot replace torch because the pin rides in the same command)::

    python -m venv --system-site-packages /tmp/flashsac_venv
    /tmp/flashsac_venv/bin/pip install omegaconf jax jaxlib torch==2.13.0

Their config is composed as train.py composes it (``configs/flashSAC_base.yaml`` + ``configs/agent/flashSAC.yaml``
+ ``configs/env/mujoco.yaml``, OmegaConf with their ``eval`` resolver) with scripts/run_mujoco.sh's overrides
(``num_env_steps=1000000`` so the cosine LR schedule spans 1M updates, ``agent.buffer_min_length=10000``,
``agent.buffer_device_type=cpu``, ``agent.sample_batch_size=512``, ``agent.use_amp=false``, ``gamma=0.99``,
``n_step=1``, UTD 1, 1 env) plus ``agent.device_type=cpu`` (their yaml says cuda) and ``agent.use_compile`` on/off
(``--theirs-compile``) with ``compile_mode`` ``--compile-mode`` (``auto``: their own ``_resolve_compile_mode``,
``max-autotune`` on torch >= 2.9). Their helpers decorated with ``@torch.compile`` (the categorical TD target, the
reward normalizer, the zeta sampler) are compiled in both settings; ``use_compile`` adds the networks, the weight
normalization and the EMA. Env: their ``flash_rl.envs.create_vec_env("mujoco", ...)`` (gymnasium SyncVectorEnv
of 1, RescaleAction, TimeLimit 1000) on ``HalfCheetah-v5`` (run_mujoco.sh names v4: the same 17/6 sizes).

One child process per provider, thread count and round (``pinned.run_pinned``: OMP/MKL threads,
pinned to the first N cores, ``torch.set_num_threads(N)``), each with a fresh TorchInductor cache, so compile
times are cold and nothing is shared between the sides; rounds interleaved, alternating the order.

* theirs: train.py's loop (``sample_actions`` once learning starts, ``env.step``, ``process_transition``,
  ``update``; the logger, evaluation and checkpoints left out) for the ``buffer_min_length`` (10,000) random steps
  that fill the buffer with real HalfCheetah transitions; the first and second ``agent.update()`` calls and the first
  ``sample_actions`` timed alone (compilation), ``--burn-in`` untimed loop steps, ``--measure`` timed loop steps
  (e2e steps/s), then ``--update-rounds`` rounds of ``--iters`` ``agent.update()`` calls: their whole update (buffer
  sample, reward scaling, actor and temperature every 2nd call, critic, target EMA, the ``.item()`` of its info);
  their ``replay_buffer.sample()`` alone is timed beside it.
* ours, through the generic interface only: ``make_learner(17, 6, LearnerConfig().with_agent(AGENT))`` with
  ``update`` each of ``--ours-update`` (``auto``: as fastsac chooses), ``learner.update(batch)`` on batch-512
  float32 random batches (bench_update.make_batches / time_updates), first call timed alone, ``--iters`` calls a
  round; end to end ``python -m fastsac train --env HalfCheetah-v5 --agent AGENT --batch-size 512
  --learning-starts 10000 --update U --threads N`` for 10,000 + burn-in + measure steps, steps/s from its
  metrics.csv past the burn-in (bench/train_metrics.py). FLOPs of our update from ``fastsac.agents.cost``
  (``learner_update_flops``: ``flash_update_flops`` for flashsac) and the matrix-product floor:
  those FLOPs at the rate a lone ``--floor-n``^3 ``torch.mm`` reaches (bench_update.gemm_gflops) in the same child.
  Their update's FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` over one actor period (2 calls) of their
  eager child, halved, priced at the same rate: the floor of both sides, and the share of it each reaches.

``--ours-agent`` defaults to flashsac; ``--ours-agent sac`` runs today's learner as a placeholder.

    python bench/bench_flashsac_ref.py --threads 1 2 --rounds 1
    python bench/bench_flashsac_ref.py --parts update --theirs-compile off --ours-agent sac --threads 2
    python bench/bench_flashsac_ref.py --ours-update auto eager compile --json /tmp/flashsac_ref.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "bench"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from pinned import run_pinned  # noqa: E402

ENV_ID, OBS_DIM, ACT_DIM, BATCH, FILL = "HalfCheetah-v5", 17, 6, 512, 10_000
MIRROR = Path("/work/.mirror/Holiday-Robot+FlashSAC/repo")
VENV_PYTHON = "/tmp/flashsac_venv/bin/python"
AGENT_MODULE = Path("flash_rl/agents/flashSAC/agent.py")
# scripts/run_mujoco.sh's overrides (UTD 1 and 1 env are this loop's), and the CPU device its yaml lacks
RUN_MUJOCO = ["num_env_steps=1000000", "num_train_envs=1", "updates_per_interaction_step=1", "gamma=0.99",
              "n_step=1", "agent.buffer_max_length=1000000", f"agent.buffer_min_length={FILL}",
              "agent.buffer_device_type=cpu", f"agent.sample_batch_size={BATCH}", "agent.use_amp=false",
              "agent.asymmetric_observation=false", "agent.device_type=cpu"]
RESULT = "BENCH_FLASHSAC_REF "  # a child's result line: this prefix, then JSON


class SourceMissing(RuntimeError):
    """FlashSAC's source is neither at --flashsac-src nor in the mirror."""


# ------------------------------------------------------------------------------------------------ their source
def _git(where: Path, *cmd: str) -> str:
    return subprocess.run(["git", "-C", str(where), *cmd], capture_output=True, text=True, check=True).stdout.strip()


def find_source(src: str | None, mirror: Path, cache: Path) -> Path:
    """A directory holding FlashSAC's ``flash_rl``: ``src`` itself when it is such a tree, else ``git archive HEAD``
    of ``src`` (a checkout or bare repository) or of ``mirror`` exported into ``cache/<commit>`` (once)."""
    repo = Path(src) if src else mirror
    if (repo / AGENT_MODULE).is_file():
        return repo
    try:
        commit = _git(repo, "rev-parse", "HEAD") if repo.is_dir() else ""
    except (subprocess.CalledProcessError, FileNotFoundError):
        commit = ""
    if not commit:
        raise SourceMissing(
            f"FlashSAC's source was not found: {repo} is neither a tree holding {AGENT_MODULE} nor a git repository "
            f"(give --flashsac-src a checkout of Holiday-Robot/FlashSAC, or its exported tree)")
    out = cache / commit[:12]
    if not (out / AGENT_MODULE).is_file():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="export_", dir=cache))
        top = set(_git(repo, "ls-tree", "--name-only", "HEAD").splitlines())  # not docs/: the mirror lacks its blobs
        wanted = [p for p in ("flash_rl", "configs", "scripts", "train.py", "pyproject.toml", "LICENSE") if p in top]
        archive = subprocess.run(["git", "-C", str(repo), "archive", "HEAD", *wanted], capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    return out


def source_commit(src: Path, given: str | None, mirror: Path) -> str:
    for repo in ([Path(given)] if given else []) + [mirror]:
        try:
            return _git(repo, "rev-parse", "--short", "HEAD")
        except (subprocess.CalledProcessError, FileNotFoundError, NotADirectoryError):
            continue
    return src.name[:7]


def their_config(src: Path, use_compile: bool, compile_mode: str) -> dict:
    """FlashSACConfig's fields as train.py composes them (base + agent + env yaml, run_mujoco.sh's overrides)."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("eval"):
        OmegaConf.register_new_resolver("eval", lambda s: eval(s))  # train.py's resolver
    configs = src / "configs"
    base = OmegaConf.load(configs / "flashSAC_base.yaml")
    base.pop("defaults")
    cfg = OmegaConf.merge(base, {"agent": OmegaConf.load(configs / "agent" / "flashSAC.yaml"),
                                 "env": OmegaConf.load(configs / "env" / "mujoco.yaml")},
                          OmegaConf.from_dotlist(RUN_MUJOCO + [f"agent.use_compile={str(use_compile).lower()}",
                                                               f"agent.compile_mode={compile_mode}"]))
    OmegaConf.resolve(cfg)
    agent = OmegaConf.to_container(cfg.agent)
    agent.pop("agent_type")
    return agent


# ------------------------------------------------------------------------------------------------ children
def their_child(a) -> dict:
    """Their agent in train.py's loop; see the module docstring for what is timed."""
    import random

    import numpy as np
    import torch

    torch.set_num_threads(a.threads)
    src = Path(a.flashsac_src)
    sys.path.insert(0, str(src))
    from flash_rl.agents.flashSAC.agent import FlashSACAgent, FlashSACConfig
    from flash_rl.envs import create_vec_env

    fields = their_config(src, a.use_compile, a.compile_mode)
    random.seed(a.seed), np.random.seed(a.seed), torch.manual_seed(a.seed)
    env = create_vec_env(env_type="mujoco", env_name=ENV_ID, num_envs=1, seed=a.seed, rescale_action=True,
                         max_episode_steps=None)
    observations, env_info = env.reset()
    agent = FlashSACAgent(env.observation_space, env.action_space, env_info, FlashSACConfig(**fields))
    state = {"obs": observations, "transition": None, "step": 0}

    def act_and_store():  # train.py's loop body up to agent.update()
        state["step"] += 1
        if agent.can_start_training() and state["transition"] is not None:
            actions = agent.sample_actions(state["step"], prev_transition=state["transition"], training=True)
        else:
            actions = env.action_space.sample()
        actions = np.array(actions)
        next_obs, rewards, terminateds, truncateds, infos = env.step(actions)
        next_buffer_obs = next_obs.copy()
        for i in range(1):
            if terminateds[i] or truncateds[i]:
                next_buffer_obs[i] = infos["final_obs"][i]
        transition = {"observation": state["obs"], "action": actions, "reward": rewards, "terminated": terminateds,
                      "truncated": truncateds, "next_observation": next_buffer_obs}
        agent.process_transition(transition)
        transition["next_observation"] = next_obs
        state["obs"], state["transition"] = next_obs, transition

    def loop_step():
        act_and_store()
        if agent.can_start_training():
            agent.update()

    out: dict = {"compile_mode": agent.cfg.compile_mode, "use_compile": a.use_compile}
    t = time.perf_counter()
    while not agent.can_start_training():
        act_and_store()
    out["fill_s"], out["fill_steps"] = time.perf_counter() - t, state["step"]
    for name in ("first_call_s", "second_call_s"):
        t = time.perf_counter()
        agent.update()
        out[name] = time.perf_counter() - t
    t = time.perf_counter()
    act_and_store()  # the first sample_actions (its own compiled graph)
    out["first_act_s"] = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(a.burn_in):
        loop_step()
    out["burn_in_s"] = time.perf_counter() - t
    if a.measure:
        t = time.perf_counter()
        for _ in range(a.measure):
            loop_step()
        out["e2e_sps"] = a.measure / (time.perf_counter() - t)
    out["update_ms"], out["sample_ms"] = [], []
    for _ in range(a.update_rounds):
        t = time.perf_counter()
        for _ in range(a.iters):
            agent.update()
        out["update_ms"].append((time.perf_counter() - t) / a.iters * 1e3)
        t = time.perf_counter()
        for _ in range(a.iters):
            agent._replay_buffer.sample()
        out["sample_ms"].append((time.perf_counter() - t) / a.iters * 1e3)
    if not a.use_compile:  # their update's matrix-product FLOPs, counted by torch on one eager call
        from torch.utils.flop_counter import FlopCounterMode

        for _ in range(2):  # an actor period: one call with the actor and temperature, one without
            with FlopCounterMode(display=False) as counter:
                agent.update()
            out["flops"] = out.get("flops", 0.0) + counter.get_total_flops() / 2
    env.close()
    return out


def our_flops(cfg, agent: str) -> tuple[float | None, str]:
    """FLOPs of one update of ours (``cost.learner_update_flops``: ``flash_update_flops`` for flashsac, the widths,
    blocks, bins and policy delay of ``cfg``) and where they came from."""
    from fastsac.agents import cost

    fn = "flash_update_flops" if agent == "flashsac" else "learner_update_flops"
    return float(cost.learner_update_flops(cfg, OBS_DIM, ACT_DIM, BATCH)), f"cost.{fn}"


def our_update_child(a) -> dict:
    import dataclasses

    import torch

    torch.set_num_threads(a.threads)
    from bench_update import gemm_gflops, make_batches, time_updates

    from fastsac.agents import LearnerConfig, make_learner

    base = LearnerConfig().with_agent(a.ours_agent)
    batches = make_batches(8, BATCH, OBS_DIM, ACT_DIM, seed=a.seed)
    calls, out = {}, {"update": {}}
    for kind in a.ours_update:
        learner = make_learner(OBS_DIM, ACT_DIM, dataclasses.replace(base, update=kind))
        t = time.perf_counter()
        learner.update(batches[0])
        out["update"][kind] = {"first_call_s": time.perf_counter() - t, "ms": []}
        time_updates(learner.update, batches, a.warmup)
        calls[kind] = learner.update
    out["gemm_gflops"] = []
    for _ in range(a.update_rounds):
        for kind, call in calls.items():
            out["update"][kind]["ms"].append(time_updates(call, batches, a.iters))
        out["gemm_gflops"].append(gemm_gflops(a.floor_n, torch.device("cpu"), lambda: None, seconds=0.3))
    out["flops"], out["flops_from"] = our_flops(base, a.ours_agent)
    return out


def our_e2e(a, threads: int, update: str) -> float:
    """``fastsac train`` at these sizes in its own pinned process; steps/s past FILL + burn-in."""
    from train_metrics import steps_per_second

    start = FILL + a.burn_in
    out = Path(tempfile.mkdtemp(prefix="bench_flashsac_ref_"))
    try:
        cmd = [sys.executable, "-m", "fastsac", "train", "--env", ENV_ID, "--agent", a.ours_agent, "--total-steps",
               str(start + a.measure), "--learning-starts", str(FILL), "--batch-size", str(BATCH), "--update",
               update, "--threads", str(threads), "--seed", str(a.seed), "--eval-every", "0", "--eval-episodes", "1",
               "--checkpoint-every", "0", "--log-every", str(math.gcd(start, a.measure)), "--no-progress",
               "--no-tensorboard", "--out", str(out / "run")]
        done = _run_pinned(cmd, threads, out)
        if done.returncode:
            raise RuntimeError(f"fastsac train failed ({' '.join(cmd)}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return steps_per_second(out / "run", start)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _run_pinned(cmd: list[str], threads: int, cache: Path) -> subprocess.CompletedProcess:
    return run_pinned(cmd, threads, {"TORCHINDUCTOR_CACHE_DIR": str(cache / "inductor"), "PYTHONPATH": str(ROOT)})


def run_child(python: str, role: str, threads: int, a, **extra) -> dict:
    """This script as a child (``--child role``) in ``python``, pinned, fresh inductor cache; its result JSON."""
    cache = Path(tempfile.mkdtemp(prefix="bench_flashsac_ref_"))
    argv = [python, str(Path(__file__).resolve()), "--child", role, "--threads", str(threads), "--seed", str(a.seed),
            "--burn-in", str(a.burn_in), "--measure", str(extra.get("measure", a.measure)), "--iters", str(a.iters),
            "--update-rounds", str(a.update_rounds if "update" in a.parts else 0), "--warmup", str(a.warmup),
            "--floor-n", str(a.floor_n),
            "--ours-agent", a.ours_agent, "--ours-update", *a.ours_update, "--compile-mode", a.compile_mode,
            "--theirs-compile", extra.get("compile", "on"), "--flashsac-src", str(extra.get("src", ""))]
    try:
        done = _run_pinned(argv, threads, cache)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    for line in done.stdout.splitlines():
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT):])
    raise RuntimeError(f"{role} at {threads} thread(s) failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


# ------------------------------------------------------------------------------------------------ summary
def median_iqr(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], 0.0
    q = statistics.quantiles(values, n=4, method="inclusive")
    return statistics.median(values), q[2] - q[0]


def summarize(raw: dict) -> dict:
    """Per thread count and provider (``theirs-compile``, ``theirs-eager``, ``ours-<update>``): the update's ms
    (median and IQR over every timed round of every child), first-call seconds, e2e steps/s (median over children);
    the ratios ours / theirs of update ms and of steps/s (medians of the per-round ratios where both ran that round,
    so that load changes hit both), and our FLOPs and floor."""
    out = {}
    for threads, rounds in raw.items():
        rows = {}
        for name in rounds[0]:
            got = [r[name] for r in rounds if name in r]
            ms = [v for g in got for v in g.get("update_ms", [])]
            sps = [g["e2e_sps"] for g in got if g.get("e2e_sps")]
            row = {"update_ms": median_iqr(ms) if ms else None, "rounds_ms": ms,
                   "first_call_s": statistics.median([g["first_call_s"] for g in got if "first_call_s" in g] or [None]),
                   "e2e_sps": statistics.median(sps) if sps else None, "rounds_sps": sps}
            for key in ("second_call_s", "first_act_s", "burn_in_s", "fill_s", "load", "compile_mode"):
                vals = [g[key] for g in got if g.get(key) is not None]
                if vals:
                    row[key] = vals[0] if key == "compile_mode" else statistics.median(vals)
            if any("sample_ms" in g for g in got):
                row["sample_ms"] = statistics.median(v for g in got for v in g["sample_ms"])
            side = name.split("-")[0]  # the FLOPs do not depend on how an update runs: any child of the side
            counted = [g["flops"] for r in rounds for n, g in r.items() if n.startswith(side) and g.get("flops")]
            if counted:
                rates = [v for r in rounds for g in r.values() for v in g.get("gemm_gflops", [])]  # ours measures it
                flops = statistics.median(counted)
                if rates:
                    rate = statistics.median(rates)
                    row.update(gflop=flops / 1e9, gemm_gflops=rate, floor_ms=flops / (rate * 1e9) * 1e3)
            elif got and "flops_from" in got[0]:
                row["flops_from"] = got[0]["flops_from"]
            rows[name] = row
        ratios = {}
        ours = [n for n in rows if n.startswith("ours")]
        theirs = [n for n in rows if n.startswith("theirs")]
        for o in ours:
            for t in theirs:
                def per_round(key):
                    vals = [statistics.median(r[o][key]) / statistics.median(r[t][key]) if key == "update_ms"
                            else r[o][key] / r[t][key]
                            for r in rounds if o in r and t in r and r[o].get(key) and r[t].get(key)]
                    return statistics.median(vals) if vals else None
                ratios[f"{o}/{t}"] = {"update_ms": per_round("update_ms"), "e2e_sps": per_round("e2e_sps")}
        out[threads] = {"providers": rows, "ratios": ratios}
    return out


def format_table(summary: dict) -> str:
    def num(v, fmt):  # "-" where there is no value, in the column's width
        return format(v, fmt) if v is not None else "-".rjust(int(fmt.split(".")[0] or 0))

    lines = [f"{'threads':>7}  {'provider':<16}{'update ms':>10}{'IQR':>8}{'first call s':>14}{'e2e steps/s':>13}"
             f"{'floor ms':>10}{'of floor':>10}"]
    for threads, s in summary.items():
        for name, row in s["providers"].items():
            ms = row["update_ms"]
            floor = row.get("floor_ms")
            lines.append(f"{threads:>7}  {name:<16}{num(ms and ms[0], '10.2f')}{num(ms and ms[1], '8.2f')}"
                         f"{num(row['first_call_s'], '14.2f')}{num(row['e2e_sps'], '13.1f')}{num(floor, '10.2f')}"
                         f"{num(floor and ms and floor / ms[0], '10.0%')}")
    lines.append("")
    lines.append(f"{'threads':>7}  {'ours / theirs':<34}{'update ms':>11}{'e2e steps/s':>13}")
    for threads, s in summary.items():
        for pair, r in s["ratios"].items():
            lines.append(f"{threads:>7}  {pair:<34}" + "".join(
                f"{v:{w}.2f}x" if v is not None else "-".rjust(w + 1) for v, w in ((r["update_ms"], 10),
                                                                             (r["e2e_sps"], 12))))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ main
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", nargs="+", default=["update", "e2e"], choices=("update", "e2e"))
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch threads (and cores) per child")
    p.add_argument("--rounds", type=int, default=1, help="interleaved rounds: one child per provider each")
    p.add_argument("--ours-agent", default="flashsac", help="fastsac's agent (LearnerConfig.agent; today: sac)")
    p.add_argument("--ours-update", nargs="+", default=["auto"], choices=("auto", "eager", "compile", "native"),
                   help="LearnerConfig.update of ours, one provider each (auto: as fastsac chooses)")
    p.add_argument("--theirs-compile", nargs="+", default=["on", "off"], choices=("on", "off"),
                   help="their use_compile settings, one provider each")
    p.add_argument("--compile-mode", default="auto", help="their compile_mode (auto: their resolution)")
    p.add_argument("--flashsac-src", default=None, help="FlashSAC checkout, bare repository or exported tree")
    p.add_argument("--flashsac-mirror", default=str(MIRROR), help="where to export from without --flashsac-src")
    p.add_argument("--src-cache", default=str(Path(tempfile.gettempdir()) / "flashsac_ref_src"))
    p.add_argument("--flashsac-python", default=VENV_PYTHON, help="a Python where their agent imports (see above)")
    p.add_argument("--burn-in", type=int, default=50, help="untimed training steps after the first calls")
    p.add_argument("--measure", type=int, default=200, help="timed training steps end to end (0: none)")
    p.add_argument("--iters", type=int, default=20, help="update calls per timed round (even: whole actor periods)")
    p.add_argument("--update-rounds", type=int, default=5, help="timed update rounds per child")
    p.add_argument("--warmup", type=int, default=10, help="our untimed update calls after the first")
    p.add_argument("--floor-n", type=int, default=256, help="n of the n^3 torch.mm whose rate sets the floor")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="save the raw rounds and the summary here")
    p.add_argument("--child", choices=("theirs", "ours"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.iters < 2 or a.iters % 2:
        p.error(f"--iters must be even and >= 2 (their actor updates every 2nd call), got {a.iters}")
    if min(a.threads) < 1 or a.rounds < 1 or (a.update_rounds < 1 and not a.child):
        p.error("--threads, --rounds and --update-rounds must be >= 1")
    a.use_compile = a.theirs_compile[0] == "on"
    return a


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.child:
        a.threads = a.threads[0]
        result = their_child(a) if a.child == "theirs" else our_update_child(a)
        result["load"] = os.getloadavg()[0]  # the shared machine's 1-minute load when the child ended
        print(RESULT + json.dumps(result), flush=True)
        return 0
    try:
        src = find_source(a.flashsac_src, Path(a.flashsac_mirror), Path(a.src_cache))
    except SourceMissing as e:
        print(f"bench_flashsac_ref: {e}", file=sys.stderr)
        return 2
    if not Path(a.flashsac_python).exists():
        print(f"bench_flashsac_ref: no Python at {a.flashsac_python} for their side; make it as the docstring says "
              "(python -m venv --system-site-packages /tmp/flashsac_venv; its pip: omegaconf jax jaxlib "
              "torch==2.13.0) or give --flashsac-python", file=sys.stderr)
        return 2
    from bench_sps import _git_revision

    measure = a.measure if "e2e" in a.parts else 0
    print(f"bench_flashsac_ref: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, fastsac {_git_revision()}, "
          f"FlashSAC {source_commit(src, a.flashsac_src, Path(a.flashsac_mirror))} from {src}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.2f}; {ENV_ID}, batch {BATCH}, ours --agent {a.ours_agent}", flush=True)
    providers = [f"theirs-{'compile' if c == 'on' else 'eager'}" for c in a.theirs_compile]
    providers += [f"ours-{u}" for u in a.ours_update]
    raw: dict[int, list[dict]] = {}
    for threads in a.threads:
        raw[threads] = []
        for r in range(a.rounds):
            order = providers if r % 2 == 0 else providers[::-1]
            got: dict[str, dict] = {}
            ours = None
            for name in order:
                t0 = time.perf_counter()
                if name.startswith("theirs"):
                    got[name] = run_child(a.flashsac_python, "theirs", threads, a, measure=measure, src=src,
                                          compile="on" if name == "theirs-compile" else "off")
                else:
                    if ours is None and "update" in a.parts:
                        ours = run_child(sys.executable, "ours", threads, a, measure=0)
                    got[name] = dict(ours["update"][name[5:]], update_ms=ours["update"][name[5:]]["ms"],
                                     gemm_gflops=ours["gemm_gflops"], flops=ours["flops"],
                                     flops_from=ours["flops_from"], load=ours.get("load")) if ours else {}
                    if "e2e" in a.parts:
                        got[name]["e2e_sps"] = our_e2e(a, threads, name[5:])
                row = got[name]
                ms = statistics.median(row["update_ms"]) if row.get("update_ms") else float("nan")
                print(f"  threads {threads} round {r + 1}: {name:<15} update {ms:8.2f} ms, first call "
                      f"{row.get('first_call_s', float('nan')):6.2f} s, e2e {row.get('e2e_sps') or float('nan'):7.1f} "
                      f"steps/s ({time.perf_counter() - t0:.0f} s)", flush=True)
            if "update" not in a.parts:
                for row in got.values():
                    row.pop("update_ms", None)
            raw[threads].append(got)
    summary = summarize(raw)
    print()
    print(format_table(summary))
    for threads, s in summary.items():
        for name, row in s["providers"].items():
            extra = {k: row[k] for k in ("compile_mode", "second_call_s", "first_act_s", "burn_in_s", "fill_s",
                                         "sample_ms", "gflop", "gemm_gflops", "flops_from", "load") if k in row}
            if extra:
                print(f"{threads} thread(s) {name}: " + ", ".join(
                    f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in extra.items()))
    if a.json:
        Path(a.json).write_text(json.dumps({"raw": raw, "summary": summary, "args": {
            k: v for k, v in vars(a).items() if k != "child"}}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
