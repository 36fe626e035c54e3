"""The ``fastsac`` command line (fastsac.cli, python -m fastsac) and the presets it resolves."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fastsac import cli
from fastsac.training.checkpoint import load_checkpoint
from fastsac.training.config import ConfigError, TrainConfig, config_from_dict, field_specs
from fastsac.training.presets import PRESETS_DIR, available_presets, load_preset, resolve_config
from fastsac.training.metrics_log import METRIC_COLUMNS
from fastsac.training import train

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1",
       "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}  # fmt: skip

# A CI-sized run: 300 steps of Pendulum, 200 updates of a 32x32 net.
SMALL = ["--total-steps", "300", "--learning-starts", "100", "--batch-size", "32", "--hidden-sizes", "32", "32",
         "--eval-every", "150", "--eval-episodes", "2", "--log-every", "50", "--device", "cpu", "--no-progress"]  # fmt: skip


def run_cli(*args: str, timeout: float = 300, **popen) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fastsac", *args], capture_output=True, text=True, timeout=timeout,
                          env=popen.pop("env", ENV), cwd=popen.pop("cwd", ROOT), **popen)  # fmt: skip


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def _flag(spec) -> str:
    return "--" + spec.path[-1].replace("_", "-")


# ------------------------------------------------------------------------------------------------------------
# Help and flags


def test_train_help_lists_every_documented_flag():
    parser = cli.build_parser()
    text = _norm(parser._subparsers._group_actions[0].choices["train"].format_help())
    specs = field_specs(TrainConfig)
    assert len(specs) > 30
    for spec in specs:
        assert _flag(spec) in text, f"{_flag(spec)} missing from `fastsac train --help`"
        assert _norm(spec.help)[:40] in text, f"help of {_flag(spec)} missing"
    for flag in ("--env", "--preset", "--resume", "--update", "--num-envs", "--total-steps", "--seed", "--device",
                 "--backend", "--out"):  # fmt: skip
        assert flag in text


def test_python_m_fastsac_help():
    top = run_cli("--help")
    assert top.returncode == 0, top.stderr
    for command in ("train", "eval", "bench", "presets"):
        assert command in top.stdout
    train_help = run_cli("train", "--help")
    assert train_help.returncode == 0 and "--total-steps" in train_help.stdout and "--actor-lr" in train_help.stdout


def test_flags_become_nested_overrides():
    args = cli.build_parser().parse_args(["train", "--env", "Hopper-v5", "--update", "eager", "--actor-lr", "0.01",
                                          "--hidden-sizes", "8", "16", "--target-entropy", "auto"])  # fmt: skip
    assert cli.train_overrides(args) == {
        "env_id": "Hopper-v5",
        "update": "eager",
        "learner": {"actor_lr": 0.01, "hidden_sizes": [8, 16], "target_entropy": None},
    }


# ------------------------------------------------------------------------------------------------------------
# Presets and precedence


def test_shipped_presets_are_valid_and_name_their_source():
    names = available_presets()
    for required in ("Pendulum-v1", "HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5", "Humanoid-v5",
                     "CartPole-v1", "LunarLanderContinuous-v3", "MountainCarContinuous-v0", "CheetahRun-v1"):  # fmt: skip
        assert required in names
    for name in names:
        text = (PRESETS_DIR / f"{name}.toml").read_text()
        assert text.startswith("#") and re.search(r"(?i)source|cleanrl|zoo|pytorch_sac|measured", text), name
        values = load_preset(name)
        env = values["env_id"]
        # <env> (SAC), <env>-crossq[-variant] or <env>-flashsac
        agent = "sac" if name == env else name[len(env) + 1 :].split("-")[0] if name.startswith(f"{env}-") else None
        assert agent in ("sac", "crossq", "flashsac"), name
        cfg, used = resolve_config(name)
        assert used == name and cfg.env_id == env
        assert cfg.learner.agent == agent, name


def test_pendulum_preset_equals_the_defaults():
    cfg, used = resolve_config("Pendulum-v1")
    assert used == "Pendulum-v1" and cfg == TrainConfig()


def test_precedence_defaults_then_preset_then_flags(tmp_path):
    preset = tmp_path / "mine.toml"
    preset.write_text('# test\nenv_id = "Hopper-v5"\nbatch_size = 128\ntotal_steps = 777\n[learner]\ngamma = 0.9\n')
    args = cli.build_parser().parse_args(["train", "--preset", str(preset), "--batch-size", "64", "--gamma", "0.95"])
    cfg, used = resolve_config(args.preset, cli.train_overrides(args))
    assert used == str(preset)
    assert cfg.batch_size == 64 and cfg.learner.gamma == 0.95  # flags beat the preset
    assert cfg.total_steps == 777 and cfg.env_id == "Hopper-v5"  # the preset beats the defaults
    assert cfg.learning_starts == TrainConfig().learning_starts  # untouched fields keep their defaults


def test_auto_preset_follows_the_env():
    cfg, used = resolve_config("auto", {"env_id": "HalfCheetah-v5"})
    assert used == "HalfCheetah-v5" and cfg.learning_starts == 5_000 and cfg.total_steps == 1_000_000
    cfg, used = resolve_config("none", {"env_id": "HalfCheetah-v5"})
    assert used is None and cfg == dataclasses.replace(TrainConfig(), env_id="HalfCheetah-v5")
    cfg, used = resolve_config("auto", {"env_id": "Pusher-v5"})  # no preset of that name
    assert used is None


def test_bad_presets_are_rejected(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("batchsize = 3\n[learner]\nactor_lrr = 1.0\n")
    with pytest.raises(ConfigError) as info:
        load_preset(str(bad))
    assert "'batch_size'" in str(info.value) and "'actor_lr'" in str(info.value)
    with pytest.raises(ConfigError, match="Did you mean 'HalfCheetah-v5'"):
        load_preset("HalfCheetah-v4")
    broken = tmp_path / "broken.toml"
    broken.write_text("total_steps = = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_preset(str(broken))
    res = run_cli("train", "--preset", str(bad), "--out", str(tmp_path / "run"))
    assert res.returncode == 2 and "batch_size" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "run").exists()


def test_presets_command_lists_presets(capsys):
    assert cli.main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "HalfCheetah-v5" in out and "CartPole-v1" in out


# ------------------------------------------------------------------------------------------------------------
# End to end


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "run"
    res = run_cli("train", *SMALL, "--out", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "final eval return" in res.stdout
    return out


def test_cli_train_writes_the_run_directory(cli_run):
    config = json.loads((cli_run / "config.json").read_text())
    assert config["total_steps"] == 300 and config["learner"]["hidden_sizes"] == [32, 32]
    assert config["env_id"] == "Pendulum-v1" and config["out"] == str(cli_run)
    with open(cli_run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for column in ("step", "wall_time", "sps", "alpha", "eval_return", "episode_return", "critic_loss",
                   "actor_loss", "entropy"):  # fmt: skip
        assert column in rows[0]
    assert tuple(rows[0]) == METRIC_COLUMNS
    assert [int(r["step"]) for r in rows] == [50, 100, 150, 200, 250, 300]
    assert rows[2]["eval_return"] and rows[-1]["eval_return"] and not rows[0]["eval_return"]
    assert list((cli_run / "tb").glob("events.out.tfevents.*"))
    ckpt = load_checkpoint(cli_run / "checkpoints" / "latest.pt")
    assert ckpt["counters"]["step"] == 300
    summary = json.loads((cli_run / "summary.json").read_text())
    assert summary["finished"] is True and summary["total_steps"] == 300
    assert summary["final_eval_return"] == pytest.approx(float(rows[-1]["eval_return"]))


def test_cli_eval(cli_run):
    res = run_cli("eval", str(cli_run), "--episodes", "2")
    assert res.returncode == 0, res.stderr
    summary = json.loads((cli_run / "summary.json").read_text())
    mean = float(re.search(r"mean return over 2 episodes at step 300: (-?[\d.]+)", res.stdout).group(1))
    assert mean == pytest.approx(summary["final_eval_return"], abs=0.01)
    assert json.loads((cli_run / "eval.json").read_text())["returns"]


def test_cli_eval_video_without_moviepy_says_what_to_install(cli_run, tmp_path):
    hidden = tmp_path / "no_moviepy"  # a moviepy that fails to import, first on the path: as if it were absent
    (hidden / "moviepy").mkdir(parents=True)
    (hidden / "moviepy" / "__init__.py").write_text("raise ImportError('No module named moviepy')\n")
    env = {**ENV, "PYTHONPATH": os.pathsep.join(p for p in (str(hidden), ENV.get("PYTHONPATH", "")) if p)}
    res = run_cli("eval", str(cli_run), "--episodes", "1", "--video", env=env)
    assert res.returncode == 2 and "moviepy" in res.stderr and 'pip install "fastsac[video]"' in res.stderr
    assert not (cli_run / "videos").exists()


def test_cli_eval_video(cli_run):  # the test set-up installs the video extra (moviepy, pygame)
    res = run_cli("eval", str(cli_run), "--episodes", "1", "--video")
    assert res.returncode == 0, res.stderr[-2000:]
    assert list((cli_run / "videos").glob("*.mp4"))


def test_cli_bad_input_is_a_clear_error_and_writes_nothing(tmp_path, cli_run):
    res = run_cli("train", "--env", "Pendulm-v1", "--out", str(tmp_path / "a"))
    assert res.returncode == 2 and "Pendulum-v1" in res.stderr and "Traceback" not in res.stderr
    res = run_cli("train", "--num-envs", "0", "--out", str(tmp_path / "b"))
    assert res.returncode == 2 and "num_envs must be >= 1" in res.stderr
    res = run_cli("train", "--total-steps", "-3", "--out", str(tmp_path / "c"))
    assert res.returncode == 2 and "total_steps must be >= 1" in res.stderr
    assert not any(tmp_path.iterdir())
    res = run_cli("train", "--resume", str(tmp_path / "missing"))
    assert res.returncode == 2 and "does not exist" in res.stderr
    before = sorted((p.name, p.stat().st_mtime_ns) for p in cli_run.rglob("*"))
    res = run_cli("train", *SMALL, "--out", str(cli_run))
    assert res.returncode == 2 and "refusing to overwrite" in res.stderr and "--resume" in res.stderr
    res = run_cli("train", "--resume", str(cli_run), "--env", "CartPole-v1")
    assert res.returncode == 2 and "env_id" in res.stderr
    assert sorted((p.name, p.stat().st_mtime_ns) for p in cli_run.rglob("*")) == before
    res = run_cli("train", "--batch-size", "lots")
    assert res.returncode == 2 and "invalid int value" in res.stderr


def test_sigint_checkpoints_and_resume_matches_an_uninterrupted_run(tmp_path):
    flags = [*SMALL, "--total-steps", "800", "--eval-every", "400"]
    out = tmp_path / "interrupted"
    proc = subprocess.Popen([sys.executable, "-m", "fastsac", "train", *flags, "--out", str(out)], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    metrics = out / "metrics.csv"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # wait for the second row: training is under way
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    assert "--resume" in stderr
    stopped_at = load_checkpoint(out / "checkpoints" / "latest.pt")["counters"]["step"]
    assert 100 <= stopped_at < 800
    assert json.loads((out / "summary.json").read_text())["finished"] is False

    res = run_cli("train", "--resume", str(out))
    assert res.returncode == 0, res.stderr[-2000:]

    # The same run without interruption, in this process.
    reference = train(config_from_dict({
        "total_steps": 800, "learning_starts": 100, "batch_size": 32, "eval_every": 400, "eval_episodes": 2,
        "log_every": 50, "device": "cpu", "progress": False, "out": str(tmp_path / "reference"),
        "learner": {"hidden_sizes": [32, 32]},
    }))  # fmt: skip
    a = load_checkpoint(out / "checkpoints" / "latest.pt")
    b = load_checkpoint(reference.run_dir / "checkpoints" / "latest.pt")
    assert a["counters"]["step"] == b["counters"]["step"] == 800
    for part in ("actor", "critic", "target_critic"):
        for key, value in b["learner"][part].items():
            assert torch.equal(a["learner"][part][key], value), f"{part}.{key} differs after resume (stopped at {stopped_at})"
    assert torch.equal(a["learner"]["entropy"]["log_alpha"], b["learner"]["entropy"]["log_alpha"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["finished"] and summary["resume_exact"] is True
    assert summary["final_eval_return"] == reference.final_eval_return


def test_bench_subcommand_is_forwarded(capsys):
    assert cli.main(["bench", "--list"]) == 0
    assert capsys.readouterr().out.strip()


# ------------------------------------------------------------------------------------------------------------
# Exit codes: 2 for bad input only, 1 for a failure while running


@pytest.mark.parametrize("error", [
    torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    RuntimeError("CUDA error: an illegal memory access was encountered"),
], ids=["oom", "runtime"])
def test_a_failure_while_running_exits_1_with_its_message(monkeypatch, capsys, tmp_path, error):
    import fastsac.training

    def failing(*args, **kwargs):
        raise error

    monkeypatch.delenv("FASTSAC_DEBUG", raising=False)
    monkeypatch.setattr(fastsac.training, "train", failing)
    assert cli.main(["train", "--device", "cpu", "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert f"fastsac: failed: {type(error).__name__}: {error}" in err and "fastsac: error:" not in err
    monkeypatch.setattr(fastsac.training, "evaluate", failing)
    assert cli.main(["eval", str(tmp_path / "run")]) == 1


def test_a_strict_fallback_is_a_failure_not_bad_input(monkeypatch, capsys, tmp_path):
    import fastsac.training
    from fastsac.fallbacks import FallbackError

    def failing(*args, **kwargs):
        raise FallbackError("fastsac: fallback: torch.compile of the SACLearner update failed (...)")

    monkeypatch.setattr(fastsac.training, "train", failing)
    assert cli.main(["train", "--device", "cpu", "--out", str(tmp_path / "run")]) == 1
    assert "FallbackError" in capsys.readouterr().err


def test_an_unavailable_backend_named_explicitly_is_bad_input(tmp_path):
    res = run_cli("train", *SMALL, "--backend", "triton", "--out", str(tmp_path / "run"),
                  env={**ENV, "TRITON_INTERPRET": "0"})
    assert res.returncode == 2, res.stderr[-2000:]
    assert "backend 'triton' cannot run here" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "run").exists()
