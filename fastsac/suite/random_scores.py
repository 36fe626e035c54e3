"""The random-policy score of an env: the 0 of a suite's normalized scores (the 1 is a published reference).

``python -m fastsac.suite.random_scores ENV [ENV ...] [--episodes N] [--seed S]`` runs ``N`` episodes of uniformly
random actions (continuous: uniform in the action box; discrete: uniform over the actions) on our own env ids, the
first episode of each of N seeded parallel envs, and prints ``[[random]]`` tables for
``fastsac/suite/definitions/references.toml`` with the command that measured them. Measured on our envs (-v5 MuJoCo,
EnvPool where it has the task), not quoted from another env version.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Sequence

import numpy as np
import torch

__all__ = ["measure_random"]


def measure_random(env_id: str, episodes: int = 100, seed: int = 0, max_steps: int = 100_000) -> list[float]:
    """The returns of ``episodes`` episodes of uniformly random actions, in env order."""
    from fastsac.data import make

    env = make(env_id, num_envs=episodes, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    try:
        env.reset()
        returns = np.zeros(episodes)
        running = np.ones(episodes, dtype=bool)
        for _ in range(max_steps):
            if env.is_discrete:
                action = torch.randint(env.num_actions, (episodes,), generator=gen)
            else:
                action = torch.rand(episodes, env.action_dim, generator=gen) * 2 - 1
            res = env.step(action)
            returns[running] += res.reward.double().numpy()[running]
            running &= ~(res.terminated | res.truncated).numpy()
            if not running.any():
                return returns.tolist()
    finally:
        env.close()
    raise RuntimeError(f"{env_id}: {int(running.sum())} random episode(s) did not end within {max_steps} steps")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fastsac.suite.random_scores", description=__doc__.split("\n\n")[1])
    p.add_argument("envs", nargs="+", metavar="ENV")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    command = shlex.join(["python", "-m", "fastsac.suite.random_scores", *(sys.argv[1:] if argv is None else argv)])
    for env_id in args.envs:
        returns = measure_random(env_id, args.episodes, args.seed)
        print(f'[[random]]\nenv = "{env_id}"\nscore = {float(np.mean(returns)):.3f}\nsource = "fastsac random policy"\n'
              f'protocol = "uniformly random actions, mean return of {len(returns)} episodes (std '
              f'{float(np.std(returns)):.3f}), seed {args.seed}; `{command}`"\n')
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
