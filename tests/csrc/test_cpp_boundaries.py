"""Every entry point of the C++ extension checks the tensors that come in from Python (csrc/bindings.cpp,
library.cpp, autograd.cpp): a wrong dtype, shape or element count, layout or a missing partner argument is a
RuntimeError whose message names the entry point and the argument, never a crash or a silent out-of-bounds access.

``sac_update_cpu`` and ``crossq_update_cpu`` write the learner's parameters, Adam moments, targets, batch-renorm
statistics and metric sums through raw pointers, so their arguments are checked before anything is written: a
rejected call leaves every tensor as it was. Their valid arguments are built from a real ``SACLearner`` or
``CrossQLearner`` as the native updates (fastsac/agents) pack them. Wrong devices need a
GPU to build a tensor on one: those cases carry the ``gpu`` marker.
"""

from __future__ import annotations

import dataclasses
import math
import re

import pytest
import torch

from fastsac.agents import LearnerConfig, SACLearner

OBS, ACT, B, N_ACT = 5, 2, 8, 3
CFG = LearnerConfig(hidden_sizes=(16, 12), critic_hidden_sizes=(10, 6), seed=3)
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


# ---- sac_update_cpu -------------------------------------------------------------------------------------------
def _adam(opt):
    """A ForeachAdam as the binding takes it (as the native update packs it)."""
    return [list(opt.exp_avg), list(opt.exp_avg_sq),
            [opt.step_count, opt.beta_pows, opt._betas, opt.step_size, opt.bias_correction2_sqrt],
            [opt.lr, opt.betas[0], opt.betas[1], opt.eps]]


def _learner(**changes) -> SACLearner:
    return SACLearner(OBS, ACT, dataclasses.replace(CFG, **changes), "cpu")


def _args(learner: SACLearner, seed: int = 0) -> dict:
    """Valid keyword arguments of ``sac_update_cpu`` for ``learner``, in the binding's order, with a batch of B
    transitions and N_ACT observations to act on."""
    g = torch.Generator().manual_seed(seed)
    batch = [torch.randn(B, OBS, generator=g), torch.rand(B, ACT, generator=g) * 2 - 1, torch.randn(B, generator=g),
             torch.randn(B, OBS, generator=g), (torch.arange(B) % 3 == 1).float(), torch.randn(2, B, ACT, generator=g)]
    return dict(
        learner_args(learner, batch),
        log_std_lo=float(learner.log_std_bounds[0]), log_std_hi=float(learner.log_std_bounds[1]),
        act_obs=torch.randn(N_ACT, OBS, generator=g), act_noise=torch.randn(N_ACT, ACT, generator=g))


def learner_args(learner, batch: list[torch.Tensor]) -> dict:
    """The keyword arguments SAC's and discrete SAC's native updates share, for ``learner`` and ``batch``: the
    networks, the entropy, the metric sums, the optimizers, an actor step, gamma and tau."""
    entropy = learner.entropy
    return dict(
        actor=list(learner.actor_params), critic=list(learner.critic_params), target_critic=list(learner.target_params),
        log_alpha=entropy.log_alpha, target_entropy=entropy.target_tensor, metric_sums=learner._metric_sums,
        actor_opt=_adam(learner.actor_optim), critic_opt=_adam(learner.critic_optim),
        alpha_opt=None if learner.alpha_optim is None else _adam(learner.alpha_optim), batch=batch,
        update_actor=True, gamma=float(learner.cfg.gamma), tau=float(learner.cfg.tau))


def _tensors(obj) -> list[torch.Tensor]:
    """Every tensor in a nest of lists, tuples and dicts (each once)."""
    found, seen = [], set()

    def walk(x):
        if isinstance(x, torch.Tensor):
            if id(x) not in seen:
                seen.add(id(x))
                found.append(x)
        elif isinstance(x, (list, tuple)):
            for y in x:
                walk(y)
        elif isinstance(x, dict):
            for y in x.values():
                walk(y)

    walk(obj)
    return found

def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal, with NaN equal to NaN (a NaN a bad-input case put there is not a write)."""
    return torch.equal(a, b) or (a.is_floating_point() and bool((a.isnan() & b.isnan() | (a == b)).all()))


def assert_rejects_and_writes_nothing(update, entry: str, args: dict, learner_tensors: list[torch.Tensor],
                                      mutate, message: str) -> None:
    """``update(**args)`` with ``mutate`` applied to ``args`` raises a RuntimeError that starts with ``entry`` and
    matches ``message``, and leaves every tensor (the arguments, their replacements, ``learner_tensors``)
    unchanged."""
    watched = _tensors(args) + learner_tensors
    mutate(args)
    watched += _tensors(args)  # the replacements too
    before = [t.detach().clone() for t in watched]
    with pytest.raises(RuntimeError) as info:
        update(**args)
    text = str(info.value)
    assert text.startswith(f"{entry}: "), text
    assert re.search(message, text), f"{message!r} not in {text!r}"
    unchanged = [_same(a, b) for a, b in zip(before, watched)]
    assert all(unchanged), f"a rejected call wrote {unchanged.count(False)} tensors"



def learner_tensors(learner) -> list[torch.Tensor]:
    """Every tensor of a SAC or discrete SAC learner that its native update may write."""
    opts = [o for o in (learner.actor_optim, learner.critic_optim, learner.alpha_optim) if o is not None]
    return _tensors([learner.actor_params, learner.critic_params, learner.target_params, learner.entropy.log_alpha,
                     learner.entropy.target_tensor, learner._metric_sums,
                     [[*o.state_tensors(), o._betas] for o in opts]])


def _noncontig(t: torch.Tensor) -> torch.Tensor:
    """``t``'s values in a tensor of the same shape that is not contiguous (``t`` has more than one element)."""
    out = torch.empty(*t.shape, 2, dtype=t.dtype)[..., 0]
    out.copy_(t)
    assert not out.is_contiguous()
    return out


def _set(path, make):
    """A mutation of the argument dict: replace ``args[path[0]][path[1]]...`` by ``make(old)``."""
    def mutate(args):
        holder = args
        for key in path[:-1]:
            holder = holder[key]
        holder[path[-1]] = make(holder[path[-1]])
    return mutate


