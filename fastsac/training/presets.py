"""Presets: per-env hyperparameter files, and how a run's configuration is resolved from them.

A preset is a TOML file ``fastsac/training/presets/<name>.toml`` (or any path ending in ``.toml``): top-level keys
set :class:`~fastsac.training.config.TrainConfig` fields, a ``[learner]`` table sets
:class:`~fastsac.agents.LearnerConfig` fields. Each shipped preset names its source in its header comment.

Precedence when a configuration is resolved (:func:`resolve_config`): dataclass defaults < preset < explicit
overrides (CLI flags).
"""

from __future__ import annotations

import difflib
import os
import tomllib
from pathlib import Path
from typing import Any

from fastsac.training.config import ConfigError, TrainConfig, config_from_dict

__all__ = ["PRESETS_DIR", "available_presets", "load_preset", "preset_for_env", "resolve_config"]

PRESETS_DIR = Path(__file__).with_name("presets")


def available_presets() -> list[str]:
    """Names of the presets shipped in ``fastsac/training/presets``."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.toml"))


def _preset_path(name: str) -> Path:
    if name.endswith(".toml") or os.sep in name or "/" in name:
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"preset file {path} does not exist")
        return path
    path = PRESETS_DIR / f"{name}.toml"
    if not path.is_file():
        have = available_presets()
        close = difflib.get_close_matches(name, have, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(
            f"unknown preset {name!r}.{hint} Available presets: {', '.join(have)} (or pass the path of a .toml file)"
        )
    return path


def load_preset(name: str) -> dict[str, Any]:
    """The validated contents of a preset (a name in ``fastsac/training/presets`` or a path): a nested dict."""
    path = _preset_path(name)
    try:
        with open(path, "rb") as f:
            values = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"preset {path} is not valid TOML: {exc}") from exc
    config_from_dict(values, where=f"preset {path}")  # reject unknown keys and wrong types now
    return values


def preset_for_env(env_id: str, agent: str = "sac") -> str | None:
    """The shipped preset for ``env_id`` and ``agent``, if there is one: ``<env_id>.toml`` for SAC,
    ``<env_id>-<agent>.toml`` for another agent (``HalfCheetah-v5-crossq``), else the env's SAC preset (its run
    settings; the agent's own defaults replace the SAC learner fields, see ``LearnerConfig.with_agent``)."""
    for name in ([f"{env_id}-{agent}"] if agent != "sac" else []) + [env_id]:
        if (PRESETS_DIR / f"{name}.toml").is_file():
            return name
    return None


def resolve_config(preset: str | None = "auto", overrides: dict[str, Any] | None = None) -> tuple[TrainConfig, str | None]:
    """Defaults < preset < ``overrides`` (a nested dict, e.g. from CLI flags). Returns ``(config, preset_used)``.

    ``preset="auto"`` uses the shipped preset for the env (``overrides["env_id"]`` or the preset-free default)
    and the agent (``overrides["learner"]["agent"]``, default SAC) when one exists (:func:`preset_for_env`);
    ``None`` or ``"none"`` uses no preset.
    """
    overrides = dict(overrides or {})
    if preset == "auto":
        env_id = overrides.get("env_id", TrainConfig().env_id)
        learner = overrides.get("learner")
        agent = learner.get("agent", "sac") if isinstance(learner, dict) else "sac"
        known = isinstance(env_id, str) and isinstance(agent, str)
        preset = preset_for_env(env_id, agent) if known else None
    elif preset in ("none", ""):
        preset = None
    config = TrainConfig()
    if preset is not None:
        config = config_from_dict(load_preset(preset), config, where=f"preset {preset!r}")
    config = config_from_dict(overrides, config, where="overrides")
    return config.validate(), preset
