"""The training loop, checkpoints and resume (fastsac.training: session, checkpoint, config).

CPU only, seeded, CI-sized. The two learning tests are real (a return threshold measured across seeds, with
margin); everything else uses a few hundred steps of a 32x32 network.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import shutil
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch

from fastsac.data import envs
from fastsac.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from fastsac.training.config import ConfigError, TrainConfig, config_from_dict, config_to_dict
from fastsac.training.metrics_log import METRIC_COLUMNS
from fastsac.training import evaluate, resume, train

ENV_BACKENDS = ["gymnasium"] + (["envpool"] if envs.envpool_available() else [])


def tiny(out: Path, **overrides) -> TrainConfig:
    """400 steps of Pendulum (200 updates) with a 32x32 net: a few seconds on a CPU."""
    values = dict(
        out=str(out),
        total_steps=400,
        learning_starts=200,
        batch_size=32,
        eval_every=250,
        eval_episodes=2,
        log_every=50,
        checkpoint_every=0,
        progress=False,
        tensorboard=False,
        update="eager",
        device="cpu",
        learner={"hidden_sizes": [32, 32]},
    )
    values.update(overrides)
    return config_from_dict(values)


def learner_state(run_dir: Path) -> dict:
    return load_checkpoint(Path(run_dir) / "checkpoints" / "latest.pt")["learner"]


def assert_same_state(a, b, path="learner"):
    """Bit-for-bit equality of two nested state dicts."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, path
        assert torch.equal(a, b), f"{path} differs (max abs diff {(a.double() - b.double()).abs().max().item()})"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{path}: keys {sorted(a)} vs {sorted(b)}"
        for k in a:
            assert_same_state(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{path}[{i}]")
    else:
        assert a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)), f"{path}: {a!r} != {b!r}"


def stopped_and_resumed(tmp_path: Path, **overrides):
    """A :func:`tiny` run of 400 steps, and the same stopped at step 250 (mid-episode, 51 of its 201 updates done)
    and resumed to 400; asserts the resumed run is exact (same learner state bit for bit, same metric rows) and
    returns ``(full, part, resumed)``."""
    full = train(tiny(tmp_path / "full", **overrides))
    part = train(tiny(tmp_path / "part", **{**overrides, "total_steps": 250}))
    assert part.total_steps == 250
    resumed = resume(part.run_dir, total_steps=400)
    assert resumed.summary["resume_exact"] is True and resumed.summary["resumes"] == 1
    assert_same_state(learner_state(full.run_dir), learner_state(resumed.run_dir))
    assert metric_rows(full.run_dir) == metric_rows(resumed.run_dir)
    return full, part, resumed


def metric_rows(run_dir: Path, drop=("wall_time", "sps")) -> list[dict]:
    with open(Path(run_dir) / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k not in drop} for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    """One finished 100-step run; tests that damage or extend a run get a copy (``copy_run``)."""
    return train(tiny(tmp_path_factory.mktemp("base") / "run", total_steps=100, learning_starts=50)).run_dir


@pytest.fixture
def copy_run(base_run, tmp_path):
    def make() -> Path:
        dst = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
        shutil.copytree(base_run, dst)  # a moved run: resume writes into where it is now
        return dst

    return make


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()
    }


# ------------------------------------------------------------------------------------------------------------
# Learning


def _eval_returns(run_dir: Path) -> list[float]:
    return [float(r["eval_return"]) for r in metric_rows(run_dir) if r["eval_return"]]


@pytest.mark.slow
def test_continuous_sac_learns_pendulum(tmp_path):
    # The default configuration (the Pendulum-v1 setting), stopped at half its 10k steps. Measured here with seeds
    # 0, 1, 2 (docs/training.md): -112, -124, -123 at 5k steps (-109, -121, -122 at 10k). A random policy: ~-1200.
    cfg = TrainConfig(out=str(tmp_path / "pendulum"), total_steps=5_000, eval_every=5_000, device="cpu",
                      update="eager", progress=False, tensorboard=False)  # fmt: skip
    result = train(cfg)
    assert result.final_eval_return > -400, _eval_returns(result.run_dir)


@pytest.mark.slow
def test_discrete_sac_learns_cartpole(tmp_path):
    # The CartPole-v1 preset's learner, 4k steps. Measured here with seeds 0, 1, 2: 228, 210, 252 (of 500) at 4k
    # steps; a random policy scores ~20.
    cfg = tiny(
        tmp_path / "cartpole",
        env_id="CartPole-v1",
        total_steps=4_000,
        learning_starts=1_000,
        batch_size=128,
        eval_every=4_000,
        eval_episodes=10,
        log_every=1_000,
        learner={"hidden_sizes": [64, 64], "actor_lr": 1e-3, "critic_lr": 1e-3},
    )
    result = train(cfg)
    assert result.final_eval_return > 120, _eval_returns(result.run_dir)


