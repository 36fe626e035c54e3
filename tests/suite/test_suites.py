"""Benchmark suites (`fastsac bench`): suite files, validation, the process pool, resume and interruption, and the
aggregated outputs (results.csv, PNG learning curves, report.md).

Most tests drive `fastsac bench` (fastsac.suite through fastsac.cli.bench_main) with a small fake `train` command (FAKE_TRAIN below) that writes a run directory
the way the trainer does (config.json, metrics.csv, checkpoints/latest.pt, summary.json), slowly enough to be
interrupted. `test_smoke_suite_end_to_end_with_real_trainer` runs the shipped `smoke` suite through the real
`python -m fastsac bench` / `fastsac train`, end to end.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fastsac import suite as suites
from fastsac.cli import bench_main

REPO = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# A stand-in for `fastsac train`: same flags, same files. Each "chunk" of 100 steps takes FAKE_CHUNK_S seconds,
# logs one evaluation (eval_return = step/10 + seed) and writes a checkpoint holding the step reached. Every
# invocation appends its argv and pid to $FAKE_TRAIN_LOG.
FAKE_TRAIN = r'''
import argparse, json, os, sys, time
from pathlib import Path
p = argparse.ArgumentParser()
p.add_argument("--env"); p.add_argument("--seed", type=int); p.add_argument("--total-steps", type=int)
p.add_argument("--out"); p.add_argument("--preset"); p.add_argument("--num-envs", type=int)
p.add_argument("--device"); p.add_argument("--resume")
a, _ = p.parse_known_args()
with open(os.environ["FAKE_TRAIN_LOG"], "a") as f:
    f.write(json.dumps({"argv": sys.argv[1:], "pid": os.getpid()}) + "\n")
if os.environ.get("FAKE_TRAIN_FAIL") and a.env == os.environ["FAKE_TRAIN_FAIL"]:
    sys.exit(3)
chunk = float(os.environ.get("FAKE_CHUNK_S", "0"))
if a.resume:
    out = Path(a.resume)
    cfg = json.loads((out / "config.json").read_text())
    step = json.loads((out / "checkpoints" / "latest.pt").read_text())["step"]
    rows = (out / "metrics.csv").read_text().splitlines(keepends=True)  # drop rows past the checkpoint
    (out / "metrics.csv").write_text("".join(r for r in rows if r[0].isalpha() or int(r.split(",")[0]) <= step))
else:
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=False)
    cfg = {"env_id": a.env, "seed": a.seed, "total_steps": a.total_steps, "device": a.device or "cpu",
           "preset": a.preset, "num_envs": a.num_envs}
    (out / "config.json").write_text(json.dumps(cfg))
    (out / "metrics.csv").write_text("step,wall_time,sps,alpha,eval_return,episode_return\n")
    step = 0
while step < cfg["total_steps"]:
    time.sleep(chunk)
    step = min(step + 100, cfg["total_steps"])
    ret = step / 10 + cfg["seed"]
    with open(out / "metrics.csv", "a") as f:
        f.write(f"{step},{step / 1000:.3f},1000.0,0.2,{ret},\n")
    (out / "checkpoints").mkdir(exist_ok=True)
    (out / "checkpoints" / "latest.pt").write_text(json.dumps({"step": step}))
(out / "summary.json").write_text(json.dumps({"finished": True, "total_steps": step,
    "final_eval_return": step / 10 + cfg["seed"], "sps": 1000.0, "wall_time": step / 1000}))
'''

# Two cheap envs with references of our own, so the report's above/below marks are known in advance.
TINY_SUITE = """
name = "tiny"
description = "Two envs for the tests."
seeds = [0, 1]
total_steps = 300

[[envs]]
env = "Pendulum-v1"

[[envs]]
env = "CartPole-v1"
total_steps = 200
"""

TINY_REFERENCES = """
[[reference]]
env = "Pendulum-v1"
source = "Low bar"
score = 10.0
steps = 300
protocol = "test"
url = "https://example.org/low"
verified = true

