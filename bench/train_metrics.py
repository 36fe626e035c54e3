"""What a ``fastsac train`` run directory says about its speed, for the benchmarks that run the trainer.

``steps_per_second(run_dir, after)``: env steps per second over the metrics rows past step ``after`` (random steps
and burn-in excluded), each row's ``sps`` weighted by the steps it covers; bench_sps.py, bench_crossq_sbx.py and
bench_flashsac_ref.py read their runs' speed with it.
"""

from __future__ import annotations

import csv
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