def _drop(path):
    def mutate(args):
        holder = args
        for key in path:
            holder = holder[key]
        holder.pop()
    return mutate


def _grow(t):
    """Zeros of ``t``'s dtype with one more row than ``t`` (shape (1,) for a 0-dim ``t``)."""
    shape = (1,) if t.dim() == 0 else (t.shape[0] + 1, *t.shape[1:])
    return torch.zeros(shape, dtype=t.dtype)


F32 = r"must be a contiguous Float CPU tensor"
SAC_CASES = {
    # list lengths
    "actor_too_short": (_drop(["actor"]), r"actor must be \[W, b\] for each hidden layer .* got 7"),
    "actor_no_hidden_layer": (_set(["actor"], lambda a: a[4:]), r"actor must be .* at least 6, got 4"),
    "critic_odd": (_drop(["critic"]), r"critic must be \[W, b\] for each layer.* got 5"),
    "target_critic_short": (_drop(["target_critic"]), r"target_critic must hold one tensor per tensor of critic"),
    "batch_short": (_drop(["batch"]), r"batch must be \[obs, action, reward, next_obs, terminated, noise\], got 5"),
    "actor_opt_exp_avg_short": (_drop(["actor_opt", 0]), r"actor_opt\.exp_avg must hold one tensor per tensor of "
                                r"actor \(8\), got 7"),
    "critic_opt_exp_avg_sq_short": (_drop(["critic_opt", 1]), r"critic_opt\.exp_avg_sq must hold one tensor per"),
    "alpha_opt_exp_avg_long": (_set(["alpha_opt", 0], lambda m: m + [m[0].clone()]),
                               r"alpha_opt\.exp_avg must hold one tensor per parameter, log_alpha \(1\), got 2"),
    "adam_state_short": (_drop(["critic_opt", 2]), r"critic_opt must be \(exp_avg, .* got 4 state tensors"),
    "adam_hyper_short": (_drop(["actor_opt", 3]), r"actor_opt must be \(exp_avg, .* and 3 numbers"),
    # dtypes
    "actor_double": (_set(["actor", 0], lambda t: t.double()), r"actor\[0\] " + F32),
    "critic_half": (_set(["critic", 3], lambda t: t.half()), r"critic\[3\] " + F32),
    "target_critic_double": (_set(["target_critic", 2], lambda t: t.double()), r"target_critic\[2\] " + F32),
    "log_alpha_double": (_set(["log_alpha"], lambda t: t.detach().double()), r"log_alpha " + F32),
    "target_entropy_double": (_set(["target_entropy"], lambda t: t.double()), r"target_entropy " + F32),
    "metric_sums_double": (_set(["metric_sums"], lambda t: t.double()), r"metric_sums " + F32),
    "exp_avg_double": (_set(["actor_opt", 0, 2], lambda t: t.double()), r"actor_opt\.exp_avg\[2\] " + F32),
    "step_count_double": (_set(["critic_opt", 2, 0], lambda t: t.double()), r"critic_opt\.step_count " + F32),
    "beta_pows_float": (_set(["actor_opt", 2, 1], lambda t: t.float()),
                        r"actor_opt\.beta_pows must be a contiguous Double CPU tensor"),
    "betas_float": (_set(["alpha_opt", 2, 2], lambda t: t.float()),
                    r"alpha_opt\.betas must be a contiguous Double CPU tensor"),
    "step_size_double": (_set(["critic_opt", 2, 3], lambda t: t.double()), r"critic_opt\.step_size " + F32),
    "obs_double": (_set(["batch", 0], lambda t: t.double()), r"batch\[0\] \(obs\) " + F32),
    "action_long": (_set(["batch", 1], lambda t: t.long()), r"batch\[1\] \(action\) " + F32),
    "reward_double": (_set(["batch", 2], lambda t: t.double()), r"batch\[2\] \(reward\) " + F32),
    "terminated_bool": (_set(["batch", 4], lambda t: t.bool()), r"batch\[4\] \(terminated\) " + F32),
    "act_noise_double": (_set(["act_noise"], lambda t: t.double()), r"act_noise " + F32),
    # shapes and element counts
    "actor_chain_broken": (_set(["actor", 2], lambda t: torch.zeros(t.shape[0], t.shape[1] + 1)),
                           r"actor\[2\] " + F32 + r" of shape \[\*, 16\]"),
    "actor_bias_long": (_set(["actor", 1], _grow), r"actor\[1\] " + F32 + r" of shape \[16\]"),
    "actor_log_std_head": (_set(["actor", 7], _grow), r"actor\[7\] " + F32 + r" of shape \[2\] \(b_log_std\)"),
    "actor_obs_dim": (_set(["actor", 0], lambda t: torch.zeros(t.shape[0], OBS + 1)),
                      r"critic\[0\] " + F32 + r" of shape \[\*, \*, 8\]"),
    "critic_two_outputs": (_set(["critic", 4], lambda t: torch.zeros(t.shape[0], 2, t.shape[2])),
                           r"critic\[4\] " + F32 + r" of shape \[2, 1, 6\]"),
    "critic_members": (_set(["critic", 1], _grow), r"critic\[1\] " + F32 + r" of shape \[2, 10\]"),
    "target_critic_numel": (_set(["target_critic", 3], lambda t: torch.zeros(t.numel() + 1)),
                            r"target_critic\[3\] " + F32 + r" of shape \[2, 6\] \(as critic\[3\]\)"),
    "target_critic_reshaped": (_set(["target_critic", 0], lambda t: t.reshape(t.shape[0], -1).clone()),
                               r"target_critic\[0\] " + F32),
    "log_alpha_1d": (_set(["log_alpha"], lambda t: t.detach().reshape(1)),
                     r"log_alpha " + F32 + r" of shape \[\] \(0-dim\)"),
    "target_entropy_1d": (_set(["target_entropy"], lambda t: t.reshape(1, 1)),
                          r"target_entropy " + F32 + r" of shape \[\] \(0-dim\).*got a Float tensor of shape \[1, 1\]"),
    "metric_sums_6": (_set(["metric_sums"], lambda t: torch.zeros(6)), r"metric_sums " + F32 + r" of shape \[7\]"),
    "exp_avg_shape": (_set(["critic_opt", 0, 2], lambda t: t.reshape(-1)),
                      r"critic_opt\.exp_avg\[2\] " + F32 + r" of shape \[2, 6, 10\] \(as critic\[2\]\)"),
    "alpha_exp_avg_sq_1d": (_set(["alpha_opt", 1, 0], lambda t: t.reshape(1)),
                            r"alpha_opt\.exp_avg_sq\[0\] " + F32 + r" of shape \[\] \(0-dim\) \(as log_alpha\)"),
    "step_count_1d": (_set(["actor_opt", 2, 0], lambda t: t.reshape(1)), r"actor_opt\.step_count " + F32),
    "bias_correction_1d": (_set(["actor_opt", 2, 4], lambda t: t.reshape(1)),
                           r"actor_opt\.bias_correction2_sqrt " + F32),
    "betas_3": (_set(["critic_opt", 2, 2], lambda t: torch.zeros(3, dtype=torch.float64)),
                r"critic_opt\.betas must be a contiguous Double CPU tensor of shape \[2\]"),
    "obs_dim": (_set(["batch", 0], lambda t: torch.zeros(B, OBS + 1)), r"batch\[0\] \(obs\) " + F32 + r" of shape "
                r"\[\*, 5\]"),
    "empty_batch": (_set(["batch", 0], lambda t: t[:0]), r"batch\[0\] \(obs\) must hold at least one transition"),
    "action_dim": (_set(["batch", 1], lambda t: torch.zeros(B, ACT + 1)), r"batch\[1\] \(action\) " + F32 + r" of "
                   r"shape \[8, 2\]"),
    "reward_short": (_set(["batch", 2], lambda t: t[:-1].clone()),
                     r"batch\[2\] \(reward\) must be a contiguous Float CPU tensor of 8 elements"),
    "next_obs_rows": (_set(["batch", 3], lambda t: torch.zeros(B + 1, OBS)), r"batch\[3\] \(next_obs\) " + F32),
    "terminated_long": (_set(["batch", 4], lambda t: torch.zeros(2 * B)), r"batch\[4\] \(terminated\) .* of 8 "
                        r"elements"),
    "noise_2d": (_set(["batch", 5], lambda t: t[0].clone()), r"batch\[5\] \(noise\) " + F32 + r" of shape \[2, 8, 2\]"),
    "act_obs_dim": (_set(["act_obs"], lambda t: torch.zeros(N_ACT, OBS - 1)), r"act_obs " + F32 + r" of shape "
                    r"\[\*, 5\]"),
    "act_noise_rows": (_set(["act_noise"], lambda t: torch.zeros(N_ACT + 1, ACT)), r"act_noise " + F32 + r" of shape "
                       r"\[3, 2\]"),
    # layouts
    "critic_noncontig": (_set(["critic", 0], _noncontig), r"critic\[0\] " + F32 + r".*not contiguous"),
    "actor_head_noncontig": (_set(["actor", 6], _noncontig), r"actor\[6\] " + F32),
    "metric_sums_noncontig": (_set(["metric_sums"], _noncontig), r"metric_sums " + F32),
    "exp_avg_sq_noncontig": (_set(["critic_opt", 1, 0], _noncontig), r"critic_opt\.exp_avg_sq\[0\] " + F32),
    "beta_pows_noncontig": (_set(["critic_opt", 2, 1], _noncontig), r"critic_opt\.beta_pows must be a contiguous"),
    "next_obs_noncontig": (_set(["batch", 3], _noncontig), r"batch\[3\] \(next_obs\) " + F32),
    "noise_noncontig": (_set(["batch", 5], _noncontig), r"batch\[5\] \(noise\) " + F32),
    "act_obs_noncontig": (_set(["act_obs"], _noncontig), r"act_obs " + F32),
    # optional partners, numbers
    "act_noise_missing": (_set(["act_noise"], lambda t: None),
                          r"act_obs and act_noise must both be tensors or both be None, got act_obs given and "
                          r"act_noise None"),
    "act_obs_missing": (_set(["act_obs"], lambda t: None), r"got act_obs None and act_noise given"),
    "lr_nan": (_set(["critic_opt", 3, 0], lambda x: math.nan), r"critic_opt lr must be finite and >= 0"),
    "beta1_one": (_set(["actor_opt", 3, 1], lambda x: 1.0), r"actor_opt betas must be in \[0, 1\)"),
    "eps_negative": (_set(["alpha_opt", 3, 3], lambda x: -1e-8), r"alpha_opt eps must be finite and >= 0"),
    "gamma_nan": (_set(["gamma"], lambda x: math.nan), r"gamma and tau must be finite"),
    "log_std_bounds_swapped": (_set(["log_std_hi"], lambda x: -10.0), r"need finite log_std_lo < log_std_hi"),
}


