"""The checkpoint, format 2: what ``checkpoints/latest.pt`` holds, part by part.

One ``torch.save`` file of plain values (tensors, numbers, strings, lists, dicts, so ``torch.load(weights_only=True)``
reads it), written and read by ``fastsac.training.checkpoint`` (atomic writes, checks of the file). Its top level::

    kind         "fastsac.checkpoint"
    format       2 (checkpoint.FORMAT_VERSION): a file of any other format is refused, saying what to do
    written_by   {"fastsac": version, "torch": version} of the process that wrote it
    config       the run's TrainConfig (config_to_dict); a resume may change only its RESUME_MUTABLE fields
    device       where the run trained ("cpu", "cuda:0"); a resume on another device type is not bit-exact
    counters     Counters: env steps, loop iterations, the update debt, times, resumes, the last evaluation,
                 the current log window and the last training returns
    learner      Learner.state_dict(): networks, target critics, observation statistics, optimizers, the entropy
                 module, the update count, the noise generator's state with ``generator_device``, the device type
                 that state belongs to (a CPU state is 5,056 bytes, a CUDA one 16), and the metric sums
    buffer       ReplayBuffer.state_dict() (its filled rows), or None: kept with save_buffer, and always once a
                 reset resume has cut the action log (replay cannot rebuild the buffer then)
    env          EnvRecord: env id, backend and seed, the action log (every action sent to the envs since
                 ``actions_from_step``: an exact resume replays it), the observation to act on next, the
                 actions the last update computed for it, and a device env's own state (``state``: a device env
                 keeps no action log; an exact resume restores the state instead, with the buffer, which a
                 device env's checkpoint always holds)
    rng          Python's, NumPy's and torch's CPU generator states, and every CUDA device's where CUDA was used
    decisions    how the run runs its update (``decisions.DECISIONS_LAYOUT``): kept by a resume
    distributed  data-parallel runs only: the set's manifest {world_size, step, set, rank} (checkpoint_set.py)

Reading is two steps, and nothing is loaded before both passed. :func:`read_checkpoint`: the file and its format
(``checkpoint.load_checkpoint``), the parts (none missing, none extra), the parts whose layout does not depend on
the run (:data:`FIXED_LAYOUT`), the config, and (given the run directory) that the checkpoint is of the run whose
``config.json`` lies beside it. Then, once the run has built its learner, :meth:`Checkpoint.check_fits`: the
learner, buffer and env parts against what this run would save (:func:`expected_parts`), tensor by tensor, and
each generator state against its device.

Formats: 1, the same values with the counters and decisions at the top level, read by nothing since format 2.
"""

from __future__ import annotations

import dataclasses
import json
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch

from fastsac.agents.rng import CPU_STATE_BYTES
from fastsac.training.checkpoint import CheckpointError, load_checkpoint
from fastsac.training.checkpoint_check import (
    Exactly,
    Many,
    MayLack,
    Maybe,
    Opaque,
    Tensor,
    check_generator,
    check_structure,
    layout_of,
)
from fastsac.training.config import ConfigError, TrainConfig, config_from_dict, config_to_dict
from fastsac.training.decisions import DECISIONS_LAYOUT
from fastsac.training.parts import action_layout, make_buffer
from fastsac.training.rundir import CONFIG_FILE

__all__ = ["FIXED_LAYOUT", "Checkpoint", "Counters", "EnvRecord", "expected_parts", "new_window", "read_checkpoint"]


RECENT_RETURNS = 20


def new_window(step: int = 0, train_time: float = 0.0) -> dict[str, Any]:
    """A log window opened at ``step``: the training episodes that end in it, until the next metrics row."""
    return {"episodes": 0, "return_sum": 0.0, "length_sum": 0, "last_step": step, "last_train_time": train_time}


@dataclass
class Counters:
    """Where the run is. Saved as a dict of the same names (``utd_debt`` as [numerator, denominator])."""

    step: int = 0  #: env steps so far, of all envs (and all ranks)
    iteration: int = 0  #: loop iterations so far
    utd_debt: Fraction = Fraction(0)  #: the fraction of an update owed (utd * num_envs need not be whole)
    wall_time: float = 0.0  #: seconds since the run started, across resumes
    train_time: float = 0.0  #: seconds spent stepping and updating (evaluations and checkpoints excluded)
    resumes: int = 0  #: how often the run was resumed
    last_eval: tuple[float, float] | None = None  #: the last evaluation's mean and std return
    last_eval_step: int = -1  #: the step it was made at
    window: dict[str, Any] = field(default_factory=new_window)  #: the log window (:func:`new_window`)
    #: the last RECENT_RETURNS training returns (the progress line's mean)
    recent_returns: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT_RETURNS))

    def to_state(self) -> dict[str, Any]:
        return {**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
                "utd_debt": [self.utd_debt.numerator, self.utd_debt.denominator],
                "last_eval": None if self.last_eval is None else list(self.last_eval),
                "window": dict(self.window), "recent_returns": list(self.recent_returns)}  # fmt: skip

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Counters:
        return cls(**{**state, "utd_debt": Fraction(*state["utd_debt"]), "window": dict(state["window"]),
                      "last_eval": None if state["last_eval"] is None else tuple(state["last_eval"]),
                      "recent_returns": deque(state["recent_returns"], maxlen=RECENT_RETURNS)})  # fmt: skip


