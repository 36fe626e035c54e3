"""The statistics of suite reports (rliable): intervals, aggregates, probability of improvement; the suite fields
that feed them ([normalization], [thresholds], [[random]]); a report rebuilt from a committed results.csv; and a
report made without rliable (simulated), which says so at its top. The test extra installs rliable, so none of
these skips: a broken install fails them."""

from __future__ import annotations

import re

import numpy as np
import pytest

from fastsac import suite as suites
from fastsac.cli import bench_main
from fastsac.suite import stats
from tests.suite.test_suites import TINY_REFERENCES, TINY_SUITE, _check_png

RANDOM = """
[[reference]]
env = "Pendulum-v1"
source = "Seeded bar"
score = 30.5
steps = 300
per_seed = [29.0, 32.0]
protocol = "test"
url = "https://example.org/seeded"
verified = true

[[random]]
env = "Pendulum-v1"
score = -1000.0
source = "test random"
protocol = "test"

[[random]]
env = "CartPole-v1"
score = 0.0
source = "test random"
protocol = "test"
"""

STATS_SUITE = TINY_SUITE.replace("[[envs]]", """[normalization]
reference = ["Low bar", "High bar"]

[thresholds]
"Pendulum-v1" = { score = 25, reason = "test" }

[[envs]]""", 1)

# The results.csv of a suite run before suites had labels (bench/suites/classic's): no label or agent column.
OLD_CSV = """suite,env,seed,step,wall_time,eval_return,sps
stats,Pendulum-v1,0,100,1.0,-900.0,100.0
stats,Pendulum-v1,0,200,2.0,20.0,100.0
stats,Pendulum-v1,0,300,3.0,30.0,100.0
stats,Pendulum-v1,1,100,1.5,-800.0,100.0
stats,Pendulum-v1,1,200,2.5,28.0,100.0
stats,Pendulum-v1,1,300,3.5,31.0,100.0
stats,CartPole-v1,0,100,1.0,100.0,100.0
stats,CartPole-v1,0,200,2.0,500.0,100.0
stats,CartPole-v1,1,100,1.0,100.0,100.0
"""


@pytest.fixture
def stats_suite(tmp_path, monkeypatch):
    refs = tmp_path / "refs.toml"
    refs.write_text(TINY_REFERENCES + RANDOM)
    monkeypatch.setattr(suites.schema, "REFERENCES_FILE", refs)
    path = tmp_path / "stats.toml"
    path.write_text(STATS_SUITE.replace('name = "tiny"', 'name = "stats"'))
    return path


def test_intervals_and_probability_of_improvement():
    x = np.arange(12, dtype=float).reshape(4, 3)
    agg = stats.aggregates({"x": x})["x"]
    assert agg["mean"][0] == pytest.approx(5.5) and agg["median"][0] == pytest.approx(5.5)
    assert agg["IQM"][0] == pytest.approx(np.mean(np.sort(x.ravel())[3:9]))
    for point, low, high in agg.values():
        assert low <= point <= high
    assert stats.aggregates({"x": x}) == {"x": agg}  # seeded: the same report twice
    assert stats.probability_of_improvement(x + 100, x)[0] == 1.0
    assert stats.probability_of_improvement(x, x)[0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="same tasks"):
        stats.probability_of_improvement(x, x[:, :2])


def test_normalization_and_thresholds_are_resolved_and_checked(stats_suite, tmp_path):
    suite = suites.load_suite(stats_suite)
    random, ref = suite.normalization["Pendulum-v1"]
    assert (random.score, ref.source, ref.score) == (-1000.0, "Low bar", 10.0)
    assert suite.normalization["CartPole-v1"][1].source == "High bar"  # the first listed source it has
    assert suite.thresholds["Pendulum-v1"] == suites.schema.Threshold(25.0, "test")
    bad = tmp_path / "bad.toml"
    bad.write_text(TINY_SUITE.replace("[[envs]]", """[normalization]
reference = "Nobody"

[thresholds]
"Nope-v0" = { score = 1 }
"Pendulum-v1" = { score = "high", reason = "x", why = 1 }

[[envs]]""", 1))
    with pytest.raises(suites.SuiteError) as e:
        suites.load_suite(bad)
    text = str(e.value)
    assert "'Pendulum-v1' has no reference from 'Nobody'" in text and "'CartPole-v1' has no reference" in text
    assert "thresholds.Nope-v0: not an env of this suite" in text
    assert "thresholds.Pendulum-v1: 'score' must be a finite number" in text and "unknown field 'why'" in text


