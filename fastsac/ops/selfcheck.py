"""Safe when unproven: a backend that ``auto`` would choose is first run once against the torch reference.

The first time in a process that ``auto`` would pick ``triton`` or ``cpp`` for a device, :func:`passes` runs that
backend's primitives (every op, forward and backward, with and without the fused sums) on a small input and
compares them with the reference. An error or a mismatch is a fallback (``fastsac.fallbacks``): one warning that
names the backend and the error, and ``auto`` takes the next backend in its order. The result is kept per
(backend, device) for the rest of the process, so the check costs one small launch per kernel, once.

The inputs come from a private generator (the global random streams are untouched, so seeded runs stay
reproducible). Inside a ``torch.compile`` trace nothing can be launched: there an unchecked backend counts as
passing (the eager call that precedes a compiled one normally did the check).
"""

from __future__ import annotations

from types import ModuleType

import torch

from fastsac.fallbacks import Fallback, fall_back

__all__ = ["failures", "passes", "reset"]

ROWS, COLS, LOGITS = 37, 6, 5  # small and odd: several rows per tile, a ragged action dimension
MEMBERS, ATOMS = 2, 11  # the categorical TD loss: (MEMBERS, ROWS, ATOMS) logits
TD_GAMMA, TD_V_MIN, TD_V_MAX = 0.9, -3.0, 4.0  # a support that clips some shifted atoms at each end
RTOL, ATOL = 1e-4, 1e-4  # float32 against a float32 reference: a broken kernel is off by far more

_results: dict[tuple[str, str], Fallback | None] = {}  # (backend, device) -> None (passed) or its fallback


def _device_key(device: torch.device) -> str:
    """``cuda:k`` for a CUDA device (``cuda`` means the current one), else the device type."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.current_device() if device.index is None else device.index}"
    return device.type


def _inputs(device: torch.device) -> dict[str, torch.Tensor]:
    g = torch.Generator(device="cpu").manual_seed(20_240_601)
    draw = lambda *shape, scale=1.0: (torch.randn(*shape, generator=g) * scale).to(device)  # noqa: E731
    return {
        "mean": draw(ROWS, COLS, scale=2.0), "raw": draw(ROWS, COLS, scale=1.5), "noise": draw(ROWS, COLS),
        "scale": (torch.rand(COLS, generator=g) + 0.5).to(device), "bias": draw(COLS, scale=0.1),
        "g_action": draw(ROWS, COLS), "g_log_prob": draw(ROWS),
        "logits": draw(ROWS, LOGITS, scale=3.0), "g_probs": draw(ROWS, LOGITS), "g_log_probs": draw(ROWS, LOGITS),
        "g_entropy": draw(ROWS),
        "td_logits": draw(MEMBERS, ROWS, ATOMS, scale=2.0),
        "td_probs": torch.softmax(torch.randn(ROWS, ATOMS, generator=g) * 2.0, -1).to(device),
        "td_reward": draw(ROWS, scale=2.0), "td_not_done": (torch.rand(ROWS, generator=g) > 0.2).float().to(device),
        "td_entropy": draw(ROWS, scale=0.5), "g_td": draw(MEMBERS, ROWS),
    }  # fmt: skip


def _run(module: ModuleType, x: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """Every output of the primitives for the inputs ``x``, in one fixed order."""
    out = []
    for scale, bias, lo, hi in ((x["scale"], x["bias"], -5.0, 2.0), (None, None, None, None)):
        out += module.squashed_gaussian_fwd(x["mean"], x["raw"], x["noise"], scale, bias, lo, hi, True)
        out += module.squashed_gaussian_bwd(x["g_action"], x["g_log_prob"], x["mean"], x["raw"], x["noise"], scale,
                                            lo, hi)
    out += module.categorical_fwd(x["logits"], True)
    out.append(module.categorical_bwd(x["g_probs"], x["g_log_probs"], x["g_entropy"], x["logits"]))
    loss, m = module.categorical_td_fwd(x["td_logits"], x["td_probs"], x["td_reward"], x["td_not_done"],
                                        x["td_entropy"], TD_GAMMA, TD_V_MIN, TD_V_MAX)
    out += [loss, m, module.categorical_td_bwd(x["g_td"], x["td_logits"], m)]
    return out


def _compare(module: ModuleType, reference: ModuleType, device: torch.device) -> str | None:
    """None when ``module`` matches ``reference`` on ``device``, else what differed."""
    x = _inputs(device)
    got, want = _run(module, x), _run(reference, x)
    for i, (a, b) in enumerate(zip(got, want)):
        if a.shape != b.shape or a.dtype != b.dtype:
            return f"output {i} has shape {tuple(a.shape)}/{a.dtype}, the reference {tuple(b.shape)}/{b.dtype}"
        a, b = a.double().cpu(), b.double().cpu()
        bad = ~torch.isclose(a, b, rtol=RTOL, atol=ATOL) | (a.isfinite() != b.isfinite())
        if bad.any():
            k = int(bad.flatten().nonzero()[0])
            return (f"mismatch against the torch reference: output {i}, {int(bad.sum())} of {a.numel()} elements "
                    f"differ (element {k}: {a.flatten()[k].item():.6g} vs {b.flatten()[k].item():.6g})")
    return None


def passes(name: str, device: torch.device, module: ModuleType, reference: ModuleType, then: tuple[str, ...]) -> bool:
    """Whether backend ``name`` (its primitives in ``module``) may be chosen by ``auto`` for ``device``: checked
    against ``reference`` the first time; ``then`` names the backends ``auto`` tries next (for the warning)."""
    key = (name, _device_key(device))
    if key not in _results:
        if torch.compiler.is_compiling():
            return True
        try:
            problem = _compare(module, reference, device)
        except Exception as exc:  # a launch or compile failure: the backend is unusable here
            problem = exc
        instead = f"the next usable backend of auto's order {then}" if then else "the torch reference"
        _results[key] = None if problem is None else fall_back(
            "backend", f"the {name!r} backend's self-check on {device}", instead, problem)
    return _results[key] is None


def failures(device: torch.device | str) -> list[Fallback]:
    """The fallbacks of backends that failed their self-check on ``device`` in this process."""
    key = _device_key(torch.device(device))
    return [f for (_, dev), f in _results.items() if f is not None and dev == key]


def reset() -> None:
    """Forget every result (tests)."""
    _results.clear()
