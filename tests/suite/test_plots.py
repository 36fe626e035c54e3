"""fastsac.suite.plots: what a suite's per-env learning-curve figures draw (the series, not only a valid PNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fastsac.suite import plots, stats
from fastsac.suite.results import RunRecord
from fastsac.suite.schema import Reference


def run(seed: int, returns: list[float]) -> RunRecord:
    evals = [(1000 * (i + 1), 10.0 * (i + 1), r, 100.0) for i, r in enumerate(returns)]
    return RunRecord(env="E-v0", seed=seed, path=Path("."), finished=True, evals=evals, total_steps=1000 * len(returns),
                     final_return=returns[-1], sps=100.0, wall_time=10.0 * len(returns), device="cpu")  # fmt: skip


@pytest.fixture
def figures(monkeypatch):
    """Every figure plot_env saves, kept instead of written."""
    from matplotlib.figure import Figure

    saved = []
    monkeypatch.setattr(Figure, "savefig", lambda fig, path, *a, **k: saved.append((Path(path).name, fig)))
    return saved


def test_curves_show_each_seed_the_iqm_its_interval_references_and_threshold(figures, tmp_path):
    returns = [[0.0, 10.0, 20.0], [5.0, 30.0, 40.0], [1.0, 20.0, 90.0], [2.0, 25.0, 30.0]]
    refs = [Reference(env="E-v0", source="Paper X", score=50.0, std=None, steps=3000, measured_on="E-v0",
                      protocol="evaluation return", url="https://example.org", verified=True)]
    rows = [("fastsac sac", [run(s, r) for s, r in enumerate(returns)]), ("fastsac crossq", [run(0, [1.0, 2.0, 3.0])])]
    plots.plot_env("E-v0", rows, refs, tmp_path, threshold=25.0)
    assert [name for name, _ in figures] == ["E-v0_steps.png", "E-v0_time.png"]
    ax = figures[0][1].axes[0]
    labels = [line.get_label() for line in ax.lines if not line.get_label().startswith("_")]
    assert labels == ["fastsac sac, IQM of 4", "fastsac crossq, mean of 1", "Paper X @ 3k: 50.0", "threshold 25.0"]
    iqm_line = next(line for line in ax.lines if line.get_label() == "fastsac sac, IQM of 4")
    iqm, low, high = stats.iqm_curve(np.array(returns))
    np.testing.assert_allclose(iqm_line.get_ydata(), iqm)
    np.testing.assert_allclose(iqm[2], np.mean([30.0, 40.0]))  # the middle half of 20, 30, 40, 90
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(low.min()) and band.max() == pytest.approx(high.max())
    assert sum(1 for line in ax.lines if line.get_label().startswith("_")) == 5  # each seed, faint
    assert "95% bootstrap CI of the IQM" in ax.get_title()
    assert figures[1][1].axes[0].get_xlabel() == "wall-clock time (s)"


def test_without_rliable_the_band_is_the_min_max_range_and_says_so(figures, tmp_path, monkeypatch):
    monkeypatch.setattr(stats, "missing", lambda: "rliable is not usable here")
    plots.plot_env("E-v0", [("sac", [run(0, [0.0, 1.0]), run(1, [2.0, 5.0])])], [], tmp_path)
    ax = figures[0][1].axes[0]
    line = next(line for line in ax.lines if line.get_label() == "sac, mean of 2")
    np.testing.assert_allclose(line.get_ydata(), [1.0, 3.0])
    assert "min-max (rliable missing)" in ax.get_title()


def test_iqm_curve_is_rliables_iqm_at_every_point_with_an_interval_around_it():
    from rliable import metrics

    ys = np.random.default_rng(0).normal(size=(6, 9)) * 10
    iqm, low, high = stats.iqm_curve(ys)
    np.testing.assert_allclose(iqm, [metrics.aggregate_iqm(ys[:, j]) for j in range(9)], rtol=1e-12)
    assert np.all(low <= iqm) and np.all(iqm <= high) and np.all(high - low > 0)
    assert np.all(low >= ys.min(0)) and np.all(high <= ys.max(0))
    again = stats.iqm_curve(ys)  # seeded: a rebuilt report draws the same bands
    assert all(np.array_equal(a, b) for a, b in zip(again, (iqm, low, high)))


def test_vendored_curves_end_at_the_per_seed_scores_of_their_references():
    """Each published curve's last point is, seed by seed, the reference's ``per_seed`` at its budget (both from
    the same source file): the curve and the compared number cannot drift apart."""
    from fastsac.suite.published_curves import load_curves
    from fastsac.suite.schema import load_references

    curves = load_curves()
    assert {env for _, env in curves} == {"HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5"}
    refs = {(r.source, r.env): r for rs in load_references().values() for r in rs if r.steps == 100_000}
    for key, curve in curves.items():
        ref = refs[key]
        assert curve.returns.shape == (10, len(curve.steps)) and curve.steps[-1] in (99_996, 100_000)
        np.testing.assert_allclose(curve.returns[:, -1], ref.per_seed, rtol=0, atol=0.006)  # per_seed: 2 decimals


def test_a_reference_with_a_published_curve_is_drawn_as_that_curve(figures, tmp_path):
    from fastsac.suite.published_curves import Curve

    ref = Reference(env="E-v0", source="Paper Y", score=7.0, std=None, steps=3000, measured_on="E-v4",
                    protocol="evaluation return", url="https://example.org", verified=True)  # fmt: skip
    returns = np.array([[0.0, 4.0, 6.0], [1.0, 5.0, 7.0], [2.0, 6.0, 8.0], [3.0, 7.0, 9.0]])
    curve = Curve("Paper Y", "E-v0", "E-v4", np.array([0, 1500, 3000]), returns, (0, 1, 2, 3))
    plots.plot_env("E-v0", [("sac", [run(0, [1.0, 2.0, 3.0])])], [ref], tmp_path, published={"Paper Y": curve})
    steps_ax, time_ax = (fig.axes[0] for _, fig in figures)
    line = next(line for line in steps_ax.lines if line.get_label() == "Paper Y (E-v4), IQM of 4")
    np.testing.assert_allclose(line.get_xdata(), [0, 1500, 3000])
    np.testing.assert_allclose(line.get_ydata(), [1.5, 5.5, 7.5])  # the middle two of four seeds
    assert not any(line.get_label().startswith("Paper Y @") for line in steps_ax.lines)
    assert any(line.get_label() == "Paper Y @ 3k: 7.0" for line in time_ax.lines)  # no wall time: its point
