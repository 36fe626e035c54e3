"""The update and thread rules (fastsac.training.resolve.decide_update, decide_threads): measured constants,
explicit flags win, resumes keep their decision."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from fastsac.agents import LearnerConfig
from fastsac.training.config import ConfigError, TrainConfig
from fastsac.training.presets import resolve_config
from fastsac.agents.cost import update_flops
from fastsac.training import resolve
from fastsac.training.resolve import (CPU_COMPILE_SECONDS, NATIVE_FIRST_CALL_SECONDS, decide_threads, decide_update,
                                      expected_updates)

CPU = torch.device("cpu")


def test_the_pendulum_quick_start_and_a_halfcheetah_run_run_the_native_update():
    """The native update costs a few hundredths of a second to start, so both default runs pay for it (the
    README's set-up builds it, so this runs wherever the suite does)."""
    pendulum = TrainConfig()
    decision = decide_update(pendulum, CPU, 3, 1, False)
    assert decision.backend == "native" and decision.reason.endswith(": native (--update to choose)")
    assert f"{expected_updates(pendulum):,} updates" in decision.reason
    cheetah, _ = resolve_config("auto", {"env_id": "HalfCheetah-v5"})
    assert decide_update(cheetah, CPU, 17, 6, False).backend == "native"


def test_the_native_update_pays_from_a_few_hundred_updates():
    def backend(steps, hidden):
        cfg = TrainConfig(total_steps=steps, learning_starts=0, learner=LearnerConfig(hidden_sizes=hidden))
        return decide_update(cfg, CPU, 17, 6, False).backend

    assert backend(100, (64, 64)) == "eager" and backend(1_000, (64, 64)) == "native"
    assert backend(200, (256, 256)) == "native"
    assert NATIVE_FIRST_CALL_SECONDS < 1.0


@pytest.mark.parametrize("where", ["torch ops", "discrete torch ops", "data parallel"])
def test_where_the_native_update_does_not_apply_torch_compiles_cost_decides(where):
    """Pendulum's 9,000 updates of 2x64 networks do not repay a torch.compile, and the reason says why the native
    update was not the choice."""
    config = TrainConfig(backend="torch" if "torch ops" in where else "auto")
    decision = decide_update(config, CPU, 3, 1, where.startswith("discrete"), data_parallel=where == "data parallel")
    assert decision.backend == "eager"
    assert decision.reason.endswith(f": {decision.backend} (--update to choose)")
    assert "s to compile (no native update: " in decision.reason
    assert {"torch ops": "the 'torch' backend", "discrete torch ops": "the 'torch' backend",
            "data parallel": "grad_reducer"}[where] in decision.reason


def test_crossq_runs_its_native_update_as_sac_does_and_compiles_where_it_does_not_apply():
    """CrossQ's native update is priced as SAC's (its first call, against CrossQ's own product count): a short run
    and the HalfCheetah 512 preset take it; with observation normalization (no native update) the Pendulum run's
    wider CrossQ networks still repay a torch.compile."""
    quick = TrainConfig(learner=TrainConfig().learner.with_agent("crossq"))
    decision = decide_update(quick, CPU, 3, 1, False)
    assert decision.backend == "native" and "native C++ update's first call" in decision.reason
    short = TrainConfig(total_steps=300, learning_starts=0, learner=quick.learner)
    assert decide_update(short, CPU, 17, 6, False).backend == "native"
    cheetah, preset = resolve_config("HalfCheetah-v5-crossq-512", {})
    assert cheetah.learner.agent == "crossq" and decide_update(cheetah, CPU, 17, 6, False).backend == "native"
    normed = TrainConfig(learner=dataclasses.replace(quick.learner, obs_norm=True))
    decision = decide_update(normed, CPU, 3, 1, False)
    assert decision.backend == "compile" and "observation normalization" in decision.reason


def test_the_break_even_grows_with_the_compile_cost_and_shrinks_with_the_network():
    """torch.compile (where the native update does not apply): a 2x256 run compiles from a few thousand updates
    on, a 2x64 one only from ten thousand and more."""
    def backend(steps, hidden):
        cfg = TrainConfig(total_steps=steps, learning_starts=0, backend="torch",
                          learner=LearnerConfig(hidden_sizes=hidden))
        return decide_update(cfg, CPU, 17, 6, False).backend

    assert backend(2_000, (256, 256)) == "eager" and backend(20_000, (256, 256)) == "compile"
    assert backend(20_000, (64, 64)) == "eager" and backend(200_000, (64, 64)) == "compile"
    assert CPU_COMPILE_SECONDS > 0


def test_flags_win_and_cuda_takes_the_fast_path():
    assert decide_update(TrainConfig(update="compile"), CPU, 3, 1, False).backend == "compile"
    assert decide_update(TrainConfig(update="native"), CPU, 3, 1, False).reason == "--update native given"
    assert decide_update(TrainConfig(update="eager", total_steps=10**7), CPU, 3, 1, False).backend == "eager"
    assert decide_update(TrainConfig(), torch.device("cuda"), 3, 1, False).backend == "compile"


@pytest.mark.parametrize("where", ["discrete data parallel", "data parallel", "torch ops"])
def test_a_native_update_that_cannot_run_is_a_config_error_naming_why(where):
    config = TrainConfig(update="native", backend="torch" if where == "torch ops" else "auto")
    with pytest.raises(ConfigError, match="--update native: update 'native' cannot run here: .*use update 'compile'"):
        decide_update(config, CPU, 3, 1, where.startswith("discrete"), data_parallel="data parallel" in where)


def test_a_resume_keeps_the_decision_it_started_with():
    first = decide_update(TrainConfig(total_steps=1_100), CPU, 3, 1, False)  # 100 updates: eager
    longer = TrainConfig(total_steps=10**7)  # would take the native update if decided afresh
    kept = decide_update(longer, CPU, 3, 1, False, previous={"backend": first.backend, "reason": first.reason})
    assert first.backend == "eager" and decide_update(longer, CPU, 3, 1, False).backend == "native"
    assert kept.backend == first.backend and kept.reason.startswith("kept from the run's start")
    again = decide_update(longer, CPU, 3, 1, False, previous={"backend": kept.backend, "reason": kept.reason})
    assert again.reason == kept.reason


# --- the thread rule (decide_threads) ------------------------------------------------------------------------


def test_small_networks_get_one_thread_and_big_ones_the_process_share_of_the_cores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setattr(resolve, "available_cores", lambda: 8)
    pendulum = decide_threads(TrainConfig(), 3, 1, False)
    assert pendulum.threads == 1 and "one thread" in pendulum.reason
    cheetah, _ = resolve_config("auto", {"env_id": "HalfCheetah-v5"})
    decision = decide_threads(cheetah, 17, 6, False)
    assert decision.threads == 8 and "8 cores" in decision.reason
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # torchrun, 4 processes on this machine
    assert decide_threads(cheetah, 17, 6, False).threads == 2
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "16")
    assert decide_threads(cheetah, 17, 6, False).threads == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the suite runner's cores / jobs, or the user's
    decision = decide_threads(cheetah, 17, 6, False)
    assert decision.threads == 3 and "OMP_NUM_THREADS=3" in decision.reason
    assert resolve.AUTO_THREADS_MIN_GFLOP > update_flops(3, 1, (64, 64), 256, discrete=False) / 1e9


