"""Device-portable runs and loud fallbacks in a run.

A checkpoint from any device evaluates and resumes on any other. Without a GPU, a GPU run's checkpoint is made
from a CPU run's by writing what a GPU run writes in its place: the device, the learner's CUDA generator state
(16 bytes: Philox seed and offset) and the CUDA generators of the global RNG state. Fallbacks that happen in a
run are printed at its start (those known then) and listed in summary.json.
"""

from __future__ import annotations

import json
import shutil
import struct
import warnings
from pathlib import Path

import pytest
import torch

import fastsac.kernels
from fastsac.agents import LearnerConfig, SACLearner
from fastsac.agents.rng import CPU_STATE_BYTES, derived_seed
from fastsac.ops import backends
from fastsac.training import evaluate, resume, train
from fastsac.training.checkpoint import load_checkpoint, restore_rng_state, save_checkpoint
from fastsac.training.config import ConfigError

from .test_trainer import assert_same_state, tiny


def cuda_generator_state(seed: int, offset: int) -> torch.Tensor:
    """The state ``torch.cuda.default_generators[i].get_state()`` returns: seed and Philox offset, 8 bytes each."""
    return torch.frombuffer(bytearray(struct.pack("<QQ", seed, offset)), dtype=torch.uint8).clone()


def as_gpu_run(run_dir: Path) -> Path:
    """Rewrite a CPU run's checkpoint as a run on cuda:0 writes it."""
    path = run_dir / "checkpoints" / "latest.pt"
    ckpt = load_checkpoint(path)
    ckpt["device"] = "cuda:0"
    ckpt["config"]["device"] = "cuda"
    ckpt["learner"]["generator"] = cuda_generator_state(ckpt["config"]["seed"], 4 * ckpt["learner"]["num_updates"])
    ckpt["learner"]["generator_device"] = "cuda"
    ckpt["rng"]["cuda"] = [cuda_generator_state(ckpt["config"]["seed"], 1234)]
    save_checkpoint(path, ckpt)
    return run_dir


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory) -> Path:
    return train(tiny(tmp_path_factory.mktemp("portable") / "run")).run_dir


@pytest.fixture
def gpu_run(cpu_run, tmp_path):
    def make(name="gpu") -> Path:
        return as_gpu_run(Path(shutil.copytree(cpu_run, tmp_path / name)))

    return make


def test_learner_loads_a_generator_state_from_another_device():
    cfg = LearnerConfig(hidden_sizes=(8,), update="eager", seed=5)
    saved = SACLearner(3, 2, cfg).state_dict()
    assert saved["generator_device"] == "cpu" and saved["generator"].numel() == CPU_STATE_BYTES
    same = SACLearner(3, 2, cfg)
    same.load_state_dict(saved)
    assert same.rng_note is None and torch.equal(same.generator.get_state(), saved["generator"])

    for recorded in ("cuda", None):  # None: an older checkpoint without the key; the state's size tells
        gpu_state = {**saved, "generator": cuda_generator_state(5, 40), "num_updates": 10}
        if recorded is None:
            del gpu_state["generator_device"]
        else:
            gpu_state["generator_device"] = recorded
        learner = SACLearner(3, 2, cfg)
        learner.load_state_dict(gpu_state)
        assert "saved on cuda" in learner.rng_note and "(10)" in learner.rng_note
        expected = torch.Generator().manual_seed(derived_seed(5, 10))
        assert torch.equal(learner.generator.get_state(), expected.get_state())  # deterministic reseed


def test_rng_state_of_a_gpu_run_restores_on_a_cpu_machine(cpu_run):
    if torch.cuda.is_available():
        pytest.skip("this checks a machine without CUDA")
    ckpt = load_checkpoint(cpu_run / "checkpoints" / "latest.pt")
    state = {**ckpt["rng"], "cuda": [cuda_generator_state(1, 2)]}
    torch.manual_seed(123)
    assert restore_rng_state(state, device="cpu", seed=0, counter=400) == []
    assert torch.equal(torch.get_rng_state(), ckpt["rng"]["torch"])


def test_a_gpu_checkpoint_evaluates_on_the_cpu(cpu_run, gpu_run):
    if torch.cuda.is_available():
        pytest.skip("on a GPU machine the run's own device would be used")
    reference = evaluate(cpu_run, episodes=2)
    run = gpu_run()
    for device in (None, "cpu"):  # no --device: a cuda run is evaluated on the CPU where there is no GPU
        result = evaluate(run, episodes=2, device=device)
        assert result.device == "cpu" and result.returns == reference.returns