@dataclass
class EnvRecord:
    """The training envs, as an exact resume rebuilds them: re-created with ``seed``, then stepped through
    ``actions``. Saved as a dict of the same names."""

    env_id: str
    backend: str  #: "envpool" or "gymnasium": a replay on the other may not reproduce the envs
    seed: int  #: the seed the envs were created with, where the action log starts
    actions_from_step: int  #: the step the action log starts at (> 0 after a reset resume)
    num_envs: int
    actions: torch.Tensor  #: (n, num_envs, *action): every action sent since actions_from_step, on the CPU
    obs: torch.Tensor  #: (num_envs, obs_dim) float32: the observation the next action acts on
    next_action: torch.Tensor | None  #: (num_envs, *action): its actions, computed by the last update (or None)
    #: a device env's own state (``DeviceVecEnv.state_dict()``: an exact resume restores it, no replay), or None:
    #: a host env, or a device env that cannot save its state (a resume starts fresh episodes)
    state: dict[str, Any] | None = None

    def to_state(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


#: The layout of the parts that do not depend on what the run builds (read_checkpoint checks them).
FIXED_LAYOUT: dict[str, Any] = {
    "written_by": {"fastsac": str, "torch": str},
    "config": Opaque(dict),
    "device": str,
    "counters": {"step": int, "iteration": int, "utd_debt": [int, int], "wall_time": float, "train_time": float,
                 "resumes": int, "last_eval": Maybe([float, float]), "last_eval_step": int,
                 "window": layout_of(new_window()), "recent_returns": Many(float)},  # fmt: skip
    "learner": Opaque(dict),
    "buffer": Maybe(Opaque(dict)),
    "env": {"env_id": str, "backend": str, "seed": int, "actions_from_step": int, "num_envs": int,
            "actions": Tensor(None, None), "obs": Tensor(None, None), "next_action": Maybe(Tensor(None, None)),
            "state": MayLack(Maybe(Opaque(dict)))},  # absent in files written before device envs
    "rng": {"python": [int, Many(int), Maybe(float)],
            "numpy": {"name": str, "keys": Tensor((624,), torch.int64), "pos": int, "has_gauss": int,
                      "cached_gaussian": float},
            "torch": Tensor((CPU_STATE_BYTES,), torch.uint8),
            "cuda": MayLack(Many(Tensor((None,), torch.uint8)))},  # fmt: skip
    "decisions": DECISIONS_LAYOUT,
    "distributed": MayLack({"world_size": int, "step": int, "set": str, "rank": int}),
}


def expected_parts(config: TrainConfig, learner_state: dict[str, Any], env) -> dict[str, Any]:
    """The layout of the learner, buffer and env parts of a checkpoint of this run: ``learner_state`` is a fresh
    learner's ``state_dict()`` (every tensor's shape and dtype, every key), the buffer's is an empty buffer's,
    the env's from ``env``'s sizes (a VecEnv of the run's env id, any number of envs)."""
    learner = layout_of(learner_state)
    learner["kind"] = Exactly(learner_state["kind"], f"the {config.learner.agent!r} agent's learner is")
    learner["generator"] = Tensor((None,), torch.uint8)  # its size is its device's: check_fits
    empty = make_buffer(config, env, "cpu", capacity=1).state_dict()
    buffer = {key: Tensor((None, *value.shape[1:]), value.dtype) if isinstance(value, torch.Tensor)
              else Exactly(value, "this run's buffer has") for key, value in empty.items()}  # fmt: skip
    buffer.update(capacity=Exactly(config.buffer_size, "this run's buffer has"), pos=int, size=int)
    shape, dtype = action_layout(env)
    row = (config.num_envs, *shape)
    env_layout = {**FIXED_LAYOUT["env"], "env_id": Exactly(config.env_id, "this run's env is"),
                  "num_envs": Exactly(config.num_envs, "this run has"), "actions": Tensor((None, *row), dtype),
                  "obs": Tensor((config.num_envs, env.obs_dim), torch.float32),
                  "next_action": Maybe(Tensor(row, dtype)), "state": MayLack(_env_state_layout(env))}
    return {"learner": learner, "buffer": Maybe(buffer), "env": env_layout}


def _env_state_layout(env) -> Any:
    """What ``env.state`` holds: None for a host env or a device env without a state; else a device env's
    ``state_dict()`` layout, each tensor's sizes left open (``env`` may be a probe with another number of envs, a
    generator's state has its device's size): keys, dtypes and ranks are checked here, sizes when it loads."""
    state = env.state_dict() if env.device_native else None
    if state is None:
        return Exactly(None, f"the {env.backend} env of this run saves no state there: it has")

    def open_sizes(layout: Any) -> Any:
        if isinstance(layout, Tensor):
            return Tensor((None,) * len(layout.shape), layout.dtype)
        if isinstance(layout, dict):
            return {k: open_sizes(v) for k, v in layout.items()}
        return layout

    return open_sizes(layout_of(state))


def _written_by() -> dict[str, str]:
    import fastsac

    return {"fastsac": str(fastsac.__version__), "torch": str(torch.__version__)}  # plain str: weights_only


@dataclass
class Checkpoint:
    """A checkpoint in memory (the module docstring describes each part)."""

    config: TrainConfig
    device: str
    counters: Counters
    learner: dict[str, Any]
    buffer: dict[str, Any] | None
    env: EnvRecord
    rng: dict[str, Any]
    decisions: dict[str, Any]
    distributed: dict[str, Any] | None = None  #: the manifest of a data-parallel run's set (written by save_set)
    written_by: dict[str, str] = field(default_factory=_written_by)
    path: Path | None = field(default=None, compare=False)  #: the file it was read from (not saved)

    def to_state(self) -> dict[str, Any]:
        """The dict ``save_checkpoint`` writes (it adds ``kind`` and ``format``)."""
        state = {"written_by": self.written_by, "config": config_to_dict(self.config), "device": self.device,
                 "counters": self.counters.to_state(), "learner": self.learner, "buffer": self.buffer,
                 "env": self.env.to_state(), "rng": self.rng, "decisions": self.decisions}  # fmt: skip
        return state if self.distributed is None else {**state, "distributed": self.distributed}

    def check_fits(self, learner_state: dict[str, Any], env) -> None:
        """Raise CheckpointError unless the learner, buffer and env parts are what this run (whose fresh learner
        state is ``learner_state``, whose env is ``env``) saves, and each generator state fits its device."""
        saved = {"learner": self.learner, "buffer": self.buffer, "env": self.env.to_state()}
        check_structure(saved, expected_parts(self.config, learner_state, env), self.path)
        check_generator(self.learner["generator"], self.learner["generator_device"], self.path, "learner.generator",
                        recorded="learner.generator_device")  # fmt: skip
        for i, state in enumerate(self.rng.get("cuda", [])):
            check_generator(state, "cuda", self.path, f"rng.cuda[{i}]")


def _check_run(config: TrainConfig, path: Path, run_dir: Path) -> None:
    """The checkpoint must be of the run whose config.json lies in ``run_dir`` (same env and agent)."""
    try:
        run = json.loads((run_dir / CONFIG_FILE).read_text())
        theirs = (run["env_id"], run.get("learner", {}).get("agent", "sac"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return  # no readable config.json: nothing to compare with
    ours = (config.env_id, config.learner.agent)
    if ours != theirs:
        raise CheckpointError(
            f"checkpoint {path} is of a {ours[1]!r} run on {ours[0]}, but {run_dir / CONFIG_FILE} is of a "
            f"{theirs[1]!r} run on {theirs[0]}: the checkpoint is not this run's (copied from another run?); put "
            "the run's own checkpoint back, or use the run it came from"
        )


def read_checkpoint(path: str | Path, run_dir: str | Path | None = None) -> Checkpoint:
    """Read and check the checkpoint at ``path`` (step one of the module docstring); ``run_dir``: the run
    directory it belongs to, whose config.json it must agree with."""
    path = Path(path)
    state = load_checkpoint(path)
    check_structure({k: v for k, v in state.items() if k not in ("kind", "format")}, FIXED_LAYOUT, path)
    try:
        config = config_from_dict(state["config"], where=f"{path} config")
    except ConfigError as exc:
        raise CheckpointError(f"checkpoint {path}: its config is not usable by this fastsac: "
                              f"{' '.join(str(exc).split())}") from exc
    if run_dir is not None:
        _check_run(config, path, Path(run_dir))
    return Checkpoint(config=config, device=state["device"], counters=Counters.from_state(state["counters"]),
                      learner=state["learner"], buffer=state["buffer"], env=EnvRecord(**state["env"]),
                      rng=state["rng"], decisions=state["decisions"], distributed=state.get("distributed"),
                      written_by=state["written_by"], path=path)  # fmt: skip
