"""The shipped published references and what each shipped suite does with them: FlashSAC's per-seed scores at 100k
(vendored from its repository) and their comparison with flashsac rows only; every shipped suite's [normalization]
and [thresholds], and a report built for each from a results.csv; a suite with neither says so in its report; and
the committed mujoco100k report rebuilt from its committed results.csv."""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from fastsac import suite as suites
from fastsac.cli import bench_main
from fastsac.suite import stats
from fastsac.suite.report import write_outputs
from tests.suite.test_suites import fake  # noqa: F401  (the fixture: a tiny suite with references of its own)

REPO = Path(__file__).resolve().parents[2]
MUJOCO = ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5", "Humanoid-v5")
FLASHSAC_CSV = ("https://github.com/Holiday-Robot/FlashSAC/blob/87edc9061150ae9e962dd84e6544e27a1554b3ab/"
                "results/stateRL_cpusim/FlashSAC.csv")
# FlashSAC's published means at 100k steps ± the std over its 5 seeds, as issue 26 quotes them.
FLASHSAC_100K = {"HalfCheetah-v5": (9815, 155), "Hopper-v5": (2121, 1052), "Walker2d-v5": (3299, 1556),
                 "Ant-v5": (3196, 1534), "Humanoid-v5": (6138, 2196)}


def _flashsac(refs, env_id):
    found = [r for r in refs[env_id] if r.source == "FlashSAC repo"]
    assert len(found) == 1, (env_id, found)
    return found[0]


# ------------------------------------------------------------------------------------------------------------
# FlashSAC's vendored per-seed scores


def test_flashsac_references_recompute_the_published_means_and_stds():
    refs = suites.load_references()
    for env_id in MUJOCO:
        ref = _flashsac(refs, env_id)
        assert ref.agent == "flashsac" and ref.verified and ref.url == FLASHSAC_CSV
        assert ref.steps == 100_000 and ref.measured_on == env_id.replace("-v5", "-v4")
        for words in ("avg_return", "50 episodes", "100,000", "population std", "5 seeds", "v4", "1 env", "UTD 1"):
            assert words in ref.protocol, (env_id, words)
        seeds = np.array(ref.per_seed)
        assert seeds.shape == (5,)  # seeds 0, 1000, 2000, 3000, 4000, in that order
        mean, std = FLASHSAC_100K[env_id]
        assert round(seeds.mean()) == mean and ref.score == pytest.approx(seeds.mean(), abs=0.005)
        # The spread is the population std (ddof 0); the sample std (ddof 1) is sqrt(5/4) larger.
        assert round(seeds.std(ddof=0)) == std and ref.std == pytest.approx(seeds.std(ddof=0), abs=0.005)
        assert round(seeds.std(ddof=1)) != std
    # Spot values from FlashSAC.csv at env step 100,000 (seed 0 of HalfCheetah-v4, seed 3000 of Hopper-v4).
    assert _flashsac(refs, "HalfCheetah-v5").per_seed[0] == 9738.21
    assert _flashsac(refs, "Hopper-v5").per_seed[3] == 853.61


def test_references_name_known_agents_and_no_source_twice(tmp_path):
    from fastsac.agents.config import AGENTS

    assert "flashsac" in AGENTS  # the schema checks `agent` against AGENTS itself
    agents = {r.agent for env_refs in suites.load_references().values() for r in env_refs}
    assert "flashsac" in agents and agents <= {*AGENTS, None}
    bad = tmp_path / "refs.toml"
    bad.write_text((REPO / "fastsac/suite/definitions/references.toml").read_text()
                   .replace('agent = "flashsac"', 'agent = "flash-sac"', 1))
    with pytest.raises(suites.SuiteError, match="'agent' must be one of sac, crossq, flashsac"):
        suites.load_references(bad)
    # One source per agent and env at 100k: FlashSAC's beside SimbaV2's SAC and CrossQ columns, none duplicated.
    for env_refs in suites.load_references().values():
        pairs = [(r.agent, r.source, r.steps) for r in env_refs]
        assert len(pairs) == len(set(pairs))


# ------------------------------------------------------------------------------------------------------------
# flashsac rows: compared with FlashSAC's references, and with nothing of another agent