def test_report_rebuilt_from_an_old_results_csv(stats_suite, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.csv").write_text(OLD_CSV)
    (out / "report.md").write_text("# old\n\n- Date: 2026-01-01T00:00:00; fastsac git revision abc1234\n"
                                   "- Machine: Test box, 2 CPUs\n- Command: `fastsac bench stats`\n\n## Results\n")
    assert bench_main([str(stats_suite), "--out", str(out), "--report-only"]) == 0
    assert (out / "results.csv").read_text() == OLD_CSV  # read, never rewritten
    report = (out / "report.md").read_text()
    assert "- Runs made: 2026-01-01T00:00:00 at fastsac git revision abc1234" in report
    assert "- Machine: Test box, 2 CPUs" in report and "Measured on: Test box, 2 CPUs" in report
    # Pendulum: both seeds at the 300-step budget (30, 31); CartPole: seed 0 finished (500), seed 1 stopped at 100.
    assert "| Pendulum-v1 | sac | Pendulum-v1 | 300 | 2 | 30.5 ± 0.5 | 93 | 3 s | 30.5 [30.0, 31.0] |" in report
    assert "| CartPole-v1 | sac | CartPole-v1 | 200 | 1 of 2 | 500.0; unfinished: seed 1 at 100 (100) |" in report
    # Normalized: Pendulum (x + 1000) / 1010, CartPole x / 1000 -> the seeds both envs finished: seed 0 only.
    # (1030/1010 + 500/1000) / 2 = 0.76.
    assert "| sac | Pendulum-v1, CartPole-v1 | 1 (0) | 0.76 (1 seed: no interval) | 0.76 (1 seed" in report
    # Time to 25 on Pendulum: seed 0 at step 300 (3.0 s), seed 1 at step 200 (2.5 s).
    assert "| Pendulum-v1 | sac | 25.0 | 2 of 2 seeds | 250 [200, 300] | 3 s [2 s, 3 s] |" in report
    # Per-seed published scores: P(ours > theirs) over the pairs (30 or 31 against 29 or 32): 0.5.
    assert re.search(r"\| Seeded bar \[\d\] \| = equal \| 0\.50 \[[01]\.\d\d, [01]\.\d\d\] \(2 seeds of ours vs 2\) \|",
                     report), report
    assert "| Low bar [1] | ▲ above | n/a (no per-seed values) |" in report
    _check_png(out / "plots" / "profile.png")
    assert (out / "plots" / "Pendulum-v1_steps.png").is_file()


def test_per_seed_references_are_checked(tmp_path):
    bad = tmp_path / "refs.toml"
    bad.write_text(RANDOM.replace("score = 30.5", "score = 31.5").replace("steps = 300\n", "")
                   + RANDOM.split("[[random]]")[0].replace("[29.0, 32.0]", "[29.0]"))
    with pytest.raises(suites.SuiteError) as e:
        suites.load_references(bad)
    assert "needs 'steps'" in str(e.value) or "is not the mean of 'per_seed' (30.500)" in str(e.value)
    assert "'per_seed' must be a list of two or more finite numbers" in str(e.value)


def test_a_report_without_rliable_says_so_at_its_top(stats_suite, tmp_path, monkeypatch):
    monkeypatch.setattr(stats, "missing", lambda: "rliable is not usable here (test); install the report extra")
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.csv").write_text(OLD_CSV)
    assert bench_main([str(stats_suite), "--out", str(out), "--report-only"]) == 0
    report = (out / "report.md").read_text()
    top = report.split("## Results")[0]
    assert "> **Statistics missing**: rliable is not usable here (test)" in top
    assert "| Pendulum-v1 | sac | Pendulum-v1 | 300 | 2 | 30.5 ± 0.5 | 93 | 3 s | n/a |" in report
    assert "Intervals, profiles and probabilities of improvement not computed" in report
    assert "| Pendulum-v1 | sac | 25.0 | 2 of 2 seeds | 250 (mean) |" in report
    assert not (out / "plots" / "profile.png").exists()


def test_random_scores_are_measured_and_printed_as_a_random_table(tmp_path, capsys):
    import tomllib

    from fastsac.suite.random_scores import main, measure_random

    returns = measure_random("CartPole-v1", episodes=3, seed=0)
    assert len(returns) == 3 and all(5 <= r <= 200 for r in returns)  # a random CartPole falls within ~10-60 steps
    assert measure_random("CartPole-v1", episodes=3, seed=0) == returns  # seeded
    assert main(["Pendulum-v1", "--episodes", "2"]) == 0
    (tmp_path / "r.toml").write_text(capsys.readouterr().out)
    table = suites.schema.load_random_scores(tmp_path / "r.toml")["Pendulum-v1"]
    assert -2000 < table.score < -100 and "random_scores Pendulum-v1 --episodes 2" in table.protocol
