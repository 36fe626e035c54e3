"""fastsac.data.buffer.ReplayBuffer: circular adds, on-device sampling, low precision, checkpoints, errors."""

from __future__ import annotations

import pytest
import torch

from fastsac.data import buffer as buffer_mod
from fastsac.data.buffer import Batch, ReplayBuffer

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def rows(start: int, n: int, obs_dim: int = 3, act_dim: int = 2, device="cpu"):
    """n transitions whose every field encodes its global index i = start..start+n-1."""
    i = torch.arange(start, start + n, dtype=torch.float32, device=device)
    obs = i[:, None] * 10 + torch.arange(obs_dim, device=device)
    return (
        obs,
        i[:, None] + 0.25 * torch.arange(act_dim, device=device),
        -i,
        obs + 0.5,
        (torch.arange(start, start + n, device=device) % 3 == 0),
    )


@pytest.mark.parametrize("device", DEVICES)
def test_add_and_wrap_around(device):
    buf = ReplayBuffer(7, 3, 2, device=device)
    assert len(buf) == 0 and buf.size == 0 and buf.pos == 0
    buf.add(*rows(0, 5, device=device))
    assert (len(buf), buf.pos, int(buf.size_tensor)) == (5, 5, 5)
    buf.add(*rows(5, 4, device=device))  # 2 rows at the end, 2 wrap to the front
    assert (len(buf), buf.pos, int(buf.size_tensor)) == (7, 2, 7)
    # slot k holds the newest transition whose index is congruent to k mod 7: indices 7, 8, 2, 3, 4, 5, 6
    want = torch.tensor([7, 8, 2, 3, 4, 5, 6], dtype=torch.float32, device=device)
    assert torch.equal(buf.reward, -want)
    assert torch.equal(buf.obs[:, 0], want * 10)
    assert torch.equal(buf.next_obs[:, 2], want * 10 + 2.5)
    assert torch.equal(buf.action[:, 1], want + 0.25)
    assert torch.equal(buf.terminated, (want.long() % 3 == 0).float())
    buf.add(*rows(9, 7, device=device))  # exactly one capacity from pos 2: wraps, pos unchanged
    assert (len(buf), buf.pos) == (7, 2)
    assert sorted((-buf.reward).tolist()) == list(range(9, 16))


def test_sample_covers_exactly_the_filled_part():
    buf = ReplayBuffer(1000, 3, 2, device="cpu")
    buf.add(*rows(0, 37))
    g = torch.Generator().manual_seed(0)
    b = buf.sample(20000, generator=g)
    idx = (-b.reward).long()
    counts = torch.bincount(idx, minlength=1000)
    assert counts[37:].sum() == 0  # never an unfilled row
    assert (counts[:37] > 0).all()
    # uniform: 20000/37 = 540.5 per row, sd ~ 23; 6 sd bounds
    assert counts[:37].min() > 540 - 140 and counts[:37].max() < 540 + 140
    # every field of a sampled row comes from the same transition
    assert torch.equal(b.obs[:, 0], idx.float() * 10)
    assert torch.equal(b.next_obs[:, 1], idx.float() * 10 + 1.5)
    assert torch.equal(b.action[:, 0], idx.float())
    assert torch.equal(b.terminated, (idx % 3 == 0).float())


def test_sample_shapes_dtypes_and_generator_reproducibility():
    buf = ReplayBuffer(50, 4, (2, 3), device="cpu", obs_dtype=torch.bfloat16)
    buf.add(torch.randn(10, 4), torch.randn(10, 2, 3), torch.randn(10), torch.randn(10, 4),
            torch.rand(10) < 0.5)  # fmt: skip
    b = buf.sample(8, generator=torch.Generator().manual_seed(1))
    assert isinstance(b, Batch)
    assert b.obs.shape == (8, 4) and b.obs.dtype == torch.float32
    assert b.next_obs.shape == (8, 4) and b.next_obs.dtype == torch.float32
    assert b.action.shape == (8, 2, 3) and b.action.dtype == torch.float32
    assert b.reward.shape == (8,) and b.reward.dtype == torch.float32
    assert b.terminated.shape == (8,) and b.terminated.dtype == torch.float32
    assert set(b.terminated.tolist()) <= {0.0, 1.0}
    b2 = buf.sample(8, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(x, y) for x, y in zip(b, b2))


def test_terminated_stored_truncated_not():
    """The env's final_obs goes in as next_obs; only true termination is a done flag."""
    buf = ReplayBuffer(4, 2, 1, device="cpu")
    final_obs = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    terminated = torch.tensor([True, False])
    truncated = torch.tensor([False, True])  # env 1 hit the time limit: must bootstrap
    buf.add(torch.zeros(2, 2), torch.zeros(2, 1), torch.ones(2), final_obs, terminated)
    assert truncated.any()
    assert torch.equal(buf.terminated[:2], torch.tensor([1.0, 0.0]))
    assert torch.equal(buf.next_obs[:2], final_obs)