def test_mujoco100k_flashsac_rows_see_the_flashsac_reference_only():
    suite = suites.load_suite("mujoco100k")
    envs = ["HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5"]
    flash = [e for e in suite.envs if e.agent == "flashsac"]
    assert [(e.env, e.label, e.preset) for e in flash] == [(env, f"{env}-flashsac", f"{env}-flashsac") for env in envs]
    # Whole envs first: each env's rows are adjacent, in the file's env order.
    assert [e.env for e in suite.envs] == [env for env in envs for _ in range(3)]
    for e in suite.envs:
        sources = {r.source for r in e.references if r.steps == e.total_steps}
        if e.agent == "flashsac":
            assert [r.source for r in e.references] == ["FlashSAC repo"]
        else:
            assert "FlashSAC repo" not in sources and all(r.agent in (e.agent, None) for r in e.references)


HALFCHEETAH_ROWS = """
name = "mujoco100k"
description = "The HalfCheetah rows of mujoco100k."
seeds = [0, 1, 2]
total_steps = 100_000

[[envs]]
env = "HalfCheetah-v5"
label = "HalfCheetah-v5-sac"
preset = "HalfCheetah-v5"

[[envs]]
env = "HalfCheetah-v5"
label = "HalfCheetah-v5-crossq512"
preset = "HalfCheetah-v5-crossq-512"

[[envs]]
env = "HalfCheetah-v5"
label = "HalfCheetah-v5-flashsac"
preset = "HalfCheetah-v5-flashsac"
"""


def test_a_finished_flashsac_row_is_compared_with_flashsac_per_seed_scores(tmp_path):
    """A flashsac row with 3 finished seeds, beside SAC and CrossQ rows with none: its line in "Against published
    results" sets it beside FlashSAC's 100k mean with P(ours > reference) over FlashSAC's 5 per-seed scores."""
    path = tmp_path / "hc.toml"
    path.write_text(HALFCHEETAH_ROWS)
    suite = suites.load_suite(path)
    out = tmp_path / "out"
    out.mkdir()
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["suite", "env", "label", "agent", "seed", "step", "wall_time", "eval_return", "sps"])
        for seed, final in enumerate([9000.0, 9800.0, 10500.0]):  # mean 9766.7, below 9815.07
            w.writerow(["mujoco100k", "HalfCheetah-v5", "HalfCheetah-v5-flashsac", "flashsac", seed, 50_000, 900.0,
                        final / 2, 55.0])
            w.writerow(["mujoco100k", "HalfCheetah-v5", "HalfCheetah-v5-flashsac", "flashsac", seed, 100_000,
                        1800.0, final, 55.0])
    write_outputs(suite, out, from_results=True)
    report = (out / "report.md").read_text()
    table = report.split("## Against published results")[1].split("\n## ")[0]
    rows = [line for line in table.splitlines() if line.startswith("| HalfCheetah-v5 |")]
    flash = [line for line in rows if "| flashsac |" in line]
    assert len(flash) == 1 and "| 9815 ± 155 @ 100k | FlashSAC repo [" in flash[0] and "▼ below" in flash[0]
    assert re.search(r"\| 0\.\d\d \[0\.\d\d, [01]\.\d\d\] \(3 seeds of ours vs 5\) \|$", flash[0]), flash[0]
    assert "SimbaV2" not in flash[0]
    sac = [line for line in rows if "| sac |" in line]
    crossq = [line for line in rows if "| crossq |" in line]
    assert len(sac) == 1 and "SimbaV2 repo SAC" in sac[0] and "no finished run" in sac[0]
    assert len(crossq) == 1 and "SimbaV2 repo CrossQ" in crossq[0]
    assert "FlashSAC" not in sac[0] + crossq[0]
    assert "| HalfCheetah-v5 | flashsac | HalfCheetah-v5-flashsac | 100k | 3 | 9767 ± 613 |" in report


# ------------------------------------------------------------------------------------------------------------
# Every shipped suite: [normalization] and [thresholds] for every env, and a report that builds