@pytest.fixture
def sac_update(cpp_ext):
    if not hasattr(cpp_ext, "sac_update_cpu"):
        pytest.fail("the C++ extension in use has no sac_update_cpu (csrc/bindings.cpp should always define it)")
    return cpp_ext.sac_update_cpu


def test_the_valid_arguments_run_and_write(sac_update):
    """The argument builder of these tests makes calls that pass (so each rejection below is the mutation's), and
    a call writes the parameters, targets, moments and sums it was given."""
    learner = _learner()
    args = _args(learner)
    before = [t.clone() for t in learner_tensors(learner)]
    actions = sac_update(**args)
    assert actions.shape == (N_ACT, ACT) and torch.isfinite(actions).all()
    changed = [not torch.equal(a, b) for a, b in zip(before, learner_tensors(learner))]
    assert sum(changed) > len(changed) // 2
    assert learner._metric_sums[2].item() == 1.0 and learner._metric_sums[6].item() == 1.0
    fixed = _learner(fixed_alpha=True, initial_alpha=0.2)  # alpha_opt None, no act_obs, no actor step
    args = _args(fixed)
    assert args["alpha_opt"] is None
    args.update(act_obs=None, act_noise=None, update_actor=False)
    assert sac_update(**args) is None
    assert fixed._metric_sums[2].item() == 1.0 and fixed._metric_sums[6].item() == 0.0


