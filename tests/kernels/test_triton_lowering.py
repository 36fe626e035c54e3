"""Every Triton kernel variant the launchers use lowers for the H100 (sm_90), proven without a GPU.

Ahead-of-time compilation (``triton.compile(ASTSource(...), target=GPUTarget("cuda", 90, 32))``) runs the whole
NVIDIA pipeline here: TTIR -> TTGIR -> LLVM IR -> PTX -> cubin (ptxas). Each case is a GPU *problem* (dtype, N, A,
options); the test derives the launch exactly as the launcher would on the GPU (``_gpu_launch_config``) and as the
Triton runtime would specialise it (N or A equal to 1 become constants; 16-aligned pointers and multiples of 16 get
divisibility hints), then checks that PTX and a cubin come out, that fp32 -> bf16/fp16 stores round to nearest
(``cvt.rn``), and, when Triton's bundled cuobjdump is present, that nothing spills to local memory.

The compilation runs in one child process without ``TRITON_INTERPRET``: once the interpreter is on (tests/conftest.py
sets it on CPU machines before Triton is imported), Triton's own library functions (``tl.sum``'s combine function,
...) are interpreter objects and cannot be compiled in that process.

The default set covers every flag on and off and every pair of flags in all four combinations (a covering array),
each dtype and each launch-shape class (and the categorical TD loss's two kernels on 4 problems each): 28 compiles,
~50 s on the CI machine (a few seconds when Triton's
on-disk cache already holds the unchanged kernels). ``FASTSAC_AOT_ALL=1`` compiles the
full cross product instead (minutes).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import pytest
import torch

triton = pytest.importorskip("triton")
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

H100 = GPUTarget("cuda", 90, 32)
PTR_TYPE = {torch.float32: "*fp32", torch.bfloat16: "*bf16", torch.float16: "*fp16"}
CVT = {torch.bfloat16: "cvt.rn.bf16", torch.float16: "cvt.rn.f16"}  # .f32 -> one value, x2.f32 -> a packed pair
FULL = os.environ.get("FASTSAC_AOT_ALL") == "1"
FP32_PTRS = {"scale_ptr", "bias_ptr", "partial_ptr"}  # always float32, whatever the input dtype
DTYPE_NAMES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
SG_FWD_FLAG_NAMES = ("HAS_SCALE", "HAS_BIAS", "HAS_BOUNDS", "WANT_SUM")
KERNELS = {  # kind -> (module, kernel, flag names in the order the cases give them)
    "sg_fwd": ("squashed_gaussian", "_squashed_gaussian_fwd_kernel", SG_FWD_FLAG_NAMES),
    "sg_bwd": ("squashed_gaussian", "_squashed_gaussian_bwd_kernel", ("HAS_SCALE", "HAS_BOUNDS")),
    "cat_fwd": ("categorical", "_categorical_fwd_kernel", ("WANT_SUM",)),
    "cat_bwd": ("categorical", "_categorical_bwd_kernel", ()),
}


def _cuobjdump():
    import triton.backends.nvidia as nv

    path = os.path.join(os.path.dirname(nv.__file__), "bin", "cuobjdump")
    return path if os.path.exists(path) else shutil.which("cuobjdump")


# The categorical TD loss's kernels (kernels/categorical_td.py): (C, B, K) problems, no flags.
TD_PTRS_IN_DTYPE = {"logits_ptr", "loss_ptr", "grad_ptr", "d_ptr"}  # the others are float32 whatever the dtype
TD_PROBLEMS = ((2, 1 << 16, 101), (2, 256, 51), (1, 1, 2), (3, 64, 256))  # 256: categorical_td.MAX_K


def _td_source(kind, c, b, k, dtype):
    """``(ASTSource, num_warps)`` of a TD kernel launched by its launcher on the GPU for a (C, B, K) problem."""
    from fastsac.kernels import categorical_td as td

    if kind == "td_fwd":
        fn = td._categorical_td_fwd_kernel
        block_b, block_k, block_s, num_warps = td._gpu_fwd_config(k)
        constexprs = dict(BLOCK_B=block_b, BLOCK_K=block_k, BLOCK_S=block_s)
    else:
        fn = td._categorical_td_bwd_kernel
        block_n, block_k, num_warps = td._gpu_bwd_config(c * b, k)
        constexprs = dict(BLOCK_N=block_n, BLOCK_K=block_k)
    sizes = {"C": c, "B": b, "K": k, "N": c * b}
    signature, attrs = {}, {}
    for i, arg in enumerate(fn.arg_names):
        if arg in constexprs:
            signature[arg] = "constexpr"
        elif arg.endswith("_ptr"):
            signature[arg] = PTR_TYPE[dtype] if arg in TD_PTRS_IN_DTYPE else "*fp32"
            attrs[(i,)] = [["tt.divisibility", 16]]
        elif arg in sizes:
            if sizes[arg] == 1:  # the runtime turns an integer argument equal to 1 into a constant
                signature[arg], constexprs[arg] = "constexpr", 1
            else:
                signature[arg] = "i32"
                if sizes[arg] % 16 == 0:
                    attrs[(i,)] = [["tt.divisibility", 16]]
        else:  # gamma, v_min, v_max, dz, top
            signature[arg] = "fp32"
    return ASTSource(fn, signature, constexprs, attrs), num_warps


def compile_for_h100(kind, flags, n, a, dtype_name):
    """Compile one kernel for the H100 exactly as the launcher would launch it for an (n, a) problem, and describe
    the result. Runs in the child process (no interpreter). The TD kernels' problems are (C, B, K): ``flags`` is
    ``[C]``, ``n`` = B, ``a`` = K."""
    import importlib

    start = time.perf_counter()
    if kind.startswith("td_"):
        source, num_warps = _td_source(kind, flags[0], n, a, DTYPE_NAMES[dtype_name])
        return _describe(triton.compile(source, target=H100, options={"num_warps": num_warps}), num_warps, start)
    module_name, kernel_name, flag_names = KERNELS[kind]
    module = importlib.import_module(f"fastsac.kernels.{module_name}")
    fn, dtype = getattr(module, kernel_name), DTYPE_NAMES[dtype_name]
    block_n, block_a, num_warps = module._gpu_launch_config(n, a)
    constexprs = dict(zip(flag_names, map(bool, flags), strict=True), BLOCK_N=block_n, BLOCK_A=block_a)
    signature, attrs = {}, {}
    for i, arg in enumerate(fn.arg_names):
        if arg in constexprs:
            signature[arg] = "constexpr"
        elif arg.endswith("_ptr"):
            signature[arg] = "*fp32" if arg in FP32_PTRS else PTR_TYPE[dtype]
            attrs[(i,)] = [["tt.divisibility", 16]]  # torch allocations are 16-byte aligned
        elif arg in ("N", "A"):
            value = n if arg == "N" else a
            if value == 1:  # the runtime turns an integer argument equal to 1 into a constant
                signature[arg], constexprs[arg] = "constexpr", 1
            else:
                signature[arg] = "i32"
                if value % 16 == 0:
                    attrs[(i,)] = [["tt.divisibility", 16]]
        else:  # mid, half_range (float scalars)
            signature[arg] = "fp32"
    source = ASTSource(fn, signature, constexprs, attrs)
    return _describe(triton.compile(source, target=H100, options={"num_warps": num_warps}), num_warps, start)


def _describe(compiled, num_warps, start):
    ptx, cubin = compiled.asm.get("ptx", ""), compiled.asm.get("cubin", b"")
    result = {
        "num_warps": num_warps,
        "metadata_num_warps": compiled.metadata.num_warps,
        "ptx_sm90": ".target sm_90" in ptx,
        "cubin_bytes": len(cubin) if isinstance(cubin, bytes) else 0,
        "loads_and_stores": bool(re.search(r"ld\.global", ptx) and re.search(r"st\.global", ptx)),
        "cvt": sorted(set(re.findall(r"cvt\.rn\.(?:bf16|f16)(?:x2)?\.f32", ptx))),
        "seconds": round(time.perf_counter() - start, 2),
        "usage": None,
    }
    tool = _cuobjdump()
    if tool is not None and result["cubin_bytes"]:
        with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
            f.write(cubin)
            f.flush()
            dump = subprocess.run([tool, "--dump-resource-usage", f.name], capture_output=True, text=True)
            result["usage"] = dump.stdout
    return result


def assert_lowered(result, dtype_name):
    assert "error" not in result, result.get("error")
    assert result["ptx_sm90"], "PTX not generated for sm_90"
    assert result["cubin_bytes"] > 1000, "no cubin"
    assert result["metadata_num_warps"] == result["num_warps"]
    assert result["loads_and_stores"]
    dtype = DTYPE_NAMES[dtype_name]
    if dtype in CVT:  # outputs round to nearest even (the interpreter-side patch in test_triton_kernels mirrors it)
        assert any(c.startswith(CVT[dtype]) for c in result["cvt"]), f"no {CVT[dtype]}(x2).f32 in the PTX"
    usage = result["usage"]
    if usage is None:  # no cuobjdump here: PTX and cubin are still proven
        return
    regs, local = re.search(r"REG:(\d+)", usage), re.search(r"LOCAL:(\d+)", usage)
    assert regs and local, usage
    assert int(local.group(1)) == 0, f"register spills to local memory: {usage}"
    assert int(regs.group(1)) * 32 * result["num_warps"] <= 65536, f"a program does not fit one SM's registers: {usage}"


# Problems: (N, A) pairs covering each launch-shape class: large N with the two target action sizes, the SAC
# training batch, batch-1 acting (N = 1 becomes a constant), A = 1 and A a multiple of 16 (vectorisable).
DTYPES = ("float32", "bfloat16", "float16")
SG_PROBLEMS = ((1 << 20, 6), (1 << 20, 17), (256, 64), (1, 6), (256, 1), (255, 17), (64, 4096))  # 4096: MAX_A
CAT_PROBLEMS = ((1 << 20, 6), (256, 17), (1, 64), (4096, 1024), (64, 8192))  # 8192: categorical.MAX_A
# Covering array over (HAS_SCALE, HAS_BIAS, HAS_BOUNDS, WANT_SUM): every pair of flags in all 4 combinations,
# plus everything on (continuous SAC with bounds, scale/bias and the fused alpha loss).
SG_FWD_FLAGS = ((0, 0, 0, 0), (0, 1, 1, 1), (1, 0, 1, 1), (1, 1, 0, 1), (1, 1, 1, 0), (1, 1, 1, 1))
SG_BWD_FLAGS = ((0, 0), (0, 1), (1, 0), (1, 1))  # (HAS_SCALE, HAS_BOUNDS)


def _rotate(kind, rows, problems, dtypes):
    """Pair each flag row with a problem and a dtype, cycling, so every row, problem and dtype is compiled."""
    count = max(len(rows), len(problems), len(dtypes))
    return [(kind, rows[i % len(rows)], problems[i % len(problems)], dtypes[i % len(dtypes)]) for i in range(count)]


if FULL:
    CASES = [
        *itertools.product(["sg_fwd"], itertools.product((0, 1), repeat=4), SG_PROBLEMS, DTYPES),
        *itertools.product(["sg_bwd"], SG_BWD_FLAGS, SG_PROBLEMS, DTYPES),
        *itertools.product(["cat_fwd"], ((0,), (1,)), CAT_PROBLEMS, DTYPES),
        *itertools.product(["cat_bwd"], ((),), CAT_PROBLEMS, DTYPES),
    ]
else:
    CASES = [
        *_rotate("sg_fwd", SG_FWD_FLAGS, SG_PROBLEMS, DTYPES),
        *_rotate("sg_bwd", SG_BWD_FLAGS, SG_PROBLEMS[2:], ("bfloat16", "float32", "float16")),
        *_rotate("cat_fwd", ((1,), (0,), (1,), (0,), (1,)), CAT_PROBLEMS, ("float32", "bfloat16")),
        *_rotate("cat_bwd", ((),), (CAT_PROBLEMS[0], CAT_PROBLEMS[3], CAT_PROBLEMS[4]), ("float32", "float16")),
    ]
CASES += [(kind, (c,), (b, k), d) for kind in ("td_fwd", "td_bwd")
          for (c, b, k), d in zip(TD_PROBLEMS, ("float32", "bfloat16", "float16", "float32"))]
CASE_IDS = [f"{k}-{''.join(map(str, f)) or 'x'}-N{n}-A{a}-{d}" for k, f, (n, a), d in CASES]


@pytest.fixture(scope="module")
def lowered():
    """Compile every case in one child process without the interpreter; ``{case id: result}``."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    payload = json.dumps([[k, list(f), n, a, d] for k, f, (n, a), d in CASES])
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__)], input=payload, capture_output=True, text=True, env=env,
        timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, f"AOT compilation child failed:\n{proc.stderr[-4000:]}"
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    return dict(zip(CASE_IDS, results, strict=True))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_kernel_lowers_for_h100(case, lowered):
    assert_lowered(lowered[CASE_IDS[CASES.index(case)]], case[3])


