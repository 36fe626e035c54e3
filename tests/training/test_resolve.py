"""The compile rule (fastsac.training.resolve.decide_compile): measured constants, explicit flags win, resumes keep
their decision."""

from __future__ import annotations

import torch

from fastsac.agents import LearnerConfig
from fastsac.training.config import TrainConfig
from fastsac.training.presets import resolve_config
from fastsac.training.resolve import CPU_COMPILE_SECONDS, decide_compile, expected_updates

CPU = torch.device("cpu")


def test_the_pendulum_quick_start_stays_eager_and_a_halfcheetah_run_compiles():
    pendulum = TrainConfig()
    decision = decide_compile(pendulum, CPU, 3, 1, False)
    assert not decision.compile and "eager" in decision.reason and f"{expected_updates(pendulum):,} updates" in decision.reason
    cheetah, _ = resolve_config("auto", {"env_id": "HalfCheetah-v5"})
    decision = decide_compile(cheetah, CPU, 17, 6, False)
    assert decision.compile and "compiled" in decision.reason


def test_the_break_even_grows_with_the_compile_cost_and_shrinks_with_the_network():
    """A 2x256 run compiles from a few thousand updates on, a 2x64 one only from ten thousand and more."""
    def compiles(steps, hidden):
        cfg = TrainConfig(total_steps=steps, learning_starts=0, learner=LearnerConfig(hidden_sizes=hidden))
        return decide_compile(cfg, CPU, 17, 6, False).compile

    assert not compiles(2_000, (256, 256)) and compiles(20_000, (256, 256))
    assert not compiles(20_000, (64, 64)) and compiles(200_000, (64, 64))
    assert CPU_COMPILE_SECONDS > 0


def test_flags_win_and_cuda_compiles():
    assert decide_compile(TrainConfig(compile=True), CPU, 3, 1, False).compile
    assert not decide_compile(TrainConfig(compile=False, total_steps=10**7), CPU, 3, 1, False).compile
    assert decide_compile(TrainConfig(), torch.device("cuda"), 3, 1, False).compile


def test_a_resume_keeps_the_decision_it_started_with():
    first = decide_compile(TrainConfig(), CPU, 3, 1, False)
    longer = TrainConfig(total_steps=10**7)  # would compile if decided afresh
    kept = decide_compile(longer, CPU, 3, 1, False, previous={"compile": first.compile, "reason": first.reason})
    assert kept.compile == first.compile and kept.reason.startswith("kept from the run's start")
    again = decide_compile(longer, CPU, 3, 1, False, previous={"compile": kept.compile, "reason": kept.reason})
    assert again.reason == kept.reason
