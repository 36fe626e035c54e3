"""Suites with several agents per env (SAC and CrossQ rows): labels, run folders, per-agent references, the
results.csv columns and the report rows; and the shipped 100k-step MuJoCo suites with their published references.

The runs are made by the fake trainer of ``test_suites`` (same flags, same files, instant)."""

from __future__ import annotations

import re

import pytest

from fastsac import suite as suites
from fastsac.cli import bench_main
from fastsac.training.presets import resolve_config
from tests.suite.test_suites import _check_png, _results, fake  # noqa: F401  (fake: the fixture)

TWO_AGENTS = """
name = "agents"
description = "One env, two agents."
seeds = [0, 1]
total_steps = 200

[normalization]
reference = "Any bar"

[thresholds]
"HalfCheetah-v5" = { score = 15, reason = "a test threshold" }

[[envs]]
env = "HalfCheetah-v5"
label = "hc-sac"
preset = "HalfCheetah-v5"

[[envs]]
env = "HalfCheetah-v5"
label = "hc-crossq"
preset = "HalfCheetah-v5-crossq"
"""

REFS = """
[[reference]]
env = "HalfCheetah-v5"
source = "SAC bar"
score = 15.0
steps = 200
protocol = "test"
url = "https://example.org/sac"
verified = true
agent = "sac"

[[reference]]
env = "HalfCheetah-v5"
source = "CrossQ bar"
score = 25.0
steps = 200
protocol = "test"
url = "https://example.org/crossq"
verified = true
agent = "crossq"

[[reference]]
env = "HalfCheetah-v5"
source = "Any bar"
score = 100.0
protocol = "test"
url = "https://example.org/any"
verified = true

[[reference]]
env = "HalfCheetah-v5"
source = "Far bar"
score = 5000.0
steps = 1_000_000
protocol = "test"
url = "https://example.org/far"
verified = true
agent = "sac"

[[random]]
env = "HalfCheetah-v5"
score = 0.0
source = "test random"
protocol = "a test random policy"
"""


@pytest.fixture
def two_agents(tmp_path, fake, monkeypatch):  # noqa: F811
    (tmp_path / "agents.toml").write_text(TWO_AGENTS)
    (tmp_path / "agent_refs.toml").write_text(REFS)
    monkeypatch.setattr(suites.schema, "REFERENCES_FILE", tmp_path / "agent_refs.toml")
    return tmp_path / "agents.toml"


def test_one_env_with_two_agents_runs_reports_and_compares_per_agent(tmp_path, fake, two_agents):  # noqa: F811
    suite = suites.load_suite(two_agents)
    assert [(e.label, e.agent, e.preset_used) for e in suite.envs] == [
        ("hc-sac", "sac", "HalfCheetah-v5"), ("hc-crossq", "crossq", "HalfCheetah-v5-crossq")]
    assert [r.source for r in suite.envs[0].references] == ["SAC bar", "Any bar", "Far bar"]
    assert [r.source for r in suite.envs[1].references] == ["CrossQ bar", "Any bar"]

    out = tmp_path / "out"
    assert bench_main([str(two_agents), "--out", str(out), "--jobs", "2"], train_command=fake.command) == 0
    calls = fake.calls()
    presets = sorted(c["argv"][c["argv"].index("--preset") + 1] for c in calls)
    assert presets == ["HalfCheetah-v5", "HalfCheetah-v5", "HalfCheetah-v5-crossq", "HalfCheetah-v5-crossq"]
    for label in ("hc-sac", "hc-crossq"):
        for seed in (0, 1):
            assert suites.run_status(out / "runs" / label / f"seed{seed}") == "finished"

    rows = _results(out / "results.csv")
    assert list(rows[0]) == list(suites.RESULT_COLUMNS)
    assert {(r["env"], r["label"], r["agent"]) for r in rows} == {
        ("HalfCheetah-v5", "hc-sac", "sac"), ("HalfCheetah-v5", "hc-crossq", "crossq")}
    assert len(rows) == 2 * 2 * 2  # 2 rows x 2 seeds x 2 evaluations

    report = (out / "report.md").read_text()
    # Fake finals: 200/10 + seed -> 20, 21 for both rows.
    assert re.search(r"\| HalfCheetah-v5 \| sac \| HalfCheetah-v5 \| 200 \| 2 \| 20\.5 ± 0\.5 \|", report)
    assert re.search(r"\| HalfCheetah-v5 \| crossq \| HalfCheetah-v5-crossq \| 200 \| 2 \| 20\.5 ± 0\.5 \|", report)
    compared = re.findall(r"\| HalfCheetah-v5 \| (\w+) \| 20\.5 ± 0\.5 @ 200 \| [^|]+ \| (\w+ bar) \[\d\] \| (.)", report)
    # Like for like: only the references stated for the rows' own budget (200) are compared; "Any bar" (no
    # budget) and "Far bar" (1M) are listed under Sources only.
    assert sorted(compared) == [("crossq", "CrossQ bar", "▼"), ("sac", "SAC bar", "▲")]
    assert re.search(r"Far bar \(HalfCheetah-v5\), 5000: test\. <https://example.org/far> Not compared \(at 1M", report)
    assert "Any bar (HalfCheetah-v5), 100.0: test. <https://example.org/any> Not compared (no step budget" in report
    assert suites.stats.missing() is None, suites.stats.missing()  # the test extra installs rliable
    # Per row: IQM over the 2 seeds with its interval.
    assert re.search(r"\| HalfCheetah-v5 \| sac \| [^\n]+ \| 20\.5 \[20\.0, 21\.0\] \|\n", report), report
    # Over envs: normalized by (x - 0) / (100 - 0): finals 20, 21 -> 0.20, 0.21 for both agents.
    assert "| HalfCheetah-v5 | 0.0 | 100.0, Any bar |" in report
    assert "- HalfCheetah-v5: test random, a test random policy" in report
    for agent in ("sac", "crossq"):
        assert re.search(rf"\| {agent} \| HalfCheetah-v5 \| 2 \(0, 1\) \| 0\.2\d \[0\.20, 0\.21\] \| 0\.2\d \[0\.20, "
                         r"0\.21\] \|", report), report
    # Two agents: the probability of improvement of the pair (equal scores: 0.5).
    assert re.search(r"\| sac \| crossq \| HalfCheetah-v5 \| 0\.50 \[[01]\.\d\d, [01]\.\d\d\] \|", report), report
    assert "![performance profile](plots/profile.png)" in report
    # Time to threshold 15: first reached at the evaluation of step 200 (returns 20, 21) by both seeds.
    assert re.search(r"\| HalfCheetah-v5 \| sac \| 15\.0 \| 2 of 2 seeds \| 200 \[200, 200\] \| ", report), report
    assert "- HalfCheetah-v5: 15.0: a test threshold." in report
    assert "Measured on: Linux" in report.split("## Time to threshold")[1].split("|")[0]
    pngs = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert pngs == ["HalfCheetah-v5_steps.png", "HalfCheetah-v5_time.png", "profile.png"]  # both rows in each
    for name in pngs:
        _check_png(out / "plots" / name)


