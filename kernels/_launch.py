"""Launch shapes shared by the row-tiled kernels: the tile arithmetic and device placement, in one place.

Each op keeps its own tuned constants (tile size, lanes per thread, warp cap) next to its kernels and passes them
here; this module only turns them into ``(BLOCK_N, BLOCK_A, num_warps)``.
"""

from __future__ import annotations

import contextlib
import os

import torch
import triton
import triton.language as tl

# Read once, at import, exactly when @triton.jit reads it: it decides whether the kernels are interpreted.
INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"


@triton.jit
def row_tile(N, A, BLOCK_N: tl.constexpr, BLOCK_A: tl.constexpr):
    """This program's tile of row-major ``(N, A)`` data: rows, columns, their masks and the element offsets."""
    pid = tl.program_id(0)
    rows = pid.to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    cols = tl.arange(0, BLOCK_A)
    row_mask = rows < N
    col_mask = cols < A
    mask = row_mask[:, None] & col_mask[None, :]
    offs = rows[:, None] * A + cols[None, :]
    return pid, rows, cols, row_mask, col_mask, mask, offs


def gpu_launch_config(n_rows: int, n_cols: int, *, tile_lanes: int, lanes_per_thread: int, max_num_warps: int):
    """``(BLOCK_N, BLOCK_A, num_warps)`` on the GPU: a whole row per tile, ``tile_lanes`` lanes per program."""
    block_a = triton.next_power_of_2(n_cols)
    block_n = max(1, min(triton.next_power_of_2(n_rows), tile_lanes // block_a))
    num_warps = max(1, min(max_num_warps, (block_n * block_a) // (32 * lanes_per_thread)))
    return block_n, block_a, num_warps


def launch_config(n_rows: int, n_cols: int, device: torch.device, *, gpu_config, interpret_tile_lanes: int,
                  force_block_n: int | None):
    """The GPU shape on CUDA; under the interpreter one huge tile (each interpreted program costs ~15 ms of
    Python whatever its size); ``force_block_n`` is a test hook (several programs with a ragged last tile)."""
    if device.type == "cuda" and not INTERPRETED:
        block_n, block_a, num_warps = gpu_config(n_rows, n_cols)
    else:
        block_a = triton.next_power_of_2(n_cols)
        block_n = max(1, min(triton.next_power_of_2(n_rows), interpret_tile_lanes // block_a))
        num_warps = 1  # ignored by the interpreter
    if force_block_n is not None:
        block_n = force_block_n
    return block_n, block_a, num_warps


def on_device(device: torch.device):
    """Launch on the tensors' GPU, not whichever is current (Triton launches on the current device)."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()