@pytest.mark.parametrize("case", list(SAC_CASES))
def test_sac_update_rejects_and_writes_nothing(sac_update, case):
    mutate, message = SAC_CASES[case]
    learner = _learner()
    assert_rejects_and_writes_nothing(sac_update, "sac_update_cpu", _args(learner), learner_tensors(learner),
                                      mutate, message)


def test_a_rejected_call_changes_nothing_a_later_update_sees(sac_update):
    """A rejected call (its error found last: the act_noise of the actions after the update), then a valid one,
    leaves the learner exactly as the valid call alone does."""
    a, b = _learner(), _learner()
    bad = _args(a)
    bad["act_noise"] = torch.zeros(N_ACT + 1, ACT)
    with pytest.raises(RuntimeError, match=r"act_noise"):
        sac_update(**bad)
    out_a, out_b = sac_update(**_args(a, seed=1)), sac_update(**_args(b, seed=1))
    assert torch.equal(out_a, out_b)
    assert all(torch.equal(x, y) for x, y in zip(learner_tensors(a), learner_tensors(b)))


@pytest.mark.gpu
def test_sac_update_rejects_cuda_tensors(sac_update):
    learner = _learner()
    args = _args(learner)
    before = [t.clone() for t in learner_tensors(learner)]
    args["batch"][1] = args["batch"][1].cuda()
    with pytest.raises(RuntimeError, match=r"batch\[1\] \(action\) must be a contiguous Float CPU tensor.* on cuda"):
        sac_update(**args)
    assert all(torch.equal(x, y) for x, y in zip(before, learner_tensors(learner)))


# ---- the primitives: pybind entry points, eager entry points, dispatcher ops ----------------------------------
def _sg(device="cpu", dtype=torch.float32, n=5, a=3):
    g = torch.Generator().manual_seed(n * 100 + a)
    return {k: torch.randn(n, a, generator=g, dtype=torch.float64).to(dtype).to(device)
            for k in ("mean", "log_std", "noise")}


def _call(ext, entry, device="cpu", dtype=torch.float32, **over):
    """Call ``entry`` with valid arguments on ``device``, some replaced by ``over``."""
    x = _sg(device, dtype)
    n, a = x["mean"].shape
    cd = torch.float64 if dtype == torch.float64 else torch.float32
    opt = dict(scale=None, bias=None, lo=None, hi=None)
    if entry in ("squashed_gaussian_fwd", "squashed_gaussian_eager", "op:squashed_gaussian"):
        kw = dict(**x, **opt)
        if entry == "squashed_gaussian_fwd":
            kw["want_sum"] = True
        elif entry == "squashed_gaussian_eager":
            kw.update(target=-1.0, grad=False)
        else:
            kw["target"] = torch.tensor(-1.0, dtype=cd, device=device)
    elif entry in ("squashed_gaussian_bwd", "op:squashed_gaussian_backward"):
        kw = dict(grad_action=torch.randn(n, a, dtype=dtype, device=device),
                  grad_log_prob=torch.randn(n, dtype=dtype, device=device), **x, scale=None, lo=None, hi=None)
    elif entry in ("categorical_fwd", "categorical_eager", "op:categorical"):
        kw = dict(logits=x["mean"])
        if entry == "categorical_fwd":
            kw["want_sum"] = True
        elif entry == "categorical_eager":
            kw.update(target=0.5, grad=False)
        else:
            kw["target"] = torch.tensor(0.5, dtype=cd, device=device)
    else:  # categorical_bwd, op:categorical_backward
        kw = dict(grad_probs=torch.randn(n, a, dtype=dtype, device=device),
                  grad_log_probs=torch.randn(n, a, dtype=dtype, device=device),
                  grad_entropy=torch.randn(n, dtype=dtype, device=device), logits=x["mean"])
    kw.update(over)
    if entry.startswith("op:"):
        op = getattr(getattr(torch.ops, ext.op_namespace), entry[3:])
        return op(*kw.values())
    return getattr(ext, entry)(**kw)


def _entry_name(ext, entry):
    return f"{ext.op_namespace}::{entry[3:]}" if entry.startswith("op:") else entry


SG_FWD = ["squashed_gaussian_fwd", "squashed_gaussian_eager", "op:squashed_gaussian"]
SG_BWD = ["squashed_gaussian_bwd", "op:squashed_gaussian_backward"]
CAT_FWD = ["categorical_fwd", "categorical_eager", "op:categorical"]
CAT_BWD = ["categorical_bwd", "op:categorical_backward"]
ALL = SG_FWD + SG_BWD + CAT_FWD + CAT_BWD


