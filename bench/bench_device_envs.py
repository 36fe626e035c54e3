"""Device envs (``--env-backend torch|mjlab|mjx``) at many envs: env steps per second of the training loop and where a
loop iteration goes (env, act, buffer, update), at several numbers of envs.

Per setting it builds the run's session (its env, learner and buffer, as ``fastsac train`` would), fills the buffer
with random steps, then times each part of an iteration on its own over ``--iters`` iterations:

    env      env.step(action)
    act      learner.act(obs)
    buffer   buffer.add(obs, action, reward, final_obs, terminated)
    update   what the loop runs for utd * num_envs updates: learner.update(buffer.sample(batch)), or for k > 1
             learner.update_many(buffer.sample(k * batch), k) (one call; one CUDA graph on a GPU)

and, for k > 1, the baseline the block replaced beside it (not in the parts' sum): k learner.update calls, each
on its own sample (``update_calls``; the ratio ``update_calls / update`` is the block's gain).

and the whole loop (``Session._loop``, from fresh episodes, without its end's evaluation and checkpoint) over the
same number of iterations, whose env steps per second is the figure to quote; the parts' sum should be close to it.
Device work is synchronized around each timed part on a GPU.

    python bench/bench_device_envs.py --backend torch --env Pendulum-v1 --num-envs 64 256 1024
    python bench/bench_device_envs.py --backend mjlab --env Mjlab-Cartpole-Balance --num-envs 64 256 1024  # mjlab venv
    python bench/bench_device_envs.py --preset Pendulum-v1-sac-fastsac --num-envs 64 256 --utd 0.125  # FastSAC regime
    python bench/bench_device_envs.py --backend mjx --env MJX-Humanoid-v0 --num-envs 16 64  # in the mjx venv
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import torch

from fastsac.training.config import config_from_dict
from fastsac.training.presets import resolve_config
from fastsac.training.session import Session


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, iters: int, device: torch.device) -> float:
    """Seconds per call of ``fn`` over ``iters`` calls."""
    _sync(device)
    t = time.perf_counter()
    for _ in range(iters):
        fn()
    _sync(device)
    return (time.perf_counter() - t) / iters


class _NoStop:
    requested = False


def measure(args, num_envs: int, out: Path) -> dict:
    values = {
        "env_id": args.env, "env_backend": args.backend, "num_envs": num_envs, "device": args.device,
        "out": str(out), "utd": args.utd, "batch_size": args.batch_size, "learning_starts": 0,
        "total_steps": num_envs * (args.warmup + args.iters), "buffer_size": max(num_envs * 64, 100_000),
        "eval_every": 0, "log_every": num_envs * (args.warmup + args.iters), "checkpoint_every": 0, "progress": False,
        "tensorboard": False,
        "update": args.update, "threads": args.threads, "learner": {"hidden_sizes": args.hidden},
    }  # fmt: skip
    if args.preset:  # the preset's learner (and its run fields not set above)
        values["learner"] = {}
        cfg, _ = resolve_config(args.preset, {k: v for k, v in values.items() if k not in ("env_id", "env_backend")})
    else:
        cfg = config_from_dict(values)
    s = Session(cfg, out)
    env, learner, buffer, dev = s.env, s.learner, s.buffer, s.device
    try:
        obs = env.reset()
        for _ in range(args.warmup):  # random steps into the buffer, and the update's first calls
            action = s._random_action()
            res = env.step(action)
            buffer.add(obs, action, res.reward, res.final_obs, res.terminated)
            obs = res.next_obs
        n_updates = max(1, round(args.utd * num_envs))
        for _ in range(3):
            learner.update(buffer.sample(cfg.batch_size))
        action = learner.act(obs)
        res = env.step(action)
        parts = {
            "env": _timed(lambda: env.step(action), args.iters, dev),
            "act": _timed(lambda: learner.act(obs), args.iters, dev),
            "buffer": _timed(lambda: buffer.add(obs, action, res.reward, res.final_obs, res.terminated), args.iters,
                             dev),  # fmt: skip
            "update": _timed(lambda: learner.update_many(buffer.sample(n_updates * cfg.batch_size), n_updates),
                             args.iters, dev) if n_updates > 1 else  # fmt: skip
            _timed(lambda: learner.update(buffer.sample(cfg.batch_size)), args.iters, dev),
        }
        calls = _timed(lambda: [learner.update(buffer.sample(cfg.batch_size)) for _ in range(n_updates)],
                       args.iters, dev) if n_updates > 1 else None  # fmt: skip
        s.obs = env.reset()
        s.config = dataclasses.replace(cfg, total_steps=num_envs * args.iters)
        s._boundaries = lambda before: None  # the end's evaluation, log row and checkpoint are not the loop's
        _sync(dev)
        t = time.perf_counter()
        s._loop(_NoStop())
        _sync(dev)
        loop = (time.perf_counter() - t) / args.iters
    finally:
        env.close()
    total = sum(parts.values())
    return {"num_envs": num_envs, "updates_per_iteration": n_updates, "loop_ms": loop * 1e3,
            "env_steps_per_s": num_envs / loop, "parts_ms": {k: v * 1e3 for k, v in parts.items()},
            "parts_share": {k: v / total for k, v in parts.items()}, "parts_sum_ms": total * 1e3,
            "update_calls_ms": None if calls is None else calls * 1e3}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default="torch", choices=["torch", "mjlab", "mjx"])
    p.add_argument("--env", default="Pendulum-v1")
    p.add_argument("--num-envs", type=int, nargs="+", default=[64, 256, 1024])
    p.add_argument("--device", default="cpu")
    p.add_argument("--utd", type=float, default=1 / 64, help="updates per env step (default: one update per 64)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    p.add_argument("--update", default="auto")
    p.add_argument("--preset", default=None, help="take the learner (networks, critic, options) from this preset")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=20, help="random iterations before timing")
    p.add_argument("--iters", type=int, default=50, help="timed iterations per part and for the loop")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    rows = []
    print(f"{args.backend} {args.env} on {args.device}, utd {args.utd:g}, batch {args.batch_size}, "
          f"{'preset ' + args.preset if args.preset else f'hidden {args.hidden}'}, {args.iters} iterations")
    print(f"{'envs':>6} {'upd/it':>6} {'loop ms':>8} {'steps/s':>9} | {'env':>12} {'act':>12} {'buffer':>12} "
          f"{'update':>12} | {'sum ms':>7}")  # fmt: skip
    for n in args.num_envs:
        with tempfile.TemporaryDirectory() as d:
            r = measure(args, n, Path(d) / "run")
        rows.append(r)
        cells = " ".join(f"{r['parts_ms'][k]:6.2f} ({r['parts_share'][k]:3.0%})" for k in ("env", "act", "buffer",
                                                                                           "update"))  # fmt: skip
        calls = r["update_calls_ms"]
        baseline = "" if calls is None else f" | {r['updates_per_iteration']} update calls {calls:.2f} ms: " \
            f"{calls / r['parts_ms']['update']:.2f}x the block"
        print(f"{n:>6} {r['updates_per_iteration']:>6} {r['loop_ms']:8.2f} {r['env_steps_per_s']:9.0f} | {cells} | "
              f"{r['parts_sum_ms']:7.2f}{baseline}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
