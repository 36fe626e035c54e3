"""What a ``fastsac train`` run directory says about its speed, for the benchmarks that run the trainer.

``steps_per_second(run_dir, after)``: env steps per second over the metrics rows past step ``after`` (random steps
and burn-in excluded), each row's ``sps`` weighted by the steps it covers; bench_sps.py, bench_crossq_sbx.py and
bench_flashsac_ref.py read their runs' speed with it.

``timed_preset_run(preset, learning_starts, burn_in, measure, threads, update, dims)``: ``fastsac train`` with a preset
for the benchmark's step counts in a temporary run directory; its steps/s over the measured steps, the update that
ran and its fallbacks (bench_crossq_sbx.py and bench_discrete_sac.py run their fastsac provider with it).
"""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
from pathlib import Path


def steps_per_second(run_dir: str | Path, after: int) -> float:
    """Timed env steps / seconds over the rows of ``run_dir/metrics.csv`` whose step is past ``after``."""
    steps = seconds = 0.0
    with open(Path(run_dir) / "metrics.csv", newline="") as f:
        previous = 0
        for row in csv.DictReader(f):
            step = int(row["step"])
            if step > after and row["sps"]:
                seconds += (step - previous) / float(row["sps"])
                steps += step - previous
            previous = step
    if seconds <= 0:
        raise ValueError(f"{run_dir}/metrics.csv has no timed row past step {after}: log more often (--log-every) "
                         "or run longer (--total-steps)")
    return steps / seconds


def timed_preset_run(preset: str, learning_starts: int, burn_in: int, measure: int, threads: int, update: str | None,
                     dims: tuple[int, int, bool], **overrides) -> tuple[float, str]:
    """``fastsac train --preset preset`` for ``learning_starts + burn_in + measure`` steps (seed 0, no evaluation,
    logging, checkpoints or TensorBoard), ``threads`` threads, ``update`` (None: the update the trainer's rule picks
    for the preset's own full-length run; ``dims``: (obs_dim, action_size, discrete) for that rule), ``overrides``
    other config fields. Returns (steps/s over the measured steps, "<update>, fallbacks: <kinds or none>")."""
    import torch

    from fastsac.training import train
    from fastsac.training.config import config_from_dict
    from fastsac.training.presets import resolve_config
    from fastsac.training.resolve import decide_update

    config, _ = resolve_config(preset, {"device": "cpu"})
    update = update or decide_update(config, torch.device("cpu"), *dims).backend
    start = learning_starts + burn_in
    out = Path(tempfile.mkdtemp(prefix="bench_preset_run_"))
    try:
        train(config_from_dict({
            "total_steps": start + measure, "seed": 0, "update": update, "out": str(out / "run"),
            "buffer_size": start + measure, "learning_starts": learning_starts, "eval_every": 0, "eval_episodes": 1,
            "log_every": 100, "checkpoint_every": 0, "progress": False, "tensorboard": False, "threads": threads,
            **overrides,
        }, config, where=f"a benchmark's {preset} run"))
        summary = json.loads((out / "run" / "summary.json").read_text())
        fallbacks = [f.get("kind") for f in summary.get("fallbacks", [])]
        return steps_per_second(out / "run", after=start), f"{update}, fallbacks: {fallbacks or 'none'}"
    finally:
        shutil.rmtree(out, ignore_errors=True)