def _prim_cases():
    """(entry, argument, replacement maker, message) for each kind of wrong input each entry point takes."""
    cases = []
    for e in SG_FWD + SG_BWD:
        cases += [
            (e, "mean", "int", lambda x: x.long(), r"mean must be float32, float64, float16 or bfloat16, got Long"),
            (e, "mean", "3d", lambda x: x.unsqueeze(0), r"mean must be 2-D \(N, A\), got shape \[1, 5, 3\]"),
            (e, "log_std", "dtype", lambda x: x.double(), r"log_std must have the dtype of mean \(Float\), got Double"),
            (e, "noise", "shape", lambda x: x[:, :2].contiguous(), r"noise must have shape \[5, 3\] \(from mean\)"),
            (e, "mean", "noncontig", _noncontig, r"mean must be contiguous"),
            (e, "log_std", "noncontig", _noncontig, r"log_std must be contiguous"),
            (e, "scale", "numel", lambda x: torch.ones(4), r"scale must be None or 1-D of shape \(3,\)"),
            (e, "scale", "dtype", lambda x: torch.ones(3, dtype=torch.float64), r"scale must have the compute dtype"),
            (e, "scale", "noncontig", lambda x: torch.ones(6)[::2], r"scale must be contiguous"),
            (e, "lo", "no_partner", lambda x: -5.0, r"lo and hi must both be None or both be floats, got lo=-5"),
            (e, "hi", "no_partner", lambda x: 2.0, r"lo and hi must both be None or both be floats, got lo=None"),
        ]
    for e in SG_FWD:
        cases += [(e, "bias", "shape", lambda x: torch.ones(1, 3), r"bias must be None or 1-D of shape \(3,\)"),
                  (e, "bias", "noncontig", lambda x: torch.ones(6)[::2], r"bias must be contiguous")]
    for e in SG_BWD:
        cases += [
            (e, "grad_action", "dtype", lambda x: x.half(), r"grad_action must have the dtype of mean \(Float\)"),
            (e, "grad_action", "noncontig", _noncontig, r"grad_action must be contiguous"),
            (e, "grad_log_prob", "shape", lambda x: x.unsqueeze(1), r"grad_log_prob must have shape \[5\]"),
            (e, "grad_log_prob", "numel", lambda x: torch.zeros(4), r"grad_log_prob must have shape \[5\]"),
        ]
    for e in CAT_FWD + CAT_BWD:
        cases += [
            (e, "logits", "int", lambda x: x.int(), r"logits must be float32, float64, float16 or bfloat16, got Int"),
            (e, "logits", "1d", lambda x: x.reshape(-1), r"logits must be 2-D \(N, A\), got shape \[15\]"),
            (e, "logits", "noncontig", _noncontig, r"logits must be contiguous"),
        ]
    for e in CAT_BWD:
        cases += [
            (e, "grad_probs", "shape", lambda x: x[:, :2].contiguous(), r"grad_probs must have shape \[5, 3\]"),
            (e, "grad_log_probs", "dtype", lambda x: x.bfloat16(), r"grad_log_probs must have the dtype of logits"),
            (e, "grad_log_probs", "noncontig", _noncontig, r"grad_log_probs must be contiguous"),
            (e, "grad_entropy", "0d", lambda x: x[0], r"grad_entropy must have shape \[5\] \(from logits\), got \[\]"),
        ]
    for e in ("op:squashed_gaussian", "op:categorical"):
        cases += [
            (e, "target", "1d", lambda x: x.reshape(1), r"target must be None or a 0-dim tensor, got shape \[1\]"),
            (e, "target", "dtype", lambda x: x.double(), r"target must have the compute dtype Float for Float inputs"),
        ]
    return [pytest.param(*c, id=f"{c[0].replace('op:', 'op_')}-{c[1]}-{c[2]}") for c in cases]


@pytest.mark.parametrize("entry, arg, kind, make, message", _prim_cases())
def test_primitive_rejects(cpp_ext, entry, arg, kind, make, message):
    valid = _call(cpp_ext, entry)  # the valid call passes
    assert valid is not None
    x = _sg()
    base = {"mean": x["mean"], "log_std": x["log_std"], "noise": x["noise"], "logits": x["mean"],
            "grad_action": torch.randn(5, 3), "grad_log_prob": torch.randn(5), "grad_probs": torch.randn(5, 3),
            "grad_log_probs": torch.randn(5, 3), "grad_entropy": torch.randn(5), "scale": None, "bias": None,
            "lo": None, "hi": None, "target": torch.tensor(0.5)}
    with pytest.raises(RuntimeError) as info:
        _call(cpp_ext, entry, **{arg: make(base[arg])})
    text = str(info.value)
    name = _entry_name(cpp_ext, entry)
    assert text.startswith(f"{name}: "), f"the message does not start with {name!r}: {text!r}"
    assert re.search(message, text), f"{message!r} not in {text!r}"


@pytest.mark.parametrize("entry", ["squashed_gaussian_eager", "categorical_eager"])
def test_eager_backward_checks_name_the_eager_entry_point(cpp_ext, entry):
    """With grad, the eager entry points build a C++ autograd node: its forward checks as the entry point does."""
    x = _sg()
    if entry == "squashed_gaussian_eager":
        mean = x["mean"].requires_grad_(True)
        with pytest.raises(RuntimeError, match=r"^squashed_gaussian_eager: noise must have shape \[5, 3\]"):
            cpp_ext.squashed_gaussian_eager(mean, x["log_std"], x["noise"][:4], None, None, None, None, None, True)
        action, log_prob, _ = cpp_ext.squashed_gaussian_eager(mean, x["log_std"], x["noise"], None, None, None, None,
                                                              None, True)
        (action.sum() + log_prob.sum()).backward()
        assert mean.grad is not None and torch.isfinite(mean.grad).all()
    else:
        with pytest.raises(RuntimeError, match=r"^categorical_eager: logits must be contiguous"):
            cpp_ext.categorical_eager(_noncontig(x["mean"]).requires_grad_(True), None, True)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("entry", ALL)
def test_noncontiguous_and_wrong_dtype_on_each_device(cpp_ext, entry, device):
    """One noncontiguous and one wrong-dtype input per entry point and device (the CUDA half runs with a GPU and a
    CUDA build; the eager entry points reject CUDA tensors outright)."""
    eager_cuda = device == "cuda" and entry.endswith("_eager")
    if device == "cuda" and not eager_cuda and not cpp_ext.with_cuda:
        pytest.skip("fastsac._C was not built with CUDA")
    main = "logits" if entry.startswith(("categorical", "op:categorical")) else "mean"
    x = _sg(device)["mean"]
    name = _entry_name(cpp_ext, entry)
    expect = rf"^{re.escape(name)}: {main} must be a CPU tensor" if eager_cuda else \
        rf"^{re.escape(name)}: {main} must be contiguous"
    with pytest.raises(RuntimeError, match=expect):
        _call(cpp_ext, entry, device=device, **{main: x.t().contiguous().t()})  # (5, 3), strides (1, 5)
    expect = rf"^{re.escape(name)}: {main} must be a CPU tensor" if eager_cuda else \
        rf"^{re.escape(name)}: {main} must be float32, float64, float16 or bfloat16, got Short"
    with pytest.raises(RuntimeError, match=expect):
        _call(cpp_ext, entry, device=device, **{main: x.short()})