@pytest.mark.parametrize("obs_dtype,eps", [(torch.float16, 2.0**-11), (torch.bfloat16, 2.0**-8)])
def test_low_precision_obs_storage_rounds_to_nearest(obs_dtype, eps):
    buf = ReplayBuffer(64, 5, 1, device="cpu", obs_dtype=obs_dtype)
    assert buf.obs.dtype == obs_dtype and buf.next_obs.dtype == obs_dtype
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(64, 5, generator=g) * 3
    buf.add(obs, torch.zeros(64, 1), torch.zeros(64), obs * 2, torch.zeros(64, dtype=torch.bool))
    assert torch.equal(buf.obs, obs.to(obs_dtype))  # round to nearest even, as a dtype cast does
    rel = ((buf.obs.float() - obs).abs() / obs.abs()).max()
    assert 0 < rel <= eps  # really rounded, within half an ulp
    b = buf.sample(32, generator=g)
    assert b.obs.dtype == torch.float32
    assert torch.equal(b.next_obs, (b.obs.to(obs_dtype).float() * 2).to(obs_dtype).float())
    full = ReplayBuffer.bytes_needed(1000, 5, (1,), torch.float32)
    half = ReplayBuffer.bytes_needed(1000, 5, (1,), obs_dtype)
    assert full - half == 1000 * 2 * 5 * 2


def test_discrete_actions():
    buf = ReplayBuffer(10, 3, 4, device="cpu", discrete=True)
    assert buf.action.shape == (10,) and buf.action.dtype == torch.int64 and buf.num_actions == 4
    buf.add(torch.zeros(3, 3), torch.tensor([0, 3, 2]), torch.zeros(3), torch.zeros(3, 3), torch.zeros(3) > 0)
    b = buf.sample(16, generator=torch.Generator().manual_seed(0))
    assert b.action.shape == (16,) and b.action.dtype == torch.int64
    assert set(b.action.tolist()) <= {0, 2, 3}
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        buf.add(torch.zeros(1, 3), torch.tensor([4]), torch.zeros(1), torch.zeros(1, 3), torch.zeros(1) > 0)
    with pytest.raises(TypeError, match="integer dtype"):
        buf.add(torch.zeros(1, 3), torch.tensor([1.0]), torch.zeros(1), torch.zeros(1, 3), torch.zeros(1) > 0)


def test_add_validation_errors():
    buf = ReplayBuffer(10, 3, 2, device="cpu")
    ok = dict(obs=torch.zeros(2, 3), action=torch.zeros(2, 2), reward=torch.zeros(2), next_obs=torch.zeros(2, 3),
              terminated=torch.zeros(2, dtype=torch.bool))  # fmt: skip
    bad = [
        ("obs", torch.zeros(2, 4), ValueError, r"obs must have shape \(2, 3\)"),
        ("obs", torch.zeros(3), ValueError, r"obs must have shape \(N, 3\)"),
        ("obs", [[0.0] * 3] * 2, TypeError, "obs must be a torch.Tensor"),
        ("obs", torch.zeros(2, 3, dtype=torch.int32), TypeError, "obs must have a floating dtype"),
        ("action", torch.zeros(2, 3), ValueError, r"action must have shape \(2, 2\)"),
        ("action", torch.zeros(2, 2, dtype=torch.long), TypeError, "action must have a floating dtype"),
        ("reward", torch.zeros(2, 1), ValueError, r"reward must have shape \(2,\)"),
        ("next_obs", torch.zeros(1, 3), ValueError, r"next_obs must have shape \(2, 3\)"),
        ("terminated", torch.zeros(2, dtype=torch.long), TypeError, "terminated must have bool"),
    ]
    for key, value, exc, msg in bad:
        with pytest.raises(exc, match=msg):
            buf.add(**{**ok, key: value})
    with pytest.raises(ValueError, match="cannot add 11 transitions"):
        buf.add(*rows(0, 11))
    assert len(buf) == 0  # nothing was written by a rejected add
    with pytest.raises(ValueError, match="empty ReplayBuffer"):
        buf.sample(4)
    buf.add(**ok)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        buf.sample(0)


def test_constructor_validation_errors():
    with pytest.raises(ValueError, match="capacity must be >= 1"):
        ReplayBuffer(0, 3, 2, device="cpu")
    with pytest.raises(TypeError, match="capacity must be an int"):
        ReplayBuffer(1e6, 3, 2, device="cpu")
    with pytest.raises(ValueError, match="obs_dim must be >= 1"):
        ReplayBuffer(10, 0, 2, device="cpu")
    with pytest.raises(TypeError, match="obs_dtype must be a floating"):
        ReplayBuffer(10, 3, 2, device="cpu", obs_dtype=torch.int8)
    with pytest.raises(ValueError, match="action_shape_or_dim"):
        ReplayBuffer(10, 3, 0, device="cpu")


