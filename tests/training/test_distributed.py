"""Data-parallel training (fastsac.training.distributed, checkpoint_set): CPU, gloo, 2 and 3 processes.

Every multi-process test starts real processes, with torchrun (``python -m torch.distributed.run --standalone``)
or, for the fault without torchrun's agent, by hand with the environment torchrun would set. Tiny nets, eager
updates, a few hundred steps. ``FASTSAC_TEST_COMPILED_DIST=1`` adds the compiled update (~1 min of compilation).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from fastsac.training import CheckpointError, ConfigError, resume, train
from fastsac.training.checkpoint import load_checkpoint
from fastsac.training.distributed import GradientAverager, Launch, open_context, rank_device

from . import dist_worker
from .test_trainer import assert_same_state, metric_rows, tiny

WORKER = Path(dist_worker.__file__)

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="finds the worker processes through /proc")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                              "MASTER_PORT", "TORCHELASTIC_RESTART_COUNT")}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


def torchrun_cmd(nproc: int, *args: str, max_restarts: int = 0) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
            "--max-restarts", str(max_restarts), *args]  # fmt: skip


def run(cmd: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, \
        f"{' '.join(cmd)}\nexit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


def train_args(out: Path, total_steps: int = 600, **flags) -> list[str]:
    """``fastsac train`` flags of a tiny Pendulum run: 32x32 nets, batch 32 per rank, learning from step 200; the
    gymnasium env backend, which starts ~1.5 s faster per process than importing EnvPool (the learning test
    below runs the default backend)."""
    values = {"out": out, "total_steps": total_steps, "learning_starts": 200, "batch_size": 32, "eval_every": 300,
              "eval_episodes": 2, "log_every": 50, "checkpoint_every": 100, "device": "cpu", "dist_timeout": 60,
              "hidden_sizes": "32 32", "env_backend": "gymnasium", **flags}  # fmt: skip
    args = ["-m", "fastsac", "train", "--no-progress", "--no-tensorboard"]
    for key, value in values.items():
        args += [f"--{key.replace('_', '-')}", *str(value).split()]
    return args


def rank_states(run_dir: Path) -> list[dict]:
    """Every rank's learner state of the committed checkpoint set (rank 0's is latest.pt)."""
    main = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    manifest = main["distributed"]
    others = [load_checkpoint(run_dir / "checkpoints" / manifest["set"] / f"rank{r}.pt")
              for r in range(1, manifest["world_size"])]  # fmt: skip
    return [c["learner"] for c in [main, *others]]


def assert_same_run(a: Path, b: Path) -> None:
    """Bit-identical learner state on every rank (the noise generators included) and the same metric rows."""
    for sa, sb in zip(rank_states(a), rank_states(b), strict=True):
        assert_same_state(sa, sb)
    assert metric_rows(a) == metric_rows(b)


def replica_part(state: dict) -> dict:
    """A learner state without what is each rank's own: its noise generator and its metric sums."""
    return {**state, "generator": None, "metric_sums": None}


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


# ------------------------------------------------------------------------------------------------------------
# The update


def _worker_results(tmp_path: Path, nproc: int, updates: int, *mode: str) -> list[dict]:
    run(torchrun_cmd(nproc, str(WORKER), str(tmp_path), str(updates), *mode))
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(nproc)]


def _single_process_updates(results: list[dict], ranks: list[int]) -> dict:
    """A single-process learner from rank 0's initial state, updated on the ``ranks``' batches concatenated
    (and their noise, concatenated the same way): what the distributed updates must equal."""
    ref = dist_worker.SACLearner(dist_worker.OBS, dist_worker.ACT, dist_worker.learner_config(0))
    ref.load_state_dict(results[0]["initial"])
    for k in range(len(results[0]["batches"])):
        batch = [torch.cat([results[r]["batches"][k][i] for r in ranks]) for i in range(5)]
        noise = torch.cat([results[r]["noises"][k] for r in ranks], dim=1)  # (2, batch, act)
        ref._update(*batch, noise, True)  # the update itself, with this noise (update() would draw its own)
    return ref.state_dict()


def _max_diff(a: dict, b: dict) -> float:
    return max((a[m][k] - b[m][k]).abs().max().item() for m in ("actor", "critic", "target_critic") for k in a[m])