@pytest.mark.gpu
@pytest.mark.parametrize("entry", ["squashed_gaussian_fwd", "op:squashed_gaussian"])
def test_mixed_devices_are_rejected(cpp_ext, entry):
    if not cpp_ext.with_cuda:
        pytest.skip("fastsac._C was not built with CUDA")
    with pytest.raises(RuntimeError, match=r"noise must be on the device of mean"):
        _call(cpp_ext, entry, device="cuda", noise=torch.randn(5, 3))


def test_checks_leave_the_valid_path_alone(cpp_ext):
    """The same inputs through the pybind entry point, the eager one and the dispatcher op give the same bits."""
    a1, lp1, s1 = _call(cpp_ext, "squashed_gaussian_fwd")
    a2, lp2, gap2 = _call(cpp_ext, "squashed_gaussian_eager")
    a3, lp3, gap3 = _call(cpp_ext, "op:squashed_gaussian")
    assert torch.equal(a1, a2) and torch.equal(a1, a3) and torch.equal(lp1, lp2) and torch.equal(lp1, lp3)
    assert torch.equal(gap2, gap3) and gap3.dim() == 0 and s1.dim() == 0


# ---- crossq_update_cpu ----------------------------------------------------------------------------------------
# CrossQ's networks from CFG: actor [brn_w, brn_b, (W, b, brn_w, brn_b) x 2, W_mean, b_mean, W_log_std, b_log_std]
# (14 tensors), critic the same stacked over 2 members, ending in the head's W (2, 1, 6), b (2, 1) (12 tensors);
# statistics (running_mean, running_var, steps) per batch-renorm layer: 9 tensors each.
def _crossq_learner(**changes):
    from fastsac.agents import CrossQLearner

    cfg = dataclasses.replace(CFG.with_agent("crossq"), hidden_sizes=(16, 12), critic_hidden_sizes=(10, 6),
                              brn_warmup_steps=2, **changes)
    return CrossQLearner(OBS, ACT, cfg, "cpu")


def _crossq_args(learner, seed: int = 0) -> dict:
    """Valid keyword arguments of ``crossq_update_cpu`` for ``learner``, as fastsac/agents/crossq_native.py packs
    them."""
    g = torch.Generator().manual_seed(seed)
    batch = [torch.randn(B, OBS, generator=g), torch.rand(B, ACT, generator=g) * 2 - 1, torch.randn(B, generator=g),
             torch.randn(B, OBS, generator=g), (torch.arange(B) % 3 == 1).float(), torch.randn(2, B, ACT, generator=g)]
    entropy, cfg = learner.entropy, learner.cfg
    return dict(
        actor=list(learner.actor_params), actor_stats=list(learner.actor.buffers()),
        critic=list(learner.critic_params), critic_stats=list(learner.critic.buffers()),
        log_alpha=entropy.log_alpha, target_entropy=entropy.target_tensor, metric_sums=learner._metric_sums,
        actor_opt=_adam(learner.actor_optim), critic_opt=_adam(learner.critic_optim),
        alpha_opt=None if learner.alpha_optim is None else _adam(learner.alpha_optim), batch=batch,
        update_actor=True, gamma=float(cfg.gamma), log_std_lo=float(learner.log_std_bounds[0]),
        log_std_hi=float(learner.log_std_bounds[1]),
        brn=[cfg.brn_momentum, 1e-3, 3.0, 5.0, float(cfg.brn_warmup_steps)],
        act_obs=torch.randn(N_ACT, OBS, generator=g), act_noise=torch.randn(N_ACT, ACT, generator=g))


def _crossq_tensors(learner) -> list[torch.Tensor]:
    opts = [o for o in (learner.actor_optim, learner.critic_optim, learner.alpha_optim) if o is not None]
    return _tensors([learner.actor_params, learner.critic_params, list(learner.actor.buffers()),
                     list(learner.critic.buffers()), learner.entropy.log_alpha, learner.entropy.target_tensor,
                     learner._metric_sums, [[*o.state_tensors(), o._betas] for o in opts]])