@pytest.mark.slow
@pytest.mark.parametrize("update", ["native", "compile"])
def test_compiled_run(tmp_path, update):
    # The compiled runs of the suite (torch.compile's: ~1 min of compilation on a small CPU): the trainer drives
    # the fast updates like the eager one.
    run = train(tiny(tmp_path / "compiled", update=update, total_steps=300, learning_starts=100))
    assert run.summary["update"] == update and run.summary["updates"] == 201
    assert run.summary["update_kind"] == update
    rows = metric_rows(run.run_dir)
    assert all(math.isfinite(float(r["critic_loss"])) for r in rows if r["critic_loss"])
    assert math.isfinite(run.final_eval_return)


def test_a_default_cpu_run_decides_on_the_native_update_and_says_so(tmp_path, capsys):
    """No --update flag: 1,000 updates repay the native update's start, so the run uses it and says why, what
    runs and what its first call took; summary.json keeps the decision and the kind."""
    run = train(tiny(tmp_path / "run", update="auto", total_steps=1_200, learning_starts=200))
    summary = run.summary
    assert summary["update"] == "native" and summary["update_kind"] == "native" and summary["updates"] == 1_001
    assert summary["update_reason"].startswith("1,000 updates x ~") and "native C++ update's first call" in \
        summary["update_reason"]
    assert summary["first_call_seconds"] > 0
    err = capsys.readouterr().err
    assert "update: native: the native update (csrc/sac_update_cpu.cpp)" in err
    assert "native (nothing to compile; checked against the eager update)" in err
    assert math.isfinite(run.final_eval_return)


# ------------------------------------------------------------------------------------------------------------
# Truncation vs termination (a tiny registered gymnasium env)