def test_labels_must_be_distinct_and_usable_as_folder_names(tmp_path, fake):  # noqa: F811
    path = tmp_path / "s.toml"
    path.write_text(TWO_AGENTS.replace('label = "hc-crossq"', 'label = "hc-sac"'))
    with pytest.raises(suites.SuiteError, match="label 'hc-sac' appears twice"):
        suites.load_suite(path)
    path.write_text(TWO_AGENTS.replace('label = "hc-crossq"', 'label = "hc/crossq"'))
    with pytest.raises(suites.SuiteError, match="'label' must be letters"):
        suites.load_suite(path)


def test_reference_agent_must_be_known(tmp_path):
    path = tmp_path / "refs.toml"
    path.write_text(REFS.replace('agent = "crossq"', 'agent = "td3"'))
    with pytest.raises(suites.SuiteError, match="'agent' must be one of sac, crossq"):
        suites.load_references(path)


def test_existing_run_of_another_agent_is_refused(tmp_path, fake, two_agents):  # noqa: F811
    suite = suites.load_suite(two_agents)
    out = tmp_path / "out"
    runs = suites.plan_runs(suite, out, seeds=[0])
    path = runs[1].path  # the crossq row's folder, holding a finished SAC run
    path.mkdir(parents=True)
    (path / "config.json").write_text('{"env_id": "HalfCheetah-v5", "seed": 0, "total_steps": 200, '
                                      '"learner": {"agent": "sac"}}')
    (path / "summary.json").write_text('{"finished": true}')
    with pytest.raises(suites.SuiteError, match="agent='sac' but this suite asks for 'crossq'"):
        suites.runner.check_existing(runs)


@pytest.mark.parametrize("name, width", [("mujoco100k", 512), ("mujoco100k-paper", 2048)])
def test_shipped_mujoco100k_suites(name, width):
    suite = suites.load_suite(name)
    envs = ["HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5"]
    agents = ("sac", "crossq", "flashsac") if name == "mujoco100k" else ("sac", "crossq")  # FlashSAC: CPU suite only
    assert [(e.env, e.agent) for e in suite.envs] == [(env, a) for env in envs for a in agents]
    assert suite.seeds == (0, 1, 2) and all(e.total_steps == 100_000 for e in suite.envs)
    # The table (SimbaV2 repository baseline CSVs, v4, 10 seeds), per agent.
    published = {"HalfCheetah-v5": (6156, 8112), "Hopper-v5": (1103, 2764), "Walker2d-v5": (690, 3914),
                 "Ant-v5": (747, 2299)}
    for e in suite.envs:
        cfg, _ = resolve_config(e.preset, {"env_id": e.env})
        assert cfg.learner.agent == e.agent
        if e.agent == "flashsac":  # FlashSAC's own curves (tests/suite/test_references.py), nothing else
            assert [(r.source, r.agent, r.steps) for r in e.references] == [("FlashSAC repo", "flashsac", 100_000)]
            continue
        simba = [r for r in e.references if r.source.startswith("SimbaV2")]
        assert len(simba) == 1 and simba[0].agent == e.agent and simba[0].verified and simba[0].steps == 100_000
        assert simba[0].measured_on == e.env.replace("-v5", "-v4") and "10 seeds" in simba[0].protocol
        assert round(simba[0].score) == published[e.env][e.agent == "crossq"]
        if e.agent == "crossq":
            assert cfg.learner.critic_widths == (width, width) and e.label.endswith(f"crossq{width if width < 2048 else ''}")
            assert all(r.agent in ("crossq", None) for r in e.references)
        else:
            assert cfg.learner.critic_widths == (256, 256)