def test_state_dict_round_trip(tmp_path):
    src = ReplayBuffer(8, 3, 2, device="cpu", obs_dtype=torch.float16)
    src.add(*rows(0, 5))
    path = tmp_path / "buf.pt"
    torch.save(src.state_dict(), path)
    assert path.stat().st_size < 4096  # only the 5 filled rows are saved, not the whole storage
    dst = ReplayBuffer(8, 3, 2, device="cpu", obs_dtype=torch.float16)
    dst.load_state_dict(torch.load(path))
    assert (len(dst), dst.pos, int(dst.size_tensor)) == (5, 5, 5)
    for name in ("obs", "action", "reward", "next_obs", "terminated"):
        assert torch.equal(getattr(dst, name)[:5], getattr(src, name)[:5]), name
    # a full, wrapped buffer restores its write position: the next add overwrites the same rows in both
    src.add(*rows(5, 6))
    dst.load_state_dict(src.state_dict())
    assert (len(dst), dst.pos) == (8, 3)
    src.add(*rows(11, 2))
    dst.add(*rows(11, 2))
    assert torch.equal(src.reward, dst.reward) and torch.equal(src.obs, dst.obs)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert all(torch.equal(x, y) for x, y in zip(src.sample(16, generator=g1), dst.sample(16, generator=g2)))


def test_load_state_dict_rejects_other_configuration():
    state = ReplayBuffer(8, 3, 2, device="cpu").state_dict()
    with pytest.raises(ValueError, match="capacity=8 into a buffer with capacity=9"):
        ReplayBuffer(9, 3, 2, device="cpu").load_state_dict(state)
    with pytest.raises(ValueError, match="obs_dim=3 into a buffer with obs_dim=4"):
        ReplayBuffer(8, 4, 2, device="cpu").load_state_dict(state)
    with pytest.raises(ValueError, match="action_shape"):
        ReplayBuffer(8, 3, 3, device="cpu").load_state_dict(state)


def test_capacity_beyond_memory_fails_before_allocating(monkeypatch):
    need = ReplayBuffer.bytes_needed(1000, 17, (6,))
    assert need == 1000 * (2 * 17 * 4 + 6 * 4 + 4 + 4)
    monkeypatch.setattr(buffer_mod, "available_memory_bytes", lambda device: need)
    ReplayBuffer(1000, 17, 6, device="cpu")  # exactly fits
    allocated = []
    monkeypatch.setattr(buffer_mod.torch, "empty", lambda *a, **k: allocated.append(a))
    with pytest.raises(ValueError, match=r"needs 0\.00 GiB on cpu but only 0\.00 GiB is available"):
        ReplayBuffer(1001, 17, 6, device="cpu")
    assert allocated == []  # failed before any allocation
    monkeypatch.undo()
    # the real check on this machine: 10**12 transitions of HalfCheetah size is ~170 TB
    with pytest.raises(ValueError, match="lower the capacity or store observations as torch.bfloat16"):
        ReplayBuffer(10**12, 17, 6, device="cpu")
    assert buffer_mod.available_memory_bytes(torch.device("cpu")) > 0


def test_sample_traces_as_one_graph_without_recompiling():
    """sample() reads no host value that changes with adds: one graph, no recompilation as the size grows."""
    torch._dynamo.reset()
    buf = ReplayBuffer(100, 3, 2, device="cpu")
    buf.add(*rows(0, 4))

    @torch.compile(fullgraph=True, backend="eager")
    def draw(b: ReplayBuffer):
        return b.sample(64).reward

    with torch._dynamo.config.patch(error_on_recompile=True):
        for k in range(1, 4):
            r = draw(buf)
            assert set((-r).long().tolist()) <= set(range(4 * k))
            buf.add(*rows(4 * k, 4))
    torch._dynamo.reset()


@pytest.mark.gpu
def test_cuda_sample_in_cuda_graph_sees_new_adds():
    buf = ReplayBuffer(100, 3, 2, device="cuda")
    buf.add(*rows(0, 4, device="cuda"))
    buf.sample(64)  # warm up outside the graph
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = buf.sample(256).reward
    buf.add(*rows(4, 60, device="cuda"))
    graph.replay()
    idx = (-out).long()
    assert int(idx.max()) >= 4 and int(idx.max()) < 64  # the replay read the new size from the device


@pytest.mark.gpu
def test_cuda_memory_check():
    free, _ = torch.cuda.mem_get_info()
    with pytest.raises(ValueError, match="GiB on cuda"):
        ReplayBuffer(free // 100 + 1, 17, 6, device="cuda")
