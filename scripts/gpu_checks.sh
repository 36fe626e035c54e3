#!/usr/bin/env bash
# Every GPU check in one call (for a lent CUDA machine): build the extension, run the GPU tests, run the op,
# update and end-to-end benchmarks, and leave logs + JSON under $OUT (default ./gpu_out).
#
#   bash scripts/gpu_checks.sh            # on the GPU machine, from the repository root
#
# The GPU machine has no internet: Python packages it lacks (gymnasium, mujoco) come as wheels in ./.wheels
# (fetch them here with `pip download --only-binary=:all: --python-version 3.12 -d .wheels gymnasium mujoco`),
# installed with --no-index. Without them the end-to-end benchmark is skipped and says so.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MAX_JOBS=${MAX_JOBS:-16}
status=0
step() { echo; echo "=== $* ==="; }

step "environment"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/env.txt"
python -c "import sys, torch, triton; print(sys.version.split()[0], 'torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$OUT/env.txt"
git rev-parse --short HEAD 2>/dev/null | tee -a "$OUT/env.txt" || true

if [ -d .wheels ]; then
  step "install carried wheels"
  python -m pip install -q --no-index --find-links .wheels gymnasium mujoco 2>&1 | tail -2
fi

step "build the CUDA extension"
FASTSAC_FORCE_CUDA=1 python -m pip install -q --no-build-isolation --no-deps -e . 2>&1 | tee "$OUT/build.log" | tail -5
python -c "import fastsac._C, fastsac.ops as o; print('backends:', o.available_backends())" || status=1

step "GPU tests (ops, kernels, extension, learner)"
python -m pytest -q -p no:cacheprovider tests/ops tests/kernels tests/csrc tests/test_learner.py tests/test_optim.py tests/test_entropy.py \
  tests/test_buffer.py 2>&1 | tee "$OUT/tests.log" | tail -25
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

step "op benchmark (providers side by side, bandwidth vs device copy)"
python bench/bench_ops.py --device cuda --json "$OUT/bench_ops.json" 2>&1 | tee "$OUT/bench_ops.log" | tail -70

step "update benchmark"
if [ -f bench/bench_update.py ]; then
  python bench/bench_update.py --device cuda 2>&1 | tee "$OUT/bench_update.log" | tail -20
fi

step "end-to-end steps/s (gymnasium MuJoCo HalfCheetah)"
if python -c "import gymnasium, mujoco" 2>/dev/null && [ -f bench/bench_sps.py ]; then
  python bench/bench_sps.py --device cuda 2>&1 | tee "$OUT/bench_sps.log" | tail -20
else
  echo "skipped: gymnasium + mujoco are not installed here (carry their cp312 wheels in ./.wheels)"
fi
step "data parallel (torchrun, NCCL; needs 2 GPUs)"
if [ "$(python -c 'import torch; print(torch.cuda.device_count())')" -ge 2 ]; then
  # The worker's compiled update: the functional all-reduce inside the one graph, captured in a CUDA graph.
  python -m torch.distributed.run --standalone --nproc-per-node 2 tests/training/dist_worker.py "$OUT" 4 compile cuda \
    2>&1 | tee "$OUT/dist.log" | tail -5
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  python -m torch.distributed.run --standalone --nproc-per-node 2 -m fastsac train --device cuda --out "$OUT/dist_run" \
    --total-steps 20000 --no-progress 2>&1 | tee -a "$OUT/dist.log" | tail -6
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
else
  echo "skipped: fewer than 2 GPUs here"
fi

exit $status