I64 = r"must be a contiguous Long CPU tensor"
CROSSQ_CASES = {
    "actor_short": (_drop(["actor"]), r"actor must be brn_w, brn_b, then W, b, brn_w, brn_b .* got 13"),
    "critic_short": (_drop(["critic"]), r"critic must be brn_w, brn_b, .* got 11"),
    "actor_stats_short": (_drop(["actor_stats"]), r"actor_stats must hold running_mean, running_var, steps for each "
                          r"of the 3 batch-renorm layers of actor \(9 tensors\), got 8"),
    "critic_stats_short": (_drop(["critic_stats"]), r"critic_stats must hold .* \(9 tensors\), got 8"),
    "batch_short": (_drop(["batch"]), r"batch must be \[obs, action, reward, next_obs, terminated, noise\], got 5"),
    "brn_short": (_drop(["brn"]), r"brn must be \[momentum, eps, r_max, d_max, warmup_steps\], got 4"),
    "critic_opt_exp_avg_short": (_drop(["critic_opt", 0]), r"critic_opt\.exp_avg must hold one tensor per tensor of "
                                 r"critic \(12\), got 11"),
    "actor_brn_double": (_set(["actor", 4], lambda t: t.double()), r"actor\[4\] " + F32 + r" of shape \[16\]"),
    "critic_brn_wide": (_set(["critic", 0], lambda t: torch.zeros(t.shape[0], t.shape[1] + 1)),
                        r"critic\[0\] " + F32 + r" of shape \[\*, 7\]"),
    "critic_brn_members": (_set(["critic", 0], _grow), r"critic\[1\] " + F32 + r" of shape \[3, 7\]"),
    "critic_steps_float": (_set(["critic_stats", 2], lambda t: t.float()), r"critic_stats\[2\] " + I64 +
                           r" of shape \[2\]"),
    "actor_steps_1d": (_set(["actor_stats", 5], lambda t: t.reshape(1)), r"actor_stats\[5\] " + I64 +
                       r" of shape \[\] \(0-dim\)"),
    "critic_running_var_rows": (_set(["critic_stats", 4], _grow), r"critic_stats\[4\] " + F32 +
                                r" of shape \[2, 10\]"),
    "actor_running_mean_double": (_set(["actor_stats", 6], lambda t: t.double()), r"actor_stats\[6\] " + F32),
    "critic_stats_noncontig": (_set(["critic_stats", 0], _noncontig), r"critic_stats\[0\] " + F32 + r".*not contig"),
    "actor_chain_broken": (_set(["actor", 6], lambda t: torch.zeros(t.shape[0], t.shape[1] + 1)),
                           r"actor\[6\] " + F32 + r" of shape \[\*, 16\]"),
    "critic_two_outputs": (_set(["critic", 10], lambda t: torch.zeros(2, 2, 6)), r"critic\[10\] " + F32 +
                           r" of shape \[2, 1, 6\]"),
    "critic_members": (_set(["critic", 5], _grow), r"critic\[5\] " + F32 + r" of shape \[2, 10\]"),
    "actor_log_std_head": (_set(["actor", 13], _grow), r"actor\[13\] " + F32 + r" of shape \[2\] \(b_log_std\)"),
    "exp_avg_shape": (_set(["critic_opt", 0, 4], lambda t: t.reshape(-1)),
                      r"critic_opt\.exp_avg\[4\] " + F32 + r" of shape \[2, 10\] \(as critic\[4\]\)"),
    "obs_dim": (_set(["batch", 0], lambda t: torch.zeros(B, OBS + 1)), r"batch\[0\] \(obs\) " + F32),
    "noise_2d": (_set(["batch", 5], lambda t: t[0].clone()), r"batch\[5\] \(noise\) " + F32 + r" of shape \[2, 8, 2\]"),
    "terminated_bool": (_set(["batch", 4], lambda t: t.bool()), r"batch\[4\] \(terminated\) " + F32),
    "act_noise_missing": (_set(["act_noise"], lambda t: None), r"act_obs and act_noise must both be tensors"),
    "act_noise_rows": (_set(["act_noise"], lambda t: torch.zeros(N_ACT + 1, ACT)), r"act_noise " + F32),
    "gamma_nan": (_set(["gamma"], lambda x: math.nan), r"gamma must be finite"),
    "log_std_bounds_swapped": (_set(["log_std_hi"], lambda x: -10.0), r"need finite log_std_lo < log_std_hi"),
    "momentum_one": (_set(["brn", 0], lambda x: 1.0), r"batch renorm needs momentum in \[0, 1\)"),
    "eps_zero": (_set(["brn", 1], lambda x: 0.0), r"batch renorm needs momentum .* finite eps > 0"),
    "r_max_below_one": (_set(["brn", 2], lambda x: 0.5), r"r_max >= 1"),
    "warmup_negative": (_set(["brn", 4], lambda x: -1.0), r"warmup_steps must be a count >= 0"),
    "beta1_one": (_set(["critic_opt", 3, 1], lambda x: 1.0), r"critic_opt betas must be in \[0, 1\)"),
}


@pytest.fixture
def crossq_update(cpp_ext):
    if not hasattr(cpp_ext, "crossq_update_cpu"):
        pytest.fail("the C++ extension in use has no crossq_update_cpu (csrc/bindings.cpp should always define it)")
    return cpp_ext.crossq_update_cpu


def test_crossq_valid_arguments_run_and_write(crossq_update):
    learner = _crossq_learner()
    args = _crossq_args(learner)
    before = [t.clone() for t in _crossq_tensors(learner)]
    actions = crossq_update(**args)
    assert actions.shape == (N_ACT, ACT) and torch.isfinite(actions).all()
    changed = [not torch.equal(a, b) for a, b in zip(before, _crossq_tensors(learner))]
    assert sum(changed) > len(changed) // 2
    assert learner.critic.layers_0_steps.tolist() == [1, 1] and learner.actor.trunk.layers[0].steps.item() == 1
    fixed = _crossq_learner(fixed_alpha=True, initial_alpha=0.2)
    args = _crossq_args(fixed)
    args.update(act_obs=None, act_noise=None, update_actor=False)
    assert args["alpha_opt"] is None and crossq_update(**args) is None
    assert fixed._metric_sums[2].item() == 1.0 and fixed._metric_sums[6].item() == 0.0
    assert fixed.actor.trunk.layers[0].steps.item() == 0  # no actor step: its statistics did not move


@pytest.mark.parametrize("case", list(CROSSQ_CASES))
def test_crossq_update_rejects_and_writes_nothing(crossq_update, case):
    mutate, message = CROSSQ_CASES[case]
    learner = _crossq_learner()
    assert_rejects_and_writes_nothing(crossq_update, "crossq_update_cpu", _crossq_args(learner),
                                      _crossq_tensors(learner), mutate, message)


# ---- the categorical TD loss: pybind entry points, the eager entry point, the dispatcher ops ------------------
TD_FWD = ["categorical_td_fwd", "categorical_td_eager", "op:categorical_td"]
TD_BWD = ["categorical_td_bwd", "op:categorical_td_backward"]


def _td_call(ext, entry, device="cpu", dtype=torch.float32, **over):
    """Call a TD entry point with valid arguments (2 members, 5 samples, 4 atoms), some replaced by ``over``."""
    g = torch.Generator().manual_seed(11)
    cd = torch.float64 if dtype == torch.float64 else torch.float32
    logits = torch.randn(2, 5, 4, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)
    if entry in TD_FWD:
        kw = dict(logits=logits, target_probs=torch.softmax(torch.randn(5, 4, generator=g), -1).to(device, cd),
                  reward=torch.randn(5, generator=g).to(device, cd), not_done=torch.ones(5, dtype=cd, device=device),
                  entropy_term=torch.randn(5, generator=g).to(device, cd), gamma=0.9, v_min=-2.0, v_max=3.0)
        if entry == "categorical_td_eager":
            kw["grad"] = False
    else:
        kw = dict(grad_loss=torch.randn(2, 5, generator=g).to(device, dtype), logits=logits,
                  m=torch.rand(5, 4, generator=g).to(device, cd))
    kw.update(over)
    if entry.startswith("op:"):
        return getattr(getattr(torch.ops, ext.op_namespace), entry[3:])(*kw.values())
    return getattr(ext, entry)(**kw)