def _write_results(suite, out: Path) -> None:
    """One finished seed per entry (the first), evaluated at half its budget and at its budget."""
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["suite", "env", "label", "agent", "seed", "step", "wall_time", "eval_return", "sps"])
        for i, e in enumerate(suite.envs):
            for step in (e.total_steps // 2, e.total_steps):
                w.writerow([suite.name, e.env, e.label, e.agent, suite.seeds[0], step, step / 100, 10.0 * (i + 1),
                            100.0])


@pytest.mark.parametrize("name", suites.available_suites())
def test_every_shipped_suite_normalizes_times_and_reports(name, tmp_path, monkeypatch):
    suite = suites.load_suite(name)
    envs = list(dict.fromkeys(e.env for e in suite.envs))
    # Each env has its 0 (a random-policy score measured here) and its 1 (a published reference), and a threshold
    # with its reason.
    assert list(suite.normalization) == envs and set(suite.thresholds) == set(envs)
    for env_id, (random, ref) in suite.normalization.items():
        assert "random_scores " + env_id in random.protocol and ref.url.startswith("https://")
        assert ref.agent in (None, "sac")  # the scale: a SAC (or solved-threshold) figure for every agent alike
        assert ref.score > random.score
    for th in suite.thresholds.values():
        assert len(th.reason) > 20
    # The report builds (bootstrap left out to keep this quick: the statistics have their own tests).
    monkeypatch.setattr(stats, "missing", lambda: "rliable left out by this test")
    out = tmp_path / name
    out.mkdir()
    _write_results(suite, out)
    write_outputs(suite, out, from_results=True)
    report = (out / "report.md").read_text()
    results = report.split("## Results")[1].split("\n## ")[0]
    assert sum(line.startswith(f"| {e.env}") for e in suite.envs for line in results.splitlines()) >= len(suite.envs)
    assert f"| 1 of {len(suite.seeds)} |" in results
    against = report.split("## Against published results")[1].split("\n## ")[0]
    for e in suite.envs:
        assert re.search(rf"^\| {re.escape(e.env)}[^|]* \| {e.agent} \|", against, re.M), (e.label, against)
    normalized = report.split("## Over envs (normalized scores)")[1].split("\n## ")[0]
    for env_id, (random, ref) in suite.normalization.items():
        assert f"| {env_id} | " in normalized and ref.source in normalized
        assert f"- {env_id}: {random.source}" in normalized
    timed = report.split("## Time to threshold")[1].split("\n## ")[0]
    for env_id, th in suite.thresholds.items():
        assert f"- {env_id}: " in timed and th.reason in timed
    assert "No threshold for" not in timed
    for env_id in envs:
        assert (out / "plots" / f"{env_id}_steps.png").is_file()


def test_smoke_suite_says_nothing_is_compared_at_its_budget(tmp_path, monkeypatch):
    """No published score exists at 400 steps: every row says so, the scales and thresholds come from elsewhere."""
    suite = suites.load_suite("smoke")
    monkeypatch.setattr(stats, "missing", lambda: "rliable left out by this test")
    out = tmp_path / "smoke"
    out.mkdir()
    _write_results(suite, out)
    write_outputs(suite, out, from_results=True)
    report = (out / "report.md").read_text()
    assert "| Pendulum-v1 | sac | | none at 400 | | |" in report and "| CartPole-v1 | sac | | none at 400 | | |" in report
    assert "| Pendulum-v1 | -1224 | -157.0 @ 20k, RL Zoo SAC |" in report
    assert "| CartPole-v1 | 24.1 | 475.0, Gymnasium solved threshold |" in report
    assert "| CartPole-v1 | sac | 475.0 | 0 of 1 seeds | not reached | not reached |" in report


def test_a_suite_without_normalization_or_thresholds_says_what_is_missing(tmp_path, fake, monkeypatch):  # noqa: F811
    monkeypatch.setattr(stats, "missing", lambda: "rliable left out by this test")
    suite = suites.load_suite(fake.suite_path)
    assert not suite.normalization and not suite.thresholds
    out = tmp_path / "out"
    out.mkdir()
    _write_results(suite, out)
    write_outputs(suite, out, from_results=True)
    report = (out / "report.md").read_text()
    assert "Not computed: the suite names no `[normalization]` reference." in report
    assert "## Time to threshold\n\nNot computed: the suite names no `[thresholds]` (no return to reach)." in report


def test_a_suite_with_thresholds_for_some_envs_names_the_others(tmp_path, fake, monkeypatch):  # noqa: F811
    monkeypatch.setattr(stats, "missing", lambda: "rliable left out by this test")
    text = fake.suite_path.read_text().replace("[[envs]]", '[thresholds]\n"Pendulum-v1" = { score = 10, reason = '
                                                         '"a test threshold" }\n\n[[envs]]', 1)
    path = tmp_path / "some.toml"
    path.write_text(text)
    suite = suites.load_suite(path)
    out = tmp_path / "out"
    out.mkdir()
    _write_results(suite, out)
    write_outputs(suite, out, from_results=True)
    report = (out / "report.md").read_text()
    assert "- No threshold for CartPole-v1: not in the suite's `[thresholds]`, not timed." in report


# ------------------------------------------------------------------------------------------------------------
# The committed mujoco100k report


@pytest.mark.slow  # ~40 s on the 2-core machine: the full rliable bootstrap of a 12-row report
def test_committed_mujoco100k_report_rebuilds_as_committed(tmp_path):
    """`fastsac bench mujoco100k --report-only` on a copy of the committed results.csv and report.md gives the
    committed report again (but for the line saying when it was rebuilt): the committed one is current."""
    committed = REPO / "bench" / "suites" / "mujoco100k"
    out = tmp_path / "mujoco100k"
    out.mkdir()
    for name in ("results.csv", "report.md"):
        shutil.copy(committed / name, out / name)
    assert bench_main(["mujoco100k", "--out", str(out), "--report-only"]) == 0
    assert (out / "results.csv").read_bytes() == (committed / "results.csv").read_bytes()

    def body(text: str) -> list[str]:
        return [line for line in text.splitlines() if not line.startswith("- Report rebuilt ")]

    rebuilt = (out / "report.md").read_text()
    assert body(rebuilt) == body((committed / "report.md").read_text())
    # flashsac: HalfCheetah's and Hopper's seed 0 finished, each set beside FlashSAC's 5 per-seed scores
    for env_id, published in (("HalfCheetah-v5", "9815 ± 155"), ("Hopper-v5", "2121 ± 1052")):
        assert re.search(rf"\| {env_id} \| flashsac \| {env_id}-flashsac \| 100k \| 1 of 3 \| \d+ \|", rebuilt), env_id
        assert re.search(rf"\| {env_id} \| flashsac \| \d+ @ 100k \| {published} @ 100k \| FlashSAC repo \[\d+\] \| "
                         r"[▲▼] (above|below) \| [01]\.\d\d \[[01]\.\d\d, [01]\.\d\d\] \(1 seed of ours, fixed; their 5 "
                         r"resampled\) \|", rebuilt), env_id
    for env_id in ("Walker2d-v5", "Ant-v5"):
        assert re.search(rf"\| {env_id} \| flashsac \| {env_id}-flashsac \| 100k \| 0 of 3 \| no finished run"
                         r"(; unfinished: seed 0 at \d+k \(\d+\))? \| \| \| \|", rebuilt), env_id
        assert re.search(rf"\| {env_id} \| flashsac \| n/a \| [\d ±]+ @ 100k \| FlashSAC repo \[\d+\] \| no finished "
                         r"run \| \|", rebuilt), env_id


def test_a_suite_run_in_parts_keeps_the_runs_results_csv_holds(tmp_path, monkeypatch):
    """Rerunning part of a suite whose earlier run folders are gone: the new run folder replaces its own (entry,
    seed) rows of results.csv and every other row stays (mujoco100k's SAC seed 0 rows are only in results.csv)."""
    from fastsac.suite import report, results

    path = tmp_path / "hc.toml"
    path.write_text(HALFCHEETAH_ROWS)
    suite = suites.load_suite(path)
    out = tmp_path / "out"
    out.mkdir()
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(results.RESULT_COLUMNS)
        for seed in (0, 1):
            w.writerow(["mujoco100k", "HalfCheetah-v5", "HalfCheetah-v5-flashsac", "flashsac", seed, 100_000, 1800.0,
                        9000.0 + seed, 55.0])
    new = results.RunRecord("HalfCheetah-v5", 1, out / "runs" / "x" / "seed1", True, [(100_000, 1700.0, 9500.0, 60.0)],
                            100_000, 9500.0, 60.0, 1700.0, "cpu")
    monkeypatch.setattr(report, "collect", lambda suite, out: {e.label: ([new] if "flashsac" in e.label else [])
                                                               for e in suite.envs})
    write_outputs(suite, out)
    rows = list(csv.DictReader(open(out / "results.csv")))
    flash = sorted((int(r["seed"]), float(r["eval_return"])) for r in rows if r["label"] == "HalfCheetah-v5-flashsac")
    assert flash == [(0, 9000.0), (1, 9500.0)]