class _CounterEnv(gymnasium.Env):
    """obs = [t, 1]: t counts steps since reset; terminates at ``terminate_at`` (if given), else only the
    TimeLimit from the registration ends episodes (truncation)."""

    def __init__(self, terminate_at: int | None = None):
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.terminate_at = terminate_at
        self.t = 0

    def _obs(self):
        return np.array([self.t, 1.0], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        terminated = self.terminate_at is not None and self.t >= self.terminate_at
        return self._obs(), 1.0, terminated, False, {}


gymnasium.register("FastsacTestTruncate-v0", entry_point=_CounterEnv, max_episode_steps=5)
gymnasium.register("FastsacTestTerminate-v0", entry_point=_CounterEnv, kwargs={"terminate_at": 3},
                   max_episode_steps=50)  # fmt: skip


@pytest.mark.parametrize("env_id, last_t, terminal", [("FastsacTestTruncate-v0", 5, 0.0), ("FastsacTestTerminate-v0", 3, 1.0)])
def test_truncation_bootstraps_and_termination_does_not(tmp_path, env_id, last_t, terminal):
    cfg = tiny(tmp_path / "run", env_id=env_id, env_backend="gymnasium", num_envs=2, total_steps=40,
               learning_starts=40, save_buffer=True, eval_episodes=1, eval_every=0)  # fmt: skip
    train(cfg)
    buf = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")["buffer"]
    t, t_next, done = buf["obs"][:, 0], buf["next_obs"][:, 0], buf["terminated"]
    assert buf["size"] == 40
    # Every stored transition goes one step forward: the reset observation (t=0) never appears as a next obs,
    # and the last transition of an episode stores the real final observation (t = last_t).
    assert torch.equal(t_next, t + 1)
    ends = t_next == last_t
    assert ends.sum() == 2 * (40 // 2 // last_t)
    # Bootstrap mask 1 - terminated: 1 on truncated ends (time limit) and on every ordinary step, 0 only on
    # true terminations.
    assert torch.all(done[ends] == terminal)
    assert torch.all(done[~ends] == 0.0)


# ------------------------------------------------------------------------------------------------------------
# Reproducibility and resume


def test_two_seeded_runs_are_identical(tmp_path):
    a = train(tiny(tmp_path / "a", seed=3))
    b = train(tiny(tmp_path / "b", seed=3))
    assert_same_state(learner_state(a.run_dir), learner_state(b.run_dir))
    assert metric_rows(a.run_dir) == metric_rows(b.run_dir)
    c = train(tiny(tmp_path / "c", seed=4))
    assert not torch.equal(learner_state(a.run_dir)["actor"]["mean.weight"], learner_state(c.run_dir)["actor"]["mean.weight"])


@pytest.mark.parametrize(
    "env_backend, save_buffer", [("gymnasium", False)] + ([("envpool", False), ("envpool", True)] if "envpool" in
                                                          ENV_BACKENDS else [("gymnasium", True)])
)  # fmt: skip
def test_resume_continues_exactly(tmp_path, env_backend, save_buffer):
    # Stop at step 250: in the middle of a 200-step Pendulum episode, so the env state must be restored exactly
    # (and after the first reset, which the replay must reproduce too).
    full, part, resumed = stopped_and_resumed(tmp_path, env_backend=env_backend, save_buffer=save_buffer)
    assert resumed.final_eval_return == full.final_eval_return
    summary = json.loads((part.run_dir / "summary.json").read_text())
    assert summary["finished"] and summary["total_steps"] == 400


def test_resume_replaces_rows_logged_after_the_checkpoint(copy_run):
    run_dir = copy_run()
    # Simulate a crash after the checkpoint: a row for step 150 was logged but never checkpointed.
    with open(run_dir / "metrics.csv", "a") as f:
        f.write("150" + "," * (len(METRIC_COLUMNS) - 1) + "\n")
    resume(run_dir, total_steps=150)
    rows = metric_rows(run_dir)
    assert [int(r["step"]) for r in rows] == [50, 100, 150]
    assert rows[-1]["episodes"] != ""  # the resumed run's row, not the stale one


def test_resume_of_a_finished_run_without_more_steps_returns_its_result(copy_run):
    run_dir = copy_run()
    before = tree_digest(run_dir)
    again = resume(run_dir)
    assert again.final_eval_return == json.loads((run_dir / "summary.json").read_text())["final_eval_return"]
    assert tree_digest(run_dir) == before


def test_resume_env_reset_needs_a_saved_buffer(tmp_path, copy_run):
    run_dir = copy_run()
    with pytest.raises(CheckpointError, match="save_buffer"):
        resume(run_dir, total_steps=150, resume_env="reset")
    run2 = train(tiny(tmp_path / "run2", total_steps=100, learning_starts=50, save_buffer=True))
    res = resume(run2.run_dir, total_steps=150, resume_env="reset")
    assert res.total_steps == 150 and res.summary["resume_exact"] is False
    # The envs restarted from a new seed at step 100; a later replay resume reproduces them from there, and the
    # buffer stays in the checkpoints (replay cannot rebuild it) even when save_buffer is turned off.
    res = resume(run2.run_dir, total_steps=200, save_buffer=False)
    assert res.total_steps == 200 and res.summary["resume_exact"] is True
    assert load_checkpoint(run2.run_dir / "checkpoints" / "latest.pt")["buffer"]["size"] == 200
    res = resume(run2.run_dir, total_steps=250)
    assert res.summary["resume_exact"] is True


def test_evaluate_matches_the_runs_last_evaluation(tmp_path):
    run = train(tiny(tmp_path / "run"))
    ev = evaluate(run.run_dir, episodes=2)
    assert ev.step == 400 and len(ev.returns) == 2
    assert ev.mean_return == pytest.approx(run.final_eval_return, rel=0, abs=1e-9)


# ------------------------------------------------------------------------------------------------------------
# Bad input: a clear error, and nothing written or overwritten


def test_unknown_env_id_suggests_close_matches_and_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="Pendulum-v1"):
        train(tiny(tmp_path / "run", env_id="Pendulm-v1"))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "override, message",
    [({"num_envs": 0}, "num_envs must be >= 1"), ({"total_steps": -5}, "total_steps must be >= 1"),
     ({"utd": -1.0}, "utd"), ({"batch_size": 0}, "batch_size"), ({"device": "gpu"}, "device")],
)  # fmt: skip
def test_invalid_values_raise_and_write_nothing(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        train(tiny(tmp_path / "run", **override))
    assert not (tmp_path / "run").exists()


def test_wrong_types_and_unknown_keys_are_rejected():
    with pytest.raises(ConfigError, match="total_steps must be int"):
        config_from_dict({"total_steps": "many"})
    with pytest.raises(ConfigError, match="did you mean 'total_steps'"):
        config_from_dict({"total_step": 5})
    with pytest.raises(ConfigError, match="did you mean 'actor_lr'"):
        config_from_dict({"learner": {"actor_lrr": 1e-3}})
    with pytest.raises(ConfigError, match="top-level 'seed'"):
        config_from_dict({"learner": {"seed": 1}})
    with pytest.raises(ConfigError, match="gamma"):
        config_from_dict({"learner": {"gamma": 2.0}})


def test_config_round_trips_through_a_dict():
    cfg = config_from_dict({"env_id": "Hopper-v5", "utd": 2, "learner": {"hidden_sizes": [8, 16]}})
    again = config_from_dict(json.loads(json.dumps(config_to_dict(cfg))))
    assert again == cfg and again.learner.hidden_sizes == (8, 16) and again.utd == 2.0


def test_existing_run_is_never_overwritten(copy_run):
    run_dir = copy_run()
    before = tree_digest(run_dir)
    with pytest.raises(ConfigError, match="--resume"):
        train(tiny(run_dir, total_steps=100, learning_starts=50))
    assert tree_digest(run_dir) == before


def test_resume_rejects_changed_settings(copy_run):
    run_dir = copy_run()
    before = tree_digest(run_dir)
    with pytest.raises(CheckpointError, match="env_id"):
        resume(run_dir, env_id="CartPole-v1")
    with pytest.raises(CheckpointError, match="learner.actor_lr"):
        resume(run_dir, learner={"actor_lr": 0.1})
    with pytest.raises(ConfigError, match="own directory"):
        resume(run_dir, total_steps=200, out=str(run_dir.parent / "elsewhere"))
    assert tree_digest(run_dir) == before


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        resume(tmp_path / "nothing-here")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="latest.pt does not exist"):
        resume(tmp_path / "empty")
    with pytest.raises(CheckpointError, match="does not exist"):
        evaluate(tmp_path / "empty")


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty", "other_torch_file"])
def test_corrupt_checkpoint_is_reported_and_nothing_is_overwritten(copy_run, damage):
    run_dir = copy_run()
    ckpt = run_dir / "checkpoints" / "latest.pt"
    data = ckpt.read_bytes()
    if damage == "truncate":
        ckpt.write_bytes(data[: len(data) // 2])
    elif damage == "flip":  # one byte inside the stored tensors: only the zip CRCs reveal it
        bad = bytearray(data)
        bad[len(bad) // 2] ^= 0xFF
        ckpt.write_bytes(bytes(bad))
    elif damage == "garbage":
        ckpt.write_bytes(b"not a checkpoint at all\n" * 10)
    elif damage == "empty":
        ckpt.write_bytes(b"")
    else:
        torch.save({"weights": torch.ones(3)}, ckpt)
    before = tree_digest(run_dir)
    with pytest.raises(CheckpointError, match="corrupt|truncated|not a fastsac checkpoint|empty|not a readable"):
        resume(run_dir, total_steps=150)
    with pytest.raises(CheckpointError):
        evaluate(run_dir)
    assert tree_digest(run_dir) == before


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, {"x": torch.arange(4)})
    good = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"x": torch.arange(8)})
    assert path.read_bytes() == good  # the old checkpoint is intact
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]  # and no temp file is left behind
    assert torch.equal(load_checkpoint(path)["x"], torch.arange(4))


