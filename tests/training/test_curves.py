"""Pictures of runs: each run's curves.png (return, alpha, steps/s against steps), redrawn only after a new
evaluation, and `fastsac plot RUN [RUN ...]` drawing runs side by side. The figures' lines are checked before
saving; the files after (PNG signature, size, not blank)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from fastsac import cli
from fastsac.training.curves import (
    CURVES_FILE, CurvesWriter, build_run_figure, build_runs_figure, plot_runs, read_metrics, write_curves,
)
from fastsac.training.metrics_log import METRIC_COLUMNS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _fake_run(path: Path, seed: int, rows: int = 6) -> Path:
    """A run directory whose metrics.csv has the trainer's header: a row every 100 steps, an evaluation every 200."""
    path.mkdir(parents=True)
    lines = [",".join(METRIC_COLUMNS)]
    for i in range(1, rows + 1):
        row = {"step": 100 * i, "wall_time": 0.5 * i + seed, "sps": 200.0 + 10 * i, "alpha": 0.5 / i,
               "episode_return": -500.0 + 40 * i + seed}
        if i % 2 == 0:
            row["eval_return"] = -400.0 + 50 * i + seed
        lines.append(",".join(str(row.get(c, "")) for c in METRIC_COLUMNS))
    (path / "metrics.csv").write_text("\n".join(lines) + "\n")
    return path


def _check_png(path: Path, min_w: int = 600, min_h: int = 250) -> None:
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG_MAGIC, path
    img = imread(path)
    assert img.ndim == 3 and img.shape[1] >= min_w and img.shape[0] >= min_h, img.shape
    assert img[..., :3].std() > 0.01, f"{path} is blank"


def _lines(ax) -> dict[str, tuple[list[float], list[float]]]:
    return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.get_lines()}


def test_run_figure_has_return_alpha_and_sps_against_steps(tmp_path):
    cols = read_metrics(_fake_run(tmp_path / "r", seed=1) / "metrics.csv")
    fig = build_run_figure(cols, "Pendulum-v1, sac, seed 1")
    ret, alpha, sps = fig.axes
    assert [ax.get_xlabel() for ax in fig.axes] == ["env steps"] * 3
    assert (ret.get_ylabel(), alpha.get_ylabel(), sps.get_ylabel()) == ("return", "alpha", "env steps / s")
    lines = _lines(ret)
    assert lines["evaluation"] == ([200.0, 400.0, 600.0], [-299.0, -199.0, -99.0])  # only rows with an evaluation
    assert lines["training episodes"][0] == [100.0 * i for i in range(1, 7)]
    assert _lines(alpha)["alpha"][1] == pytest.approx([0.5 / i for i in range(1, 7)])
    assert _lines(sps)["sps"][1] == [200.0 + 10 * i for i in range(1, 7)]
    assert fig._suptitle.get_text() == "Pendulum-v1, sac, seed 1"


def test_curves_png_is_written_only_after_a_new_evaluation(tmp_path):
    run = _fake_run(tmp_path / "r", seed=0)
    writer = CurvesWriter(run, "t")
    assert writer.update(100, evaluated=False) is None and not (run / CURVES_FILE).exists()
    path = writer.update(200, evaluated=True)
    assert path == run / CURVES_FILE
    _check_png(path)
    stamp = path.stat().st_mtime_ns
    assert writer.update(200, evaluated=True) is None  # nothing new: not redrawn
    assert path.stat().st_mtime_ns == stamp
    assert write_curves(tmp_path / "no-run") is None
    assert not list(run.glob(".*tmp"))


def test_training_writes_curves_png(tmp_path):
    """A real (tiny) training run leaves curves.png beside metrics.csv, drawn after its last evaluation."""
    from fastsac.training import TrainConfig, train

    out = tmp_path / "run"
    cfg = TrainConfig(env_id="Pendulum-v1", total_steps=300, learning_starts=100, eval_every=150, eval_episodes=1,
                      log_every=100, checkpoint_every=0, out=str(out), progress=False, tensorboard=False,
                      device="cpu")
    train(cfg)
    _check_png(out / CURVES_FILE)
    fig = build_run_figure(read_metrics(out / "metrics.csv"), "x")
    steps, returns = _lines(fig.axes[0])["evaluation"]
    assert steps == [150.0, 300.0] and not any(math.isnan(r) for r in returns)


def test_runs_side_by_side_against_steps_and_time(tmp_path):
    a, b = _fake_run(tmp_path / "a" / "seed0", 0), _fake_run(tmp_path / "b" / "seed0", 7)
    runs = [("a", read_metrics(a / "metrics.csv")), ("b", read_metrics(b / "metrics.csv"))]
    fig = build_runs_figure(runs, "time")
    assert [ax.get_xlabel() for ax in fig.axes] == ["wall-clock time (s)"] * 3
    lines = _lines(fig.axes[0])
    assert set(lines) == {"a", "b"}
    assert lines["b"] == ([8.0, 9.0, 10.0], [-293.0, -193.0, -93.0])
    with pytest.raises(ValueError, match="steps' or 'time"):
        build_runs_figure(runs, "episodes")
    out = plot_runs([a, b], tmp_path / "pics" / "ab.png")
    _check_png(out)


def test_plot_command(tmp_path, capsys):
    a, b = _fake_run(tmp_path / "x" / "seed0", 0), _fake_run(tmp_path / "y" / "seed0", 1)
    out = tmp_path / "both.png"
    assert cli.main(["plot", str(a), str(b), "--x", "time", "--out", str(out)]) == 0
    assert f"plot: {out}" in capsys.readouterr().out
    _check_png(out)
    assert cli.main(["plot", str(a), str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "has no metrics.csv" in capsys.readouterr().err
