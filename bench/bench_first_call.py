"""How far a fast update's first call lies from the eager update, tensor by tensor: what the first-call check
(``fastsac/agents/runners/checked.py``) sees when it keeps or rejects a native or compiled update.

One learner of the given sizes (random batch, obs/act dims as given) runs its first update through its fast
implementation (``--update native`` or ``compile``); the check then reruns the eager update from the same state and
compares the tensors of ``Learner._compared_tensors``. This script wraps ``worst_difference`` and
``moment_difference`` to see every one of
them and prints, per kind (the optimizers' moments, which carry the gradients, compared by the check in Frobenius
norm; the forward quantities: running statistics, metric sums, returned actions, compared relative to each tensor's
largest magnitude), both measures, then the worst tensors, and whether the check kept the fast update::

    python bench/bench_first_call.py --agent crossq --critic-widths 2048 2048 --batch 64 --update compile
    python bench/bench_first_call.py --agent sac --update native --batch 256 --seeds 0 1 2
    python bench/bench_first_call.py --agent crossq --critic-widths 2048 2048 --obs-dim 5 --act-dim 2 --batch 64 \
        --set hidden_sizes=[16,16] brn_warmup_steps=3 initial_alpha=0.3

The batch is random (normal observations and rewards): real transitions (``fastsac train``'s first update after
the random steps) can spread differently, and are what a run's check sees.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fastsac.agents import LearnerConfig, make_learner  # noqa: E402
from fastsac.agents.runners import checked  # noqa: E402

def kind_of(name: str) -> str:
    """``moments`` for an optimizer moment, ``forward`` for everything else the check compares."""
    return "moments" if checked.is_moment(name) else "forward"


def first_call_spread(cfg: LearnerConfig, obs_dim: int, act_dim: int, batch: int, seed: int) -> dict:
    """The per-tensor differences of ``cfg``'s fast first call from the eager update on one random batch."""
    rows: list[dict] = []
    originals = {"worst_difference": checked.worst_difference, "moment_difference": checked.moment_difference}

    def spying(measure):
        def spy(names, fast, eager):
            for name, f, e in zip(names, fast, eager):
                if e.is_floating_point() and e.numel():
                    d = f.double() - e.double()
                    rows.append({"name": name, "kind": kind_of(name),
                                 "max": float(d.abs().max() / e.double().abs().max().clamp_min(1e-30)),
                                 "frobenius": float(d.norm() / e.double().norm().clamp_min(1e-30))})
            return originals[measure](names, fast, eager)
        return spy

    g = torch.Generator().manual_seed(seed)
    data = (torch.randn(batch, obs_dim, generator=g), torch.rand(batch, act_dim, generator=g) * 2 - 1,
            torch.randn(batch, generator=g), torch.randn(batch, obs_dim, generator=g),
            torch.arange(batch) % 7 == 3)  # fmt: skip
    for measure in originals:
        setattr(checked, measure, spying(measure))
    try:
        learner = make_learner(obs_dim, act_dim, dataclasses.replace(cfg, seed=seed))
        fast = learner.runner.kind
        learner.update(data)
    finally:
        for measure, original in originals.items():
            setattr(checked, measure, original)
    kinds = {k: {"max": max((r["max"] for r in rows if r["kind"] == k), default=0.0),
                 "frobenius": max((r["frobenius"] for r in rows if r["kind"] == k), default=0.0)}
             for k in ("moments", "forward")}
    return {"seed": seed, "fast": fast, "kept": learner.runner.kind, "kinds": kinds,
            "worst": sorted(rows, key=lambda r: -r["max"])[:5]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--agent", default="crossq", choices=("sac", "crossq", "flashsac"))
    p.add_argument("--actor-widths", type=int, nargs="+", default=None, help="default: the agent's")
    p.add_argument("--critic-widths", type=int, nargs="+", default=None, help="default: the agent's")
    p.add_argument("--critic", default="scalar", choices=("scalar", "categorical"))
    p.add_argument("--update", default="compile", choices=("compile", "native"))
    p.add_argument("--obs-dim", type=int, default=17)
    p.add_argument("--act-dim", type=int, default=6)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--set", nargs="+", default=[], metavar="FIELD=JSON",
                   help="other LearnerConfig fields, e.g. brn_warmup_steps=3 initial_alpha=0.3")
    p.add_argument("--json", help="write the results here")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    cfg = LearnerConfig().with_agent(a.agent)
    changes = {"update": a.update, "policy_delay": 1}
    if a.actor_widths:
        changes["hidden_sizes"] = tuple(a.actor_widths)
    if a.critic_widths:
        changes["critic_hidden_sizes"] = tuple(a.critic_widths)
    if a.agent != "flashsac":
        changes["critic"] = a.critic
    for item in a.set:
        field, _, value = item.partition("=")
        value = json.loads(value)
        changes[field] = tuple(value) if isinstance(value, list) else value
    cfg = dataclasses.replace(cfg, **changes)
    bound = make_learner(a.obs_dim, a.act_dim, dataclasses.replace(cfg, update="eager")).first_call_rtol
    print(f"bench_first_call: {a.agent}, actor {cfg.hidden_sizes}, critics {cfg.critic_widths}, critic {cfg.critic}, "
          f"batch {a.batch}, obs {a.obs_dim}, act {a.act_dim}, update {a.update}, torch {torch.__version__}, "
          f"{a.threads} thread(s); the check's bound: {bound:g}")
    results = []
    for seed in a.seeds:
        r = first_call_spread(cfg, a.obs_dim, a.act_dim, a.batch, seed)
        results.append(r)
        k = r["kinds"]
        print(f"seed {seed}: {r['fast']} -> kept {r['kept']}; moments max {k['moments']['max']:.2e} frobenius "
              f"{k['moments']['frobenius']:.2e}; forward max {k['forward']['max']:.2e} frobenius "
              f"{k['forward']['frobenius']:.2e}")
        for w in r["worst"][:3]:
            print(f"    {w['name']:44s} max {w['max']:.2e}  frobenius {w['frobenius']:.2e}")
    if a.json:
        Path(a.json).write_text(json.dumps({"args": vars(a), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