def _check_update(results: list[dict]) -> None:
    n = len(results)
    assert results[0]["world_size"] == n
    # Replicas identical after every update, bit for bit (same digests), and at the end (noise generators apart).
    for k, digests in enumerate(zip(*(r["digests"] for r in results))):
        assert len(set(digests)) == 1, f"replicas differ after update {k + 1}"
    for r in results[1:]:
        assert_same_state(replica_part(r["final"]), replica_part(results[0]["final"]))
    # Equal to single-process updates on the concatenated batch. Float tolerance: the distributed gradient is the
    # mean of N per-rank means, the single-process one a mean over N*B rows: the same sum in another order, so
    # float32 rounding (~1e-7 relative per gradient) is all that differs; Adam turns it into parameter differences
    # of ~1e-8 over these 4 updates (measured), and 1e-6 leaves room while a real difference, such as leaving out
    # the other ranks' batches (checked below to be ~1e-3), is three orders of magnitude larger.
    final = results[0]["final"]
    expected = _single_process_updates(results, list(range(n)))
    assert _max_diff(final, expected) < 1e-6
    lone = final["entropy"]["log_alpha"] - expected["entropy"]["log_alpha"]
    assert abs(lone.item()) < 1e-6
    assert _max_diff(final, _single_process_updates(results, [0])) > 1e-4


@pytest.mark.parametrize("nproc", [2, 3])
def test_replicas_stay_identical_and_equal_an_update_on_the_concatenated_batch(tmp_path, nproc):
    _check_update(_worker_results(tmp_path, nproc, 4))


@pytest.mark.skipif(os.environ.get("FASTSAC_TEST_COMPILED_DIST") != "1",
                    reason="about a minute of compilation per process; set FASTSAC_TEST_COMPILED_DIST=1")
def test_compiled_update_with_the_collective_in_its_graph(tmp_path):
    # fullgraph=True: the functional all-reduce traced into the one graph (a graph break would raise). On a CPU
    # the learner was built for the native update, which has no place for the all-reduce: attach switched it to
    # torch.compile, without a fallback (nothing failed).
    results = _worker_results(tmp_path, 2, 4, "compile")
    assert all(r["update_kind"] == "compile" and r["fallbacks"] == [] for r in results)
    _check_update(results)


# ------------------------------------------------------------------------------------------------------------
# Runs: learning, exact resume, a killed worker


@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> Path:
    """An uninterrupted 2-rank run of 600 steps (300 per rank), checkpoints every 100 steps."""
    out = tmp_path_factory.mktemp("dist") / "full"
    run(torchrun_cmd(2, *train_args(out)))
    return out


def test_a_two_rank_run_writes_one_run(full_run):
    s = summary(full_run)
    assert s["finished"] and s["total_steps"] == 600 and s["distributed"]["world_size"] == 2
    assert s["updates"] == 201  # per-rank iterations 100..300 after learning_starts (200 steps = 100 iterations)
    rows = metric_rows(full_run)
    assert [int(r["step"]) for r in rows] == list(range(50, 601, 50))  # rank 0 alone writes
    # Each rank's first 200-step episode ends at its 200th iteration, global step 400: both counted in that row.
    assert [int(r["episodes"]) for r in rows] == [2 if int(r["step"]) == 400 else 0 for r in rows]
    manifest = load_checkpoint(full_run / "checkpoints" / "latest.pt")["distributed"]
    assert manifest == {"world_size": 2, "step": 600, "set": "set-000000000600", "rank": 0}
    assert sorted(p.name for p in (full_run / "checkpoints").iterdir()) == ["latest.pt", "set-000000000600"]
    s0, s1 = rank_states(full_run)
    assert_same_state(replica_part(s0), replica_part(s1))
    assert not torch.equal(s0["generator"], s1["generator"])  # each rank its own noise stream


def test_resume_of_a_distributed_run_continues_exactly(tmp_path, full_run):
    part = tmp_path / "part"
    run(torchrun_cmd(2, *train_args(part, total_steps=300)))
    run(torchrun_cmd(2, "-m", "fastsac", "train", "--resume", str(part), "--total-steps", "600"))
    s = summary(part)
    assert s["finished"] and s["resumes"] == 1 and s["resume_exact"] is True
    assert_same_run(full_run, part)


def test_a_device_env_run_on_two_ranks_resumes_exactly(tmp_path):
    """The torch device env on 2 ranks: each rank's env steps on its own seed, the episodes tallied on the device are
    summed over ranks in the log rows, and a stopped run resumed from the envs' saved states ends as the
    uninterrupted one, on every rank."""
    full, part = tmp_path / "full", tmp_path / "part"
    run(torchrun_cmd(2, *train_args(full, total_steps=1000, env_backend="torch", num_envs=2)))
    run(torchrun_cmd(2, *train_args(part, total_steps=600, env_backend="torch", num_envs=2)))  # an evaluation step
    run(torchrun_cmd(2, "-m", "fastsac", "train", "--resume", str(part), "--total-steps", "1000"))
    s = summary(part)
    assert s["finished"] and s["env_backend"] == "torch" and s["resume_exact"] is True
    assert_same_run(full, part)
    # 2 ranks x 2 envs, 200-step episodes: every env's first episode ends at its 200th iteration, global step 800.
    rows = metric_rows(full)
    assert [int(r["episodes"]) for r in rows] == [4 if int(r["step"]) == 800 else 0 for r in rows]
    assert float(rows[15]["episode_length"]) == 200.0 and int(rows[15]["step"]) == 800
    s0, s1 = rank_states(full)
    assert_same_state(replica_part(s0), replica_part(s1))