[[reference]]
env = "CartPole-v1"
source = "High bar"
score = 1000.0
std = 5.0
steps = 1_000_000
protocol = "test"
url = "https://example.org/high"
verified = false
"""


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """The fake train command, its invocation log, and a tiny suite using references of its own."""
    script = tmp_path / "fake_train.py"
    script.write_text(FAKE_TRAIN)
    log = tmp_path / "invocations.jsonl"
    monkeypatch.setenv("FAKE_TRAIN_LOG", str(log))
    suite_file = tmp_path / "tiny.toml"
    suite_file.write_text(TINY_SUITE)
    refs_file = tmp_path / "refs.toml"
    refs_file.write_text(TINY_REFERENCES)
    refs = suites.load_references(refs_file)
    monkeypatch.setattr(suites.schema, "REFERENCES_FILE", refs_file)

    class Fake:
        command = [sys.executable, str(script)]
        suite_path = suite_file
        references = refs

        @staticmethod
        def calls() -> list[dict]:
            return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    return Fake


def _check_png(path: Path) -> None:
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG_MAGIC, path
    img = imread(path)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 300, (path, img.shape)
    assert img[..., :3].std() > 0.01, f"{path} is blank"


def _results(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------------------------------------------------
# Suite files


def test_shipped_suites_load_and_match_the_issue():
    names = suites.available_suites()
    assert {"classic", "mujoco", "dmc", "smoke"} <= set(names)
    envs = {name: [e.env for e in suites.load_suite(name).envs] for name in names}
    assert envs["classic"] == ["Pendulum-v1", "MountainCarContinuous-v0", "LunarLanderContinuous-v3", "CartPole-v1"]
    assert [e.split("-")[0] for e in envs["mujoco"]] == ["HalfCheetah", "Hopper", "Walker2d", "Ant", "Humanoid"]
    assert len(envs["dmc"]) >= 3 and all(e.endswith("-v1") for e in envs["dmc"])
    smoke = suites.load_suite("smoke")
    assert len(smoke.envs) == 2 and len(smoke.seeds) == 2 and all(e.total_steps <= 1000 for e in smoke.envs)
    for name in names:
        suite = suites.load_suite(name)
        assert suite.name == name and suite.description
        assert all(e.total_steps > 0 for e in suite.envs)


def test_shipped_references_have_sources_and_cover_mujoco():
    refs = suites.load_references()
    for env_refs in refs.values():
        for r in env_refs:
            assert r.url.startswith("https://") and r.source and r.protocol
    for env in ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5", "Humanoid-v5"):
        assert any(r.source == "RL Zoo SAC" and r.verified for r in refs[env]), env
    for env in ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Humanoid-v5"):
        assert any(r.source == "CleanRL SAC" for r in refs[env]), env
    assert refs["Pendulum-v1"][0].score == pytest.approx(-156.995)


def test_list_shows_every_suite_and_its_envs(capsys):
    assert bench_main(["--list"]) == 0
    out = capsys.readouterr().out
    for name in suites.available_suites():
        assert f"{name}: " in out
        for e in suites.load_suite(name).envs:
            assert e.env in out
    assert "RL Zoo SAC" in out


BAD_SUITE = """
name = "bad"
description = "broken on purpose"
seeds = [0, 0]
total_step = 100
total_steps = -5

[[envs]]
env = "Pendulum-v9"

[[envs]]
env = "CartPole-v1"
preset = "no-such-preset"
config = { num_envs = "four", seed = 3 }