def test_run_directory_layout(tmp_path):
    run = train(tiny(tmp_path / "run", tensorboard=True))
    d = run.run_dir
    config = json.loads((d / "config.json").read_text())
    assert config["env_id"] == "Pendulum-v1" and config["total_steps"] == 400
    assert config_from_dict(config) == tiny(tmp_path / "run", tensorboard=True)
    with open(d / "metrics.csv", newline="") as f:
        header = next(csv.reader(f))
    assert tuple(header) == METRIC_COLUMNS
    rows = metric_rows(d, drop=())
    assert [int(r["step"]) for r in rows] == [50, 100, 150, 200, 250, 300, 350, 400]
    assert [bool(r["eval_return"]) for r in rows] == [False] * 4 + [True, False, False, True]
    assert all(float(r["sps"]) > 0 and float(r["alpha"]) > 0 for r in rows)
    assert rows[-1]["critic_loss"] and rows[0]["critic_loss"] == ""  # no updates before learning_starts
    assert list((d / "tb").glob("events.out.tfevents.*"))
    summary = json.loads((d / "summary.json").read_text())
    assert summary["finished"] is True and summary["total_steps"] == 400
    assert summary["final_eval_return"] == float(rows[-1]["eval_return"])
    assert summary["sps"] > 0 and summary["wall_time"] > 0
    assert (d / "checkpoints" / "latest.pt").is_file()


def test_fractional_utd_and_multiple_envs(tmp_path):
    run = train(tiny(tmp_path / "run", num_envs=4, utd=0.25, total_steps=400, learning_starts=200))
    # Updates start once 200 steps are in; 0.25 update per env step = 1 per 4-env iteration.
    assert run.summary["updates"] == (400 - 200) // 4 + 1
    assert run.total_steps == 400