def _td_cases():
    cases = []
    for e in TD_FWD + TD_BWD:
        cases += [
            (e, "logits", lambda x: x[0], r"logits must be 3-D \(C, B, K\): members, samples, atoms; got shape \[5, 4\]"),
            (e, "logits", lambda x: x[..., :1].contiguous(), r"logits must have K >= 2 atoms"),
            (e, "logits", lambda x: x.int(), r"logits must be float32, float64, float16 or bfloat16, got Int"),
            (e, "logits", _noncontig, r"logits must be contiguous"),
        ]
    for e in TD_FWD:
        cases += [
            (e, "target_probs", lambda x: x[:, :3].contiguous(), r"target_probs must have shape \[5, 4\] \(from logits\)"),
            (e, "target_probs", lambda x: x.double(), r"target_probs must have the compute dtype Float for Float logits, "
                                                       r"got Double"),
            (e, "target_probs", _noncontig, r"target_probs must be contiguous"),
            (e, "reward", lambda x: x[:4], r"reward must have shape \[5\] \(from logits\), got \[4\]"),
            (e, "not_done", lambda x: x.half(), r"not_done must have the compute dtype Float"),
            (e, "entropy_term", lambda x: x[0], r"entropy_term must have shape \[5\] \(from logits\), got \[\]"),
            (e, "v_min", lambda x: 3.0, r"the support needs finite v_min < v_max, got v_min=3 v_max=3"),
            (e, "gamma", lambda x: float("nan"), r"gamma must be finite"),
        ]
    for e in TD_BWD:
        cases += [
            (e, "grad_loss", lambda x: x[0], r"grad_loss must have shape \[2, 5\] \(from logits\), got \[5\]"),
            (e, "grad_loss", lambda x: x.double(), r"grad_loss must have the dtype of logits \(Float\), got Double"),
            (e, "m", lambda x: x[:, :3].contiguous(), r"m must have shape \[5, 4\] \(from logits\)"),
            (e, "m", lambda x: x.half(), r"m must have the compute dtype Float for Float logits, got Half"),
            (e, "m", _noncontig, r"m must be contiguous"),
        ]
    return [pytest.param(*c, id=f"{c[0].replace('op:', 'op_')}-{c[1]}-{i}") for i, c in enumerate(cases)]


@pytest.mark.parametrize("entry, arg, make, message", _td_cases())
def test_td_entry_points_reject(cpp_ext, entry, arg, make, message):
    assert _td_call(cpp_ext, entry) is not None  # the valid call passes
    valid = dict(logits=torch.randn(2, 5, 4), target_probs=torch.softmax(torch.randn(5, 4), -1), reward=torch.randn(5),
                 not_done=torch.ones(5), entropy_term=torch.randn(5), grad_loss=torch.randn(2, 5),
                 m=torch.rand(5, 4), gamma=0.9, v_min=-2.0)
    with pytest.raises(RuntimeError) as info:
        _td_call(cpp_ext, entry, **{arg: make(valid[arg])})
    text = str(info.value)
    name = _entry_name(cpp_ext, entry)
    assert text.startswith(f"{name}: "), f"the message does not start with {name!r}: {text!r}"
    assert re.search(message, text), f"{message!r} not in {text!r}"


def test_td_eager_backward_checks_name_the_eager_entry_point(cpp_ext):
    logits = torch.randn(2, 5, 4).requires_grad_(True)
    with pytest.raises(RuntimeError, match=r"^categorical_td_eager: reward must have shape \[5\]"):
        _td_call(cpp_ext, "categorical_td_eager", logits=logits, reward=torch.zeros(4), grad=True)
    loss = _td_call(cpp_ext, "categorical_td_eager", logits=logits, grad=True)
    assert loss.shape == (2, 5) and loss.requires_grad
    loss.sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


@pytest.mark.gpu
@pytest.mark.parametrize("entry", TD_FWD + TD_BWD)
def test_td_cuda_tensors(cpp_ext, entry):
    """The eager entry point rejects CUDA tensors; the others take them with a CUDA build, and reject a CPU partner."""
    if entry == "categorical_td_eager":
        with pytest.raises(RuntimeError, match=r"^categorical_td_eager: logits must be a CPU tensor"):
            _td_call(cpp_ext, entry, device="cuda")
        return
    if not cpp_ext.with_cuda:
        pytest.skip("fastsac._C was not built with CUDA")
    assert _td_call(cpp_ext, entry, device="cuda") is not None
    partner = {"target_probs": torch.rand(5, 4)} if entry in TD_FWD else {"m": torch.rand(5, 4)}
    with pytest.raises(RuntimeError, match=r"must be on the device of logits"):
        _td_call(cpp_ext, entry, device="cuda", **partner)


def test_td_valid_path_agrees_and_takes_each_dtype(cpp_ext):
    """The pybind entry point, the eager one and the dispatcher op give the same bits; 16-bit logits take a float32
    target side, float64 logits a float64 one (the compute dtypes), and a float32 one is rejected for float64."""
    loss1, m1 = _td_call(cpp_ext, "categorical_td_fwd")
    loss2 = _td_call(cpp_ext, "categorical_td_eager")
    loss3, m3 = _td_call(cpp_ext, "op:categorical_td")
    assert torch.equal(loss1, loss2) and torch.equal(loss1, loss3) and torch.equal(m1, m3)
    for dtype in (torch.bfloat16, torch.float16, torch.float64):
        loss, m = _td_call(cpp_ext, "categorical_td_fwd", dtype=dtype)
        assert loss.dtype == dtype and m.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    with pytest.raises(RuntimeError, match=r"reward must have the compute dtype Double for Double logits"):
        _td_call(cpp_ext, "categorical_td_fwd", dtype=torch.float64, reward=torch.zeros(5))