def test_a_gpu_checkpoint_resumes_on_the_cpu_reproducibly(gpu_run, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this checks a machine without CUDA")
    with pytest.raises(ConfigError, match="CUDA is not available here; use --device cpu"):
        resume(gpu_run("no-device"), total_steps=500)  # the run is on cuda: changing the device is the user's call
    results = []
    for name in ("a", "b"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            results.append(resume(gpu_run(name), device="cpu", total_steps=500))
        assert any("resume is not bit-exact" in str(w.message) for w in caught)
    for result in results:
        summary = json.loads((result.run_dir / "summary.json").read_text())
        assert summary["finished"] and summary["total_steps"] == 500 and summary["resume_exact"] is False
        assert "trained on cuda:0 and continues on cpu" in summary["resume_note"]
        assert "noise generator was saved on cuda" in summary["resume_note"]
    a, b = (load_checkpoint(r.run_dir / "checkpoints" / "latest.pt") for r in results)
    assert a["device"] == "cpu" and a["learner"]["generator_device"] == "cpu"
    assert_same_state(a["learner"], b["learner"])  # the reseeded continuation is deterministic


def test_cli_evaluates_a_gpu_run_and_asks_for_a_device_to_resume_it(gpu_run):
    from tests.test_cli import run_cli

    if torch.cuda.is_available():
        pytest.skip("this checks a machine without CUDA")
    run = gpu_run("cli")
    res = run_cli("eval", str(run), "--episodes", "2")
    assert res.returncode == 0 and "device: cpu" in res.stdout, res.stderr[-2000:]
    res = run_cli("train", "--resume", str(run), "--total-steps", "500")
    assert res.returncode == 2 and "use --device cpu" in res.stderr and "Traceback" not in res.stderr


def test_a_cpu_resume_on_the_cpu_stays_exact(cpu_run, tmp_path):
    run = Path(shutil.copytree(cpu_run, tmp_path / "same"))
    result = resume(run, total_steps=450)
    assert result.summary["resume_exact"] is True and result.summary["resume_note"] is None


# ------------------------------------------------------------------------------------------------------------
# fallbacks in a run


def _failing_compile(fn, **_):
    def compiled(*args):
        raise RuntimeError("simulated: inductor failed")
    return compiled


@pytest.mark.skipif(backends._why_unusable("triton", "cpu", None) is not None,
                    reason="needs the Triton interpreter (TRITON_INTERPRET=1, set by conftest without a GPU)")
def test_fallbacks_are_printed_at_the_start_and_listed_in_the_summary(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("FASTSAC_STRICT", raising=False)
    monkeypatch.setitem(backends.AUTO_ORDER, "cpu", ("triton", "torch"))
    monkeypatch.setattr(fastsac.kernels, "categorical_fwd", lambda *a: (_ for _ in ()).throw(
        RuntimeError("simulated: no kernel image")))
    monkeypatch.setattr(torch, "compile", _failing_compile)
    backends.reset()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = train(tiny(tmp_path / "run", update="compile", total_steps=300))
    finally:
        backends.reset()
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["finished"] and summary["ops_backend"] == "torch"
    kinds = [f["kind"] for f in summary["fallbacks"]]
    assert kinds == ["backend", "compile"]
    assert "simulated: no kernel image" in summary["fallbacks"][0]["reason"]
    assert "simulated: inductor failed" in summary["fallbacks"][1]["reason"]
    err = capsys.readouterr().err
    assert "fastsac: fallback: the 'triton' backend's self-check on cpu failed" in err


def test_a_run_without_fallbacks_says_so(cpu_run):
    summary = json.loads((cpu_run / "summary.json").read_text())
    assert summary["fallbacks"] == [] and summary["resume_note"] is None
    assert load_checkpoint(cpu_run / "checkpoints" / "latest.pt")["device"] == "cpu"


@pytest.mark.gpu
def test_a_cpu_checkpoint_evaluates_and_resumes_on_the_gpu(cpu_run, tmp_path):
    run = Path(shutil.copytree(cpu_run, tmp_path / "to-gpu"))
    assert evaluate(run, episodes=2, device="cuda").device.startswith("cuda")
    result = resume(run, device="cuda", total_steps=450)
    assert result.summary["resume_exact"] is False and "trained on cpu" in result.summary["resume_note"]
    assert result.summary["device"].startswith("cuda")