[[envs]]
env = "CartPole-v1"
"""


def test_bad_suite_is_rejected_before_anything_runs(tmp_path, fake, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(BAD_SUITE)
    out = tmp_path / "out"
    code = bench_main([str(path), "--out", str(out)], train_command=fake.command)
    assert code == 2
    err = capsys.readouterr().err
    for expected in (
        "unknown field 'total_step' (did you mean 'total_steps'?)",
        "'seeds' has duplicates",
        "'total_steps' must be a positive integer, got -5",
        "unknown env id 'Pendulum-v9'",
        "did you mean 'Pendulum-v1'",
        "unknown preset 'no-such-preset'",
        "num_envs must be int, got str 'four'",
        "config.seed is set by the suite runner; use 'seeds' instead",
        "env 'CartPole-v1' appears twice (give each entry of one env its own 'label')",
    ):
        assert expected in err, (expected, err)
    assert not out.exists() and fake.calls() == []


@pytest.mark.parametrize(
    "text, message",
    [
        ("this is = not toml [", "not valid TOML"),
        ('description = "x"\nseeds = [0]\n', "'envs' must be a non-empty array"),
        ('description = "x"\nseeds = []\n[[envs]]\nenv = "Pendulum-v1"\ntotal_steps = 5\n', "'seeds' must be"),
        ('description = "x"\nseeds = [0]\n[[envs]]\nenv = "Pendulum-v1"\n', "no 'total_steps'"),
        ('seeds = [0]\n[[envs]]\nenv = "Pendulum-v1"\ntotal_steps = 5\n', "missing required field 'description'"),
        ('name = "a b"\ndescription = "x"\nseeds = [0]\n[[envs]]\nenv = "Pendulum-v1"\ntotal_steps = 5\n', "'name'"),
    ],
)
def test_malformed_suite_files(tmp_path, text, message):
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(suites.SuiteError, match=message):
        suites.load_suite(path)


def test_bad_reference_file_is_rejected(tmp_path):
    path = tmp_path / "refs.toml"
    path.write_text('[[reference]]\nenv = "Hoper-v4"\nsource = "x"\nscore = "high"\nprotocol = "p"\nurl = "u"\n')
    with pytest.raises(suites.SuiteError) as e:
        suites.load_references(path)
    msg = str(e.value)
    assert "'score' must be a finite number" in msg and "missing required field 'verified'" in msg


def test_unknown_suite_name_and_bad_options(tmp_path, fake, capsys):
    assert bench_main(["clasic"]) == 2
    assert "unknown suite 'clasic'. Did you mean 'classic'?" in capsys.readouterr().err
    assert bench_main([str(fake.suite_path), "--jobs", "0", "--out", str(tmp_path / "o")]) == 2
    assert "--jobs must be >= 1" in capsys.readouterr().err
    assert bench_main([str(fake.suite_path), "--seeds", "1", "1", "--out", str(tmp_path / "o")]) == 2
    assert "--seeds must be distinct" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() and fake.calls() == []


# ------------------------------------------------------------------------------------------------------------
# Running, skipping, resuming (fake trainer)


def test_suite_runs_every_pair_then_never_reruns_finished(tmp_path, fake):
    out = tmp_path / "out"
    argv = [str(fake.suite_path), "--out", str(out), "--jobs", "2", "--device", "cpu"]
    assert bench_main(argv, train_command=fake.command) == 0
    calls = fake.calls()
    assert len(calls) == 4
    assert sorted((c["argv"][1], c["argv"][3]) for c in calls) == [
        ("CartPole-v1", "0"), ("CartPole-v1", "1"), ("Pendulum-v1", "0"), ("Pendulum-v1", "1"),
    ]
    assert all("--device" in c["argv"] and "--resume" not in c["argv"] for c in calls)
    for env in ("Pendulum-v1", "CartPole-v1"):
        for seed in (0, 1):
            assert suites.run_status(out / "runs" / env / f"seed{seed}") == "finished"

    rows = _results(out / "results.csv")
    assert list(rows[0]) == list(suites.RESULT_COLUMNS)
    assert len(rows) == 2 * 3 + 2 * 2  # Pendulum: 300 steps = 3 evals per seed; CartPole: 200 steps = 2
    last = [r for r in rows if r["env"] == "Pendulum-v1" and r["seed"] == "1"][-1]
    assert (last["suite"], last["step"], float(last["eval_return"])) == ("tiny", "300", 31.0)
    pngs = sorted((out / "plots").glob("*.png"))
    assert [p.name for p in pngs] == [
        "CartPole-v1_steps.png", "CartPole-v1_time.png", "Pendulum-v1_steps.png", "Pendulum-v1_time.png",
    ]
    for p in pngs:
        _check_png(p)

    report = (out / "report.md").read_text()
    # Pendulum finals 30 and 31 -> 30.5 ± 0.5, above the low bar; CartPole 20, 21 -> below the high bar.
    assert re.search(r"\| Pendulum-v1 \| sac \| [^|]+ \| 300 \| 2 \| 30\.5 ± 0\.5 \| 1000 \|", report)
    assert "| Pendulum-v1 | sac | 30.5 ± 0.5 @ 300 | 10.0 @ 300 | Low bar [1] | ▲ above |" in report
    # Like for like: CartPole's reference is for 1M steps, not its 200: listed under Sources, not compared.
    assert "| CartPole-v1 | sac | | none at 200 | | |" in report
    assert "High bar (CartPole-v1), 1000: test. <https://example.org/high> **Unverified**" in report
    assert "Not compared (at 1M steps: not a row's budget)." in report
    assert "![Pendulum-v1 steps](plots/Pendulum-v1_steps.png)" in report

    # Everything is finished: a second invocation trains nothing and only re-aggregates.
    assert bench_main(argv, train_command=fake.command) == 0
    assert len(fake.calls()) == 4
    # --report-only rebuilds the outputs from the runs alone.
    for p in (out / "report.md", out / "results.csv", *pngs):
        p.unlink()
    assert bench_main([str(fake.suite_path), "--out", str(out), "--report-only"], train_command=fake.command) == 0
    assert len(fake.calls()) == 4 and len(_results(out / "results.csv")) == len(rows)
    assert (out / "report.md").read_text().split("## Results")[1] == report.split("## Results")[1]
    assert len(list((out / "plots").glob("*.png"))) == 4
    assert bench_main([str(fake.suite_path), "--out", str(tmp_path / "none"), "--report-only"]) == 2


def test_unfinished_runs_resume_and_partial_runs_restart(tmp_path, fake):
    suite = suites.load_suite(fake.suite_path, references=fake.references)
    out = tmp_path / "out"
    runs = suites.plan_runs(suite, out, seeds=[0])
    pend, cart = runs
    # Pendulum: a run that stopped at step 100 with a checkpoint; CartPole: started, no checkpoint yet.
    env = {**os.environ, "FAKE_CHUNK_S": "0"}
    subprocess.run(suites.train_argv(pend, "new", device=None, train_command=fake.command), env=env, check=True)
    (pend.path / "summary.json").unlink()
    (pend.path / "checkpoints" / "latest.pt").write_text(json.dumps({"step": 100}))
    with open(pend.path / "metrics.csv") as f:
        head = f.readlines()[:2]
    (pend.path / "metrics.csv").write_text("".join(head))
    cart.path.mkdir(parents=True)
    (cart.path / "config.json").write_text("{}")
    assert [suites.run_status(r.path) for r in runs] == ["resumable", "partial"]

    failed = suites.execute(runs, jobs=2, train_command=fake.command, echo=lambda s: None)
    assert failed == []
    calls = fake.calls()[1:]
    resumed = [c for c in calls if "--resume" in c["argv"]]
    assert [c["argv"] for c in resumed] == [["--resume", str(pend.path), "--no-progress"]]
    assert "--resume" in pend.path.with_suffix(".log").read_text()  # each run's log sits beside its folder
    steps = [int(r["step"]) for r in csv.DictReader(open(pend.path / "metrics.csv"))]
    assert steps == [100, 200, 300]  # continued from the checkpoint, not restarted
    assert [suites.run_status(r.path) for r in runs] == ["finished", "finished"]


def test_existing_runs_with_another_budget_are_refused(tmp_path, fake, capsys):
    out = tmp_path / "out"
    assert bench_main([str(fake.suite_path), "--out", str(out), "--seeds", "0"], train_command=fake.command) == 0
    n = len(fake.calls())
    code = bench_main([str(fake.suite_path), "--out", str(out), "--seeds", "0", "--total-steps", "500"],
                      train_command=fake.command)
    assert code == 2
    assert "total_steps=300 but this suite asks for 500" in capsys.readouterr().err
    assert len(fake.calls()) == n


def test_failed_run_is_reported_and_others_complete(tmp_path, fake, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_TRAIN_FAIL", "CartPole-v1")
    out = tmp_path / "out"
    assert bench_main([str(fake.suite_path), "--out", str(out)], train_command=fake.command) == 1
    err = capsys.readouterr().err
    assert "2 run(s) failed: CartPole-v1 seed 0, CartPole-v1 seed 1" in err
    assert suites.run_status(out / "runs" / "Pendulum-v1" / "seed0") == "finished"
    report = (out / "report.md").read_text()
    # the row says how many of the suite's seeds finished (these runs failed before writing anything)
    assert re.search(r"\| CartPole-v1 \| sac \| [^|]+ \| 200 \| 0 of 2 \| no finished run \|", report)
    assert re.search(r"\| Pendulum-v1 \| sac \| [^|]+ \| 300 \| 2 \| ", report)  # complete: no "of"
    assert "CartPole-v1 seed 0: not started" in report


def test_a_suite_run_in_parts_says_how_far_each_unfinished_run_got(tmp_path, fake):
    out = tmp_path / "out"
    assert bench_main([str(fake.suite_path), "--out", str(out), "--seeds", "0"], train_command=fake.command) == 0
    run = out / "runs" / "Pendulum-v1" / "seed1"  # a run stopped part-way: eval rows, summary not finished
    run.mkdir(parents=True)
    (run / "metrics.csv").write_text("step,wall_time,eval_return,sps\n100,1.0,12.5,100.0\n200,2.0,17.4,100.0\n")
    (run / "summary.json").write_text(json.dumps({"finished": False, "total_steps": 200}))
    assert bench_main([str(fake.suite_path), "--out", str(out), "--report-only"]) == 0
    report = (out / "report.md").read_text()
    assert re.search(r"\| Pendulum-v1 \| sac \| [^|]+ \| 300 \| 1 of 2 \| 30\.0 ?; unfinished: seed 1 at 200 \(17\) \|",
                     report), report


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is dead for our purpose.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_ctrl_c_stops_children_and_rerun_resumes(tmp_path, fake, monkeypatch):
    suite = suites.load_suite(fake.suite_path, references=fake.references)
    out = tmp_path / "out"
    runs = suites.plan_runs(suite, out)
    ckpts = lambda: list((out / "runs").glob("*/seed*/checkpoints/latest.pt"))  # noqa: E731

    def ctrl_c_after_two_checkpoints():
        deadline = time.monotonic() + 60
        while len(ckpts()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)  # what a terminal's Ctrl-C delivers to the runner

    monkeypatch.setenv("FAKE_CHUNK_S", "0.5")
    messages: list[str] = []
    # Ctrl-C must raise here whatever SIGINT disposition pytest inherited (ignored in background jobs).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Thread(target=ctrl_c_after_two_checkpoints, daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            suites.execute(runs, jobs=2, train_command=fake.command, echo=messages.append)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert "interrupted: stopping 2 run(s)" in messages
    first = fake.calls()
    assert len(first) == 2  # two jobs at once; the other two runs never started
    assert not any(_pid_alive(c["pid"]) for c in first), "a training process outlived Ctrl-C"
    assert sorted(suites.run_status(r.path) for r in runs) == ["new", "new", "resumable", "resumable"]

    # Again: the two interrupted runs resume from their checkpoints, the other two start, nothing else reruns.
    monkeypatch.setenv("FAKE_CHUNK_S", "0")
    assert suites.execute(runs, jobs=2, train_command=fake.command, echo=messages.append) == []
    second = fake.calls()[len(first):]
    resumed = sorted(c["argv"][1] for c in second if "--resume" in c["argv"])
    assert resumed == sorted(str(suites.run_dir(out, c["argv"][1], int(c["argv"][3]))) for c in first)
    assert len(second) == 4
    for r in runs:
        assert suites.run_status(r.path) == "finished"
        steps = [int(row["step"]) for row in csv.DictReader(open(r.path / "metrics.csv"))]
        assert steps == list(range(100, r.entry.total_steps + 1, 100))  # no evaluation lost or repeated
    assert suites.execute(runs, jobs=2, train_command=fake.command, echo=messages.append) == []
    assert len(fake.calls()) == 6  # all finished: nothing started


@pytest.mark.slow  # 55 s in a full suite run on the 2-core CI machine, 148 s beside another test run
def test_smoke_suite_end_to_end_with_real_trainer(tmp_path):
    """`python -m fastsac bench smoke` with the real trainer: Ctrl-C mid-suite, then the same command resumes it
    and writes results.csv, valid PNGs and the report."""
    out = tmp_path / "smoke"
    argv = [sys.executable, "-m", "fastsac", "bench", "smoke", "--out", str(out), "--jobs", "2",
            "--total-steps", "300", "--device", "cpu"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ckpts = lambda: list((out / "runs").glob("*/seed*/checkpoints/latest.pt"))  # noqa: E731
    deadline = time.monotonic() + 240
    while len(ckpts()) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(ckpts()) >= 1 and proc.poll() is None, proc.communicate(timeout=60)[0]
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=180)
    assert proc.returncode == 130, output
    assert not (out / "report.md").exists()
    statuses = {p: suites.run_status(p) for p in (out / "runs").glob("*/seed*") if p.is_dir()}
    interrupted = sorted(p for p, s in statuses.items() if s == "resumable")
    assert interrupted and "partial" not in statuses.values(), (statuses, output)

    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    resumed = sorted(Path(line.split(" -> ")[1]) for line in done.stdout.splitlines() if line.startswith("[resume]"))
    assert resumed == interrupted, done.stdout
    for p in interrupted:
        assert "--resume" in p.with_suffix(".log").read_text()
    rows = _results(out / "results.csv")
    for env_id in ("Pendulum-v1", "CartPole-v1"):
        for seed in ("0", "1"):
            steps = [int(r["step"]) for r in rows if r["env"] == env_id and r["seed"] == seed]
            assert steps == [100, 200, 300], (env_id, seed, steps)  # eval_every=100; none lost or repeated
            assert suites.run_status(out / "runs" / env_id / f"seed{seed}") == "finished"
    assert all(r["suite"] == "smoke" and r["eval_return"] and float(r["wall_time"]) > 0 for r in rows)
    pngs = sorted((out / "plots").glob("*.png"))
    assert len(pngs) == 5  # steps and time per env, and the normalized scores' profile (smoke has [normalization])
    for p in pngs:
        _check_png(p)
    report = (out / "report.md").read_text()
    assert re.search(r"\| Pendulum-v1 \| sac \| [^|]+ \| 300 \| 2 \|", report)
    assert re.search(r"\| CartPole-v1 \| sac \| [^|]+ \| 300 \| 2 \|", report)
    # RL Zoo's Pendulum score is for 20k steps, not 300: cited under Sources, not compared.
    assert "| Pendulum-v1 | sac | | none at 300 | | |" in report
    assert re.search(r"1\. RL Zoo SAC \(Pendulum-v1\), -157\.0: .* Not compared \(at 20k steps", report), report


def test_only_runs_the_named_entries_and_rejects_unknown_ones(fake, tmp_path):
    suite = suites.load_suite(fake.suite_path, references=fake.references)
    first = suite.envs[0]
    runs = suites.plan_runs(suite, tmp_path, seeds=[0, 1], only=[first.label])
    assert {r.entry.label for r in runs} == {first.label} and [r.seed for r in runs] == [0, 1]
    with pytest.raises(suites.SuiteError, match="no entry .* labelled 'Nope-v0'"):
        suites.plan_runs(suite, tmp_path, only=["Nope-v0"])


def test_a_partial_suite_run_says_what_it_runs(fake, tmp_path, capsys):
    label = suites.load_suite(fake.suite_path, references=fake.references).envs[0].label
    argv = [str(fake.suite_path), "--out", str(tmp_path / "o"), "--seeds", "3", "--only", label]
    assert bench_main(argv, train_command=fake.command) == 0
    assert "1 runs (1 of 2 entries x 1 seeds)" in capsys.readouterr().out