def test_coverage_of_the_default_set():
    """The default (fast) set still turns every flag on and off and compiles every dtype and problem."""
    by_kind = {kind: [c for c in CASES if c[0] == kind] for kind in KERNELS}
    for kind, width in (("sg_fwd", 4), ("sg_bwd", 2)):
        for i, j in itertools.combinations(range(width), 2):
            assert {(f[i], f[j]) for _, f, _, _ in by_kind[kind]} == {(0, 0), (0, 1), (1, 0), (1, 1)}
    for kind in ("sg_fwd", "sg_bwd", "cat_fwd", "cat_bwd"):
        assert len({d for *_, d in by_kind[kind]}) >= 2
    assert {d for *_, d in by_kind["sg_fwd"]} == set(DTYPES)
    assert {p for _, _, p, _ in by_kind["sg_fwd"]} == set(SG_PROBLEMS)
    assert {p for _, _, p, _ in by_kind["cat_fwd"]} == set(CAT_PROBLEMS)
    assert {f for _, f, _, _ in by_kind["cat_fwd"]} == {(0,), (1,)}

    import fastsac.kernels.categorical as cat

    import fastsac.kernels.squashed_gaussian as sg

    import fastsac.kernels.categorical_td as td

    assert CAT_PROBLEMS[-1][1] == cat.MAX_A and SG_PROBLEMS[-1][1] == sg.MAX_A, "compile the longest rows accepted"
    assert TD_PROBLEMS[-1][2] == td.MAX_K, "compile the largest support accepted"


if __name__ == "__main__":  # the child: compile the cases given on stdin, print one JSON line of results
    out = []
    for kind, flags, n, a, dtype_name in json.loads(sys.stdin.read()):
        try:
            out.append(compile_for_h100(kind, flags, n, a, dtype_name))
        except Exception as exc:  # reported per case by the parent
            out.append({"error": f"{type(exc).__name__}: {exc}"[-3000:]})
    print(json.dumps(out))