def test_threads_given_win_and_a_resume_keeps_its_count(monkeypatch):
    monkeypatch.setattr(resolve, "available_cores", lambda: 8)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert decide_threads(TrainConfig(threads=5), 3, 1, False) == resolve.ThreadsDecision(5, "--threads given")
    cheetah, _ = resolve_config("auto", {"env_id": "HalfCheetah-v5"})
    first = decide_threads(cheetah, 17, 6, False)
    monkeypatch.setattr(resolve, "available_cores", lambda: 2)  # resumed on a smaller machine
    kept = decide_threads(cheetah, 17, 6, False, previous={"threads": first.threads, "reason": first.reason})
    assert kept.threads == 8 and kept.reason.startswith("kept from the run's start")
    assert decide_threads(cheetah, 17, 6, False, previous={"threads": 8, "reason": kept.reason}).reason == kept.reason


def test_a_run_sets_torch_to_its_thread_count_and_train_restores_it_after(tmp_path):
    from fastsac.training import train

    before = torch.get_num_threads()
    result = train(total_steps=300, learning_starts=100, eval_every=0, checkpoint_every=0, threads=2,
                   progress=False, out=str(tmp_path / "run"))
    assert result.summary["threads"] == 2 and result.summary["threads_reason"] == "--threads given"
    assert torch.get_num_threads() == before
    result = train(total_steps=300, learning_starts=100, eval_every=0, checkpoint_every=0, progress=False,
                   out=str(tmp_path / "auto"))
    assert result.summary["threads"] == 1 and "one thread" in result.summary["threads_reason"]
