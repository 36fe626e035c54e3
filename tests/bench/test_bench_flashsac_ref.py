"""bench/bench_flashsac_ref.py without the heavy run: its arguments, where it finds FlashSAC's source (and the error
when there is none), and the table and JSON it makes from a fake measurement, rounds interleaved."""

from __future__ import annotations

import importlib.util
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "bench_flashsac_ref", Path(__file__).resolve().parents[2] / "bench" / "bench_flashsac_ref.py")
ref = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("bench_flashsac_ref", ref)
_spec.loader.exec_module(ref)


def _their_tree(root: Path) -> Path:
    agent = root / ref.AGENT_MODULE
    agent.parent.mkdir(parents=True)
    agent.write_text("class FlashSACAgent: pass\n")
    return root


def test_defaults_and_argument_errors():
    a = ref.parse_args([])
    assert a.threads == [1, 2] and a.ours_agent == "flashsac" and a.ours_update == ["auto"]
    assert a.theirs_compile == ["on", "off"] and a.compile_mode == "auto" and a.parts == ["update", "e2e"]
    a = ref.parse_args(["--ours-agent", "sac", "--ours-update", "auto", "eager", "compile", "--threads", "2",
                        "--theirs-compile", "off"])
    assert a.ours_agent == "sac" and a.ours_update == ["auto", "eager", "compile"] and a.threads == [2]
    assert a.use_compile is False
    for bad in (["--iters", "3"], ["--iters", "0"], ["--ours-update", "fast"], ["--threads", "0"],
                ["--theirs-compile", "maybe"]):
        with pytest.raises(SystemExit):
            ref.parse_args(bad)


def test_missing_source_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(ref.SourceMissing, match="FlashSAC's source was not found"):
        ref.find_source(str(tmp_path / "nowhere"), tmp_path / "no-mirror", tmp_path / "cache")
    assert ref.main(["--flashsac-src", str(tmp_path / "nowhere"), "--flashsac-mirror", str(tmp_path / "none"),
                     "--src-cache", str(tmp_path / "cache")]) == 2
    err = capsys.readouterr().err
    assert "FlashSAC's source was not found" in err and "--flashsac-src" in err


def test_source_is_used_as_is_or_exported_from_git(tmp_path):
    tree = _their_tree(tmp_path / "tree")
    assert ref.find_source(str(tree), tmp_path / "no-mirror", tmp_path / "cache") == tree
    repo = _their_tree(tmp_path / "repo")
    (repo / "configs").mkdir()
    (repo / "configs" / "x.yaml").write_text("a: 1\n")
    for cmd in (["init", "-q"], ["add", "."], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"]):
        subprocess.run(["git", "-C", str(repo), *cmd], check=True)
    (repo / ref.AGENT_MODULE).unlink()  # only the commit holds it now: the export must come from git
    got = ref.find_source(None, repo, tmp_path / "cache")
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert got == tmp_path / "cache" / commit.strip()[:12] and (got / ref.AGENT_MODULE).is_file()
    assert (got / "configs" / "x.yaml").read_text() == "a: 1\n"
    assert ref.find_source(None, repo, tmp_path / "cache") == got  # exported once


def _fake_theirs(ms, sps):
    return {"update_ms": ms, "first_call_s": 30.0, "second_call_s": 2.0, "first_act_s": 1.0, "burn_in_s": 5.0,
            "fill_s": 4.0, "e2e_sps": sps, "sample_ms": [0.2] * len(ms), "compile_mode": "max-autotune"}


def _fake_ours(ms, sps):
    return {"update_ms": ms, "first_call_s": 0.5, "gemm_gflops": [100.0, 100.0], "flops": 2e9,
            "flops_from": "cost.learner_update_flops", "e2e_sps": sps}


def test_summary_table_and_ratios_from_a_fake_measurement():
    raw = {2: [{"theirs-compile": _fake_theirs([100.0, 110.0, 120.0], 5.0),
                "ours-auto": _fake_ours([40.0, 50.0], 20.0)},
               {"theirs-compile": _fake_theirs([200.0, 200.0, 200.0], 4.0), "ours-auto": _fake_ours([50.0], 12.0)}]}
    s = ref.summarize(raw)[2]
    theirs, ours = s["providers"]["theirs-compile"], s["providers"]["ours-auto"]
    assert theirs["update_ms"][0] == statistics.median([100, 110, 120, 200, 200, 200])
    assert theirs["update_ms"][1] > 0 and ours["update_ms"][0] == 50.0
    assert theirs["e2e_sps"] == 4.5 and ours["first_call_s"] == 0.5 and theirs["sample_ms"] == pytest.approx(0.2)
    assert ours["gflop"] == 2.0 and ours["floor_ms"] == pytest.approx(20.0)  # 2 GFLOP at 100 GFLOP/s
    r = s["ratios"]["ours-auto/theirs-compile"]
    assert r["update_ms"] == pytest.approx(statistics.median([45 / 110, 50 / 200]))  # per round, then median
    assert r["e2e_sps"] == pytest.approx(statistics.median([20 / 5, 12 / 4]))
    table = ref.format_table(ref.summarize(raw))
    assert "theirs-compile" in table and "ours-auto/theirs-compile" in table
    assert f"{r['update_ms']:.2f}x" in table and f"{r['e2e_sps']:.2f}x" in table and "40%" in table
    json.dumps(ref.summarize(raw))


def test_main_interleaves_rounds_and_writes_json(tmp_path, monkeypatch, capsys):
    tree = _their_tree(tmp_path / "tree")
    python = tmp_path / "python"
    python.write_text("")
    calls = []

    def fake_child(python_, role, threads, a, **extra):
        name = "ours" if role == "ours" else f"theirs-{'compile' if extra['compile'] == 'on' else 'eager'}"
        calls.append((name, threads))
        if role == "ours":
            return {"update": {u: {"first_call_s": 0.5, "ms": [10.0, 11.0]} for u in a.ours_update},
                    "gemm_gflops": [50.0], "flops": 1e9, "flops_from": "cost.learner_update_flops"}
        return _fake_theirs([100.0, 90.0], 3.0 if extra["compile"] == "on" else 4.0)

    monkeypatch.setattr(ref, "run_child", fake_child)
    monkeypatch.setattr(ref, "our_e2e", lambda a, threads, update: 30.0)
    out = tmp_path / "r.json"
    assert ref.main(["--flashsac-src", str(tree), "--flashsac-python", str(python), "--threads", "1", "2",
                     "--rounds", "2", "--ours-agent", "sac", "--json", str(out)]) == 0
    assert [c[0] for c in calls[:3]] == ["theirs-compile", "theirs-eager", "ours"]
    assert [c[0] for c in calls[3:6]] == ["ours", "theirs-eager", "theirs-compile"]  # round 2: reversed
    assert [c[1] for c in calls] == [1] * 6 + [2] * 6
    saved = json.loads(out.read_text())
    assert set(saved["summary"]) == {"1", "2"} and len(saved["raw"]["2"]) == 2
    ratio = saved["summary"]["1"]["ratios"]["ours-auto/theirs-compile"]
    assert ratio["update_ms"] == pytest.approx(10.5 / 95) and ratio["e2e_sps"] == pytest.approx(10.0)
    printed = capsys.readouterr().out
    assert "ours --agent sac" in printed and "ours-auto/theirs-eager" in printed
