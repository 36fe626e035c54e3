"""Every checkpoint that does not fit its run is a clear error (fastsac.training.checkpoint_format, checkpoint_check).

One small real run (Pendulum, 200 steps, 32x32 nets, the buffer saved), whose checkpoint each case damages in one
way. ``fastsac eval RUN``, ``fastsac train --resume RUN`` (a finished run: its result, once the checkpoint was
checked) and ``fastsac train --resume RUN --total-steps N`` (a resume that trains) must each exit 2 with ONE line
naming the checkpoint file and what does not fit, and leave the run directory byte for byte as it was.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from fastsac import cli
from fastsac.agents.rng import CPU_STATE_BYTES
from fastsac.training import CheckpointError, train
from fastsac.training.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint
from fastsac.training.checkpoint_check import Exactly, Many, MayLack, Maybe, Opaque, Tensor, check_structure, \
    layout_of
from fastsac.training.checkpoint_format import FIXED_LAYOUT, Checkpoint, read_checkpoint
from fastsac.training.scope import DataParallel, SingleProcess

from .test_trainer import tiny, tree_digest


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    cfg = tiny(tmp_path_factory.mktemp("errors") / "run", total_steps=200, learning_starts=100, eval_every=0,
               save_buffer=True, buffer_size=10_000)  # fmt: skip
    return train(cfg).run_dir


def _first(d: dict) -> str:
    return next(iter(d))


def _grow(t: torch.Tensor, dim: int) -> torch.Tensor:
    shape = list(t.shape)
    shape[dim] += 1
    return torch.zeros(shape, dtype=t.dtype)


def _set(ckpt: dict, path: str, value) -> None:
    *parents, last = path.split(".")
    for key in parents:
        ckpt = ckpt[key]
    ckpt[last] = value(ckpt[last]) if callable(value) else value


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _other_agent_everywhere(run_dir: Path, ckpt: dict) -> None:
    """A checkpoint whose config (and the run's config.json) says crossq, but whose learner part is SAC's."""
    ckpt["config"]["learner"]["agent"] = "crossq"
    config = json.loads((run_dir / "config.json").read_text())
    config["learner"]["agent"] = "crossq"
    (run_dir / "config.json").write_text(json.dumps(config))


# name -> (damage(ckpt dict) or damage(run_dir, ckpt dict) or ("file", damage(path)), words the message must hold)
CASES = {
    "learner weight of another shape": (
        lambda c: _set(c, f"learner.critic.{_first(c['learner']['critic'])}", lambda t: _grow(t, -1)),
        ["learner.critic.", "has shape", "this run needs"]),
    "optimizer moment of another dtype": (
        lambda c: _set(c, "learner.actor_optim.exp_avg", lambda m: [m[0].double(), *m[1:]]),
        ["learner.actor_optim.exp_avg[0] has dtype torch.float64, this run needs torch.float32"]),
    "buffer tensor of another shape": (
        lambda c: _set(c, "buffer.obs", lambda t: _grow(t, 1)), ["buffer.obs has shape", ", 3)"]),
    "cpu generator state recorded as cuda": (
        lambda c: _set(c, "learner.generator_device", "cuda"),
        [f"learner.generator is {CPU_STATE_BYTES} bytes, not the state of a cuda generator", "generator_device"]),
    "cuda generator state recorded as cpu": (
        lambda c: _set(c, "learner.generator", torch.zeros(16, dtype=torch.uint8)),
        ["learner.generator is 16 bytes, not the state of a cpu generator"]),
    "global cuda generator state of a cpu size": (
        lambda c: _set(c, "rng.cuda", [torch.zeros(CPU_STATE_BYTES, dtype=torch.uint8)]),
        ["rng.cuda[0] is 5056 bytes"]),
    "missing part": (lambda c: c.pop("learner"), ["the part 'learner' is missing"]),
    "missing learner entry": (lambda c: c["learner"].pop("critic_optim"), ["learner.critic_optim is missing"]),
    "extra part": (lambda c: _set(c, "notes", "hello"), [f"part 'notes' that format {FORMAT_VERSION} does not have"]),
    "extra learner entry": (lambda c: _set(c, "learner.bonus", torch.ones(3)), ["learner has an entry 'bonus'"]),
    "counter of another type": (lambda c: _set(c, "counters.step", "200"), ["counters.step is str '200'"]),
    "format 1": (lambda c: _set(c, "format", 1), ["has format 1; this fastsac reads format 2 only", "older"]),
    "format 999": (lambda c: _set(c, "format", 999), ["has format 999; this fastsac reads format 2 only", "newer"]),
    "file cut short": (("file", _truncate), ["truncated, corrupt"]),
    "checkpoint of another agent": (
        lambda c: _set(c, "config.learner.agent", "crossq"), ["is of a 'crossq' run", "config.json is of a 'sac' run"]),
    "another agent's learner": (_other_agent_everywhere, ["learner.kind is 'SACLearner'", "'CrossQLearner'"]),
    "checkpoint of another env": (
        lambda c: _set(c, "config.env_id", "MountainCarContinuous-v0"), ["run on MountainCarContinuous-v0",
                                                                          "config.json is of a 'sac' run on Pendulum-v1"]),
    "env part of another env": (
        lambda c: _set(c, "env.env_id", "MountainCarContinuous-v0"),
        ["env.env_id is 'MountainCarContinuous-v0', this run's env is 'Pendulum-v1'"]),
    "action log of another shape": (
        lambda c: _set(c, "env.actions", lambda t: _grow(t, 2)), ["env.actions has shape", "this run needs (n, 1, 1)"]),
    "learner state its own loading refuses": (
        lambda c: _set(c, "learner.entropy.alpha_mode", "fixed"),
        ["its learner part does not load into this run (ValueError:", "alpha_mode"]),
}


def _damaged(base_run: Path, tmp_path: Path, damage) -> Path:
    run_dir = Path(shutil.copytree(base_run, tmp_path / "run"))
    path = run_dir / "checkpoints" / "latest.pt"
    if isinstance(damage, tuple):
        damage[1](path)
        return run_dir
    ckpt = load_checkpoint(path)
    damage(run_dir, ckpt) if damage.__code__.co_argcount == 2 else damage(ckpt)
    save_checkpoint(path, ckpt)
    return run_dir


@pytest.mark.parametrize("case", list(CASES))
def test_a_damaged_checkpoint_is_one_clear_line_and_nothing_is_written(base_run, tmp_path, capsys, case):
    damage, words = CASES[case]
    run_dir = _damaged(base_run, tmp_path, damage)
    checkpoint = str(run_dir / "checkpoints" / "latest.pt")
    before = tree_digest(run_dir)
    capsys.readouterr()
    for argv in (["eval", str(run_dir), "--episodes", "1"], ["train", "--resume", str(run_dir)],
                 ["train", "--resume", str(run_dir), "--total-steps", "300"]):  # fmt: skip
        code = cli.main(argv)
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("fastsac")]
        assert code == 2, f"fastsac {' '.join(argv)}: exit {code}\n{err[-3000:]}"
        assert len(lines) == 1 and lines[0].startswith("fastsac: error: "), err[-3000:]
        assert "Traceback" not in err and "FASTSAC_DEBUG" not in err
        assert checkpoint in lines[0], lines[0]
        for word in words:
            assert word in lines[0], f"{word!r} not in: {lines[0]}"
        assert tree_digest(run_dir) == before, f"fastsac {' '.join(argv)} wrote into the run directory"


def test_the_undamaged_run_evaluates_and_resumes(base_run, tmp_path):
    """The same three commands on the run as it was written: the cases above fail for their damage only."""
    run_dir = Path(shutil.copytree(base_run, tmp_path / "run"))
    assert cli.main(["eval", str(run_dir), "--episodes", "1"]) == 0
    assert cli.main(["train", "--resume", str(run_dir)]) == 0
    assert cli.main(["train", "--resume", str(run_dir), "--total-steps", "250"]) == 0
    assert load_checkpoint(run_dir / "checkpoints" / "latest.pt")["counters"]["step"] == 250


# ------------------------------------------------------------------------------------------------------------
# The format and its layouts


def test_the_documented_parts_are_the_checkpoint_parts(base_run):
    """FIXED_LAYOUT (what read_checkpoint checks) names exactly the parts Checkpoint saves, and a written checkpoint
    has exactly those (plus kind and format); reading it back gives the same values."""
    fields = {f.name for f in dataclasses.fields(Checkpoint)} - {"path"}
    assert set(FIXED_LAYOUT) == fields
    path = base_run / "checkpoints" / "latest.pt"
    state = load_checkpoint(path)
    assert set(state) == fields - {"distributed"} | {"kind", "format"} and state["format"] == FORMAT_VERSION == 2
    ckpt = read_checkpoint(path, base_run)
    assert ckpt.path == path and ckpt.counters.step == 200 and ckpt.env.actions.shape == (200, 1, 1)
    again = ckpt.to_state()
    assert set(again) == set(state) - {"kind", "format"} and again["counters"] == state["counters"]


def test_layout_rules():
    layout = {"a": int, "b": float, "c": Maybe([int, int]), "d": Many(str), "e": MayLack(bool),
              "t": Tensor((None, 3), torch.float32), "k": Exactly("SAC"), "o": Opaque(dict), "n": None}  # fmt: skip
    good = {"a": 1, "b": 2, "c": None, "d": ["x", "y"], "t": torch.zeros(5, 3), "k": "SAC", "o": {}, "n": None}
    check_structure(good, layout, "ck.pt")
    check_structure({**good, "c": (1, 2), "e": True, "b": 2.5}, layout, "ck.pt")
    bad = [({**good, "a": True}, "a is bool True, this run needs an int"),
           ({**good, "b": "2"}, "b is str '2', this run needs a float"),
           ({**good, "c": [1]}, "c has 1 entries, this run needs 2"),
           ({**good, "d": ["x", 1]}, "d[1] is int 1, this run needs a str"),
           ({**good, "t": torch.zeros(5, 4)}, "t has shape (5, 4), this run needs (n, 3)"),
           ({**good, "t": torch.zeros(5, 3, dtype=torch.float16)}, "t has dtype torch.float16"),
           ({**good, "k": "CrossQ"}, "k is 'CrossQ', this run has 'SAC'"),
           ({**good, "n": 0}, "n is int 0, this run has None there")]  # fmt: skip
    for saved, message in bad:
        with pytest.raises(CheckpointError, match="^checkpoint ck.pt: ") as info:
            check_structure(saved, layout, "ck.pt")
        assert message in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(CheckpointError, match=r"\(and 1 more misfit\(s\)\)"):
        check_structure({**good, "a": None, "b": None}, layout, "ck.pt")
    # a fresh state's layout: shapes, dtypes, keys, types; a torch optimizer's own state is left to torch
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))])
    assert layout_of({"w": torch.zeros(2, 3), "n": 1, "opt": opt.state_dict(), "l": [0.5]}) == \
        {"w": Tensor((2, 3), torch.float32), "n": int, "opt": Opaque(dict), "l": [float]}


def test_single_process_and_data_parallel_scopes_have_the_same_hooks():
    def hooks(cls):
        return {name for name in dir(cls) if not name.startswith("_")} - {"ctx"}

    assert hooks(SingleProcess) == hooks(DataParallel)