def test_resume_with_another_number_of_processes_fails_clearly(tmp_path, full_run):
    run_dir = tmp_path / "copy"
    shutil.copytree(full_run, run_dir)
    with pytest.raises(CheckpointError, match="trained by 2 process.*torchrun --nproc-per-node 2"):
        resume(run_dir, total_steps=700)


def _children(parent: int) -> dict[int, dict[bytes, bytes]]:
    """pid -> environment of the processes whose parent is ``parent``."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) != parent:
                continue
            items = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        out[int(entry)] = dict(item.split(b"=", 1) for item in items if b"=" in item)
    return out


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, f"exited early ({proc.returncode}): {proc.communicate()[1][-4000:]}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@linux_only
def test_a_run_whose_worker_is_killed_restarts_and_finishes(tmp_path, full_run):
    out = tmp_path / "killed"
    agent = subprocess.Popen(torchrun_cmd(2, *train_args(out), max_restarts=1), env=_env(), text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        _wait_for(lambda: (out / "checkpoints" / "latest.pt").exists(), agent)
        rank1 = [pid for pid, env in _children(agent.pid).items() if env.get(b"RANK") == b"1"]
        assert len(rank1) == 1, _children(agent.pid)
        os.kill(rank1[0], signal.SIGKILL)
        _, stderr = agent.communicate(timeout=240)
    finally:
        agent.kill()
    assert agent.returncode == 0, stderr[-6000:]
    assert "resuming it (torchrun restart 1)" in stderr, stderr[-6000:]
    s = summary(out)
    assert s["finished"] and s["resumes"] == 1 and s["distributed"]["restart_count"] == 1, (s, stderr[-6000:])
    assert s["resume_exact"] is True
    assert_same_run(full_run, out)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@linux_only
def test_a_dead_rank_stops_the_job_with_a_message_naming_it(tmp_path):
    # Without torchrun's agent (which would kill the survivors itself), as under a launcher that only sets the
    # environment: the survivor's collective fails, and the heartbeat names the rank that stopped.
    out, port = tmp_path / "run", _free_port()
    procs = []
    for rank in range(2):
        env = {**_env(), "RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}  # fmt: skip
        procs.append(subprocess.Popen([sys.executable, *train_args(out, total_steps=100_000)], env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))  # fmt: skip
    try:
        _wait_for(lambda: (out / "checkpoints" / "latest.pt").exists(), procs[0])
        procs[1].kill()
        _, stderr = procs[0].communicate(timeout=120)  # a bound, not a timing: a hang fails here
    finally:
        for p in procs:
            p.kill()
    assert procs[0].returncode == 1, stderr[-4000:]
    assert "rank 0: a collective failed" in stderr and "rank(s) 1 stopped responding" in stderr, stderr[-4000:]


@pytest.mark.slow
def test_a_two_rank_pendulum_run_learns(tmp_path):
    # Pendulum's defaults with batch 128 per rank (the global batch of 256 a single process uses), utd 2 and
    # learning from step 500: by step 4000 (2000 iterations per rank) 3500 updates on 256 transitions each.
    # Measured here with seeds 0, 1, 2: -113, -126, -125 (at 3000 steps: -579, -1025, -570). Random: about -1200.
    out = tmp_path / "pendulum"
    run(torchrun_cmd(2, "-m", "fastsac", "train", "--out", str(out), "--total-steps", "4000", "--batch-size", "128",
                     "--utd", "2", "--learning-starts", "500", "--eval-every", "4000", "--device", "cpu",
                     "--no-progress", "--no-tensorboard"), timeout=600)  # fmt: skip
    assert summary(out)["final_eval_return"] > -400, metric_rows(out)[-1]


# ------------------------------------------------------------------------------------------------------------
# One process: nothing changes


def test_a_single_process_run_has_no_process_group(tmp_path):
    result = train(tiny(tmp_path / "one", total_steps=100, learning_starts=50))
    assert not torch.distributed.is_initialized()
    assert result.summary["distributed"] is None
    assert "distributed" not in load_checkpoint(result.run_dir / "checkpoints" / "latest.pt")
    with open_context(tiny(tmp_path / "unused"), Launch()) as ctx:
        assert ctx is None and not torch.distributed.is_initialized()


def test_launcher_environment_is_read_and_checked():
    env = {"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
           "TORCHELASTIC_RESTART_COUNT": "2", "TORCHELASTIC_MAX_RESTARTS": "3"}  # fmt: skip
    assert Launch.from_env(env) == Launch(1, 4, 1, 2, 2, 3)
    assert Launch.from_env({}) == Launch() and not Launch().elastic
    with pytest.raises(ConfigError, match="RANK=4, WORLD_SIZE=4"):
        Launch.from_env({"RANK": "4", "WORLD_SIZE": "4"})
    with pytest.raises(ConfigError, match="not an integer"):
        Launch.from_env({"WORLD_SIZE": "two"})


def test_each_rank_gets_a_device_of_its_own():
    two = Launch(rank=1, world_size=2, local_rank=1, local_world_size=2)
    assert rank_device("cpu", two) == torch.device("cpu")
    with pytest.raises(ConfigError, match="all 2 ranks of this node on one GPU"):
        rank_device("cuda:1", two)
    with pytest.raises(ConfigError, match="cpu .gloo. or cuda .nccl."):
        rank_device("mps", two)
    if not torch.cuda.is_available():
        assert rank_device("auto", two) == torch.device("cpu")
        with pytest.raises(ConfigError, match="CUDA is not available"):
            rank_device("cuda", two)


def test_torchrun_with_restarts_needs_an_out_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "0")
    monkeypatch.setenv("TORCHELASTIC_MAX_RESTARTS", "1")
    with pytest.raises(ConfigError, match="--max-restarts needs --out"):
        train(dataclasses.replace(tiny(tmp_path / "x"), out=None))


def test_gradient_averager_is_identity_in_a_one_rank_group(tmp_path, gen):
    """The averager's arithmetic (flatten, all-reduce, divide, views) returns the gradients' values and shapes."""
    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    try:
        grads = [torch.randn(3, 4, generator=gen), torch.randn((), generator=gen), torch.randn(5, generator=gen)]
        out = GradientAverager(dist.group.WORLD, 1)(grads)
        assert [o.shape for o in out] == [g.shape for g in grads]
        assert all(torch.equal(o, g) for o, g in zip(out, grads))
    finally:
        dist.destroy_process_group()


def test_how_a_torchrun_attempt_starts_in_an_existing_directory(tmp_path, full_run):
    """Under torchrun, ``train --out DIR``: a checkpoint means resume; a restarted attempt whose predecessor died
    before its first checkpoint (DIR holds this run's config.json only) starts over; anything else is refused
    as in a single-process run. (The whole restart-before-a-checkpoint path was also run by hand: killed at step
    150 of a run with checkpoints only at its end, the restarted job's run equalled an uninterrupted one.)"""
    from fastsac.training.api import _how_to_start
    from fastsac.training.config import config_to_dict
    from fastsac.training.rundir import write_json

    config = dataclasses.replace(tiny(tmp_path / "run"), out=str(tmp_path / "run"))
    first, restarted = Launch(restart_count=0, max_restarts=1), Launch(restart_count=1, max_restarts=1)
    assert _how_to_start(tmp_path / "run", config, first) == "new"
    write_json(tmp_path / "run" / "config.json", config_to_dict(config))
    assert _how_to_start(tmp_path / "run", config, restarted) == "restart"
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        _how_to_start(tmp_path / "run", config, first)
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        _how_to_start(tmp_path / "run", dataclasses.replace(config, seed=7), restarted)
    assert _how_to_start(full_run, config, first) == "resume"
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        _how_to_start(full_run, config, Launch())  # no torchrun: never resumed implicitly


def test_log_rows_and_stop_requests_go_through_one_all_reduce(tmp_path, monkeypatch):
    """In a one-rank gloo group: a row's metrics and window come back (averaged / summed over the one rank), a stop
    request is seen at the row after it was made, and a step that fails raises its own error."""
    from types import SimpleNamespace

    from fastsac.training.distributed import DistContext

    monkeypatch.delenv("MASTER_ADDR", raising=False)
    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    try:
        ctx = DistContext(Launch(), torch.device("cpu"), 10.0)
        local = SimpleNamespace(requested=False)
        stop = ctx.agreed_stop(local)
        metrics = {"critic_loss": 2.5, "alpha": 0.5, "num_updates": 7.0}
        window = {"episodes": 2, "return_sum": -10.0, "length_sum": 400, "last_step": 50, "last_train_time": 1.0}
        assert ctx.reduce_row(metrics, window) == (metrics, window) and not stop.requested
        local.requested = True
        assert not stop.requested  # not before the next row
        ctx.reduce_row(metrics, window)
        assert stop.requested
        with pytest.raises(ZeroDivisionError):
            ctx.agreed("dividing", lambda: 1 / 0)
        assert ctx.agreed("adding", lambda: 1 + 1) == 2
        ctx.close()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
