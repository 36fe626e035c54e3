#!/usr/bin/env bash
# Every GPU check in one call on a lent CUDA machine, most important figures first, in at most BUDGET seconds
# (default 470: one device call of 8 minutes on an H200, with room to copy $OUT back):
#
#   1. machine     GPU, driver, Python / torch / triton versions, revision
#   2. wheels      carried gymnasium + mujoco wheels from .wheels/ (the machine has no internet)
#   3. build       FASTSAC_FORCE_CUDA=1 pip install -e . (the extension, every default arch), import fastsac._C
#   4. gpu_tests   every op x dtype x backend on the GPU (accuracy, gradients, opcheck, low precision), the
#                  extension's CUDA tests, the self-check of the real kernels
#   5. capture     CUDA-graph capture of both updates (SAC, discrete SAC) on every backend, Triton under capture,
#                  compiled + captured update = eager, a CPU checkpoint resumed on the GPU, a device env's training
#                  loop under torch.cuda.set_sync_debug_mode("error")
#   6. bench_ops   op bandwidth at 2^20 rows against a device copy (bench/bench_ops.py)
#   7. bench_update  compiled + graphed update time against a CleanRL-style eager update (bench/bench_update.py)
#   8. e2e         end-to-end HalfCheetah-v5 steps/s (bench/bench_sps.py)
#   9. parallel    the FastSAC regime: 4096 device envs (torch Pendulum), FastSAC's networks, bf16, 8 updates a
#                  vector step, for 60 s: env steps/s, updates, returns
#  10. locomotion  the FastSAC regime on a GPU simulator: MJX-Humanoid-v0 (MJX on JAX, through DLPack) at 4096 envs
#                  with its FastSAC preset for a fixed wall time: env steps/s, updates and returns per row
#  11. dist        data parallel on 2 GPUs (torchrun, NCCL, compiled + captured update); skipped on 1 GPU
#
# Each step has its own time limit (cut to what is left of the budget), writes $OUT/<step>.log, and adds a line
# to $OUT/summary.txt; JSON results go to $OUT too. FASTSAC_STRICT=1: a fast path that falls back is a failure.
#
#   bash scripts/gpu_checks.sh              # on the GPU machine, from anywhere; OUT defaults to ./gpu_out
#   bash scripts/gpu_checks.sh --dry-run    # on a CPU: every step runs its CPU equivalent or checks what it would
#                                           # run (the scripts and flags exist, the test selections are not empty)
#
# Carried wheels: `pip download --only-binary=:all: --python-version 3.12 -d .wheels gymnasium mujoco` and `pip
# download --no-deps --only-binary=:all: --python-version 3.12 -d .wheels mujoco-mjx trimesh` (the GPU machine has
# JAX; its jaxlib would not fit a call's 64 MiB) on a machine with internet; .wheels/ is git-ignored, so name it in
# the device call's carry list. Without them the end-to-end and locomotion steps use what is installed, or are
# skipped and say so.
set -uo pipefail
SELF=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
cd "$(dirname "$0")/.."
DRY=${GPU_CHECKS_DRY:-0} STEP=""
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) DRY=1 ;;
    --step) STEP=$2; shift ;;  # internal: run one step's function (so that `timeout` can limit it)
    *) echo "gpu_checks: unknown argument $1 (use --dry-run)" >&2; exit 2 ;;
  esac
  shift
done
OUT=${OUT:-gpu_out}
BUDGET=${BUDGET:-470}
PY=${PYTHON:-python}
export OUT PY GPU_CHECKS_DRY=$DRY FASTSAC_STRICT=1 PYTHONUNBUFFERED=1 MAX_JOBS=${MAX_JOBS:-16}
t0=$SECONDS
status=0

# run_step NAME LIMIT: the step's function under its own timeout (LIMIT, cut to the budget left), logged to
# $OUT/NAME.log, its verdict and seconds added to $OUT/summary.txt.
run_step() {
  local name=$1 limit=$2 left=$((BUDGET - (SECONDS - t0)))
  [ "$limit" -gt "$left" ] && limit=$left
  echo; echo "=== [$((SECONDS - t0)) s] $name (limit $limit s) ==="
  if [ "$limit" -lt 5 ]; then
    echo "skipped: the budget of $BUDGET s is spent"; printf '%-13s %-20s\n' "$name" "SKIPPED (budget)" >>"$OUT/summary.txt"
    status=1; return
  fi
  local start=$SECONDS rc verdict
  timeout --kill-after=10 "$limit" bash "$SELF" --step "$name" >"$OUT/$name.log" 2>&1
  rc=$?
  tail -n "${TAIL:-30}" "$OUT/$name.log"
  case $rc in
    0) verdict=ok ;;
    124|137) verdict="TIMEOUT ($limit s)"; status=1 ;;
    *) verdict="FAILED (rc $rc)"; status=1 ;;
  esac
  printf '%-13s %-20s %4d s\n' "$name" "$verdict" "$((SECONDS - start))" >>"$OUT/summary.txt"
}

# would_run PROGRAM ARGS...: (dry run) show the command, and check that PROGRAM (a script, or -m MODULE with its
# subcommands) runs and takes every --flag given.
would_run() {
  echo "would run: $PY $*"
  local prog=() rest=() help flag
  if [ "$1" = -m ]; then prog=(-m "$2"); rest=("${@:3}"); else prog=("$1"); rest=("${@:2}"); fi
  while [ ${#rest[@]} -gt 0 ] && [[ ${rest[0]} != -* ]]; do prog+=("${rest[0]}"); rest=("${rest[@]:1}"); done
  help=$("$PY" "${prog[@]}" --help) || { echo "${prog[*]} --help failed"; return 1; }
  for flag in "${rest[@]}"; do
    case $flag in --*) grep -q -- "$flag" <<<"$help" || { echo "${prog[*]} has no flag $flag"; return 1; } ;; esac
  done
  echo "${prog[*]}: runs, and takes every flag above"
}

# pytest_step ARGS...: the tests on the GPU; in a dry run, only collected (the selection must not be empty).
pytest_step() {
  if [ "$DRY" = 1 ]; then "$PY" -m pytest -q -p no:cacheprovider --collect-only "$@" | tail -3; return "${PIPESTATUS[0]}"; fi
  "$PY" -m pytest -q -p no:cacheprovider -rfEs "$@"
}

machine() {
  if [ "$DRY" = 1 ]; then echo "would run: nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv"
  else nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || return 1; fi
  "$PY" -c "import sys, torch, triton; print('python', sys.version.split()[0], '| torch', torch.__version__, '| CUDA', torch.version.cuda, '| triton', triton.__version__, '| GPU', torch.cuda.is_available())"
  git rev-parse --short HEAD 2>/dev/null || echo "(no git revision)"
}

wheels() {
  if [ ! -d .wheels ]; then echo "no .wheels/ here: the end-to-end step will use what is installed"; return 0; fi
  local dry=(); [ "$DRY" = 1 ] && dry=(--dry-run)
  local pkgs=(gymnasium mujoco)
  compgen -G ".wheels/mujoco_mjx-*.whl" >/dev/null && pkgs+=(mujoco-mjx)
  "$PY" -m pip install -q "${dry[@]}" --disable-pip-version-check --no-index --find-links .wheels "${pkgs[@]}"
}

build() {
  local cmd=("$PY" -m pip install -v --disable-pip-version-check --no-build-isolation --no-deps -e .)
  if [ "$DRY" = 1 ]; then
    echo "would run: FASTSAC_FORCE_CUDA=1 ${cmd[*]}"
    "$PY" - <<'EOF'
import importlib.util
spec = importlib.util.spec_from_file_location("fastsac_setup", "setup.py")
setup = importlib.util.module_from_spec(spec)
spec.loader.exec_module(setup)
print("toolkit:", setup.find_cuda_home(), "| nvcc arch flags:", " ".join(setup.cuda_arch_flags()))
EOF
    return
  fi
  FASTSAC_FORCE_CUDA=1 "${cmd[@]}" 2>&1 | grep -E "fastsac: |error|Successfully" | tail -20
  [ "${PIPESTATUS[0]}" -eq 0 ] || return 1
  "$PY" -c "import torch, fastsac._C as C, fastsac.ops as o; assert C.with_cuda; print('fastsac._C with CUDA | backends:', o.available_backends())"
}

GPU_TESTS=(tests/ops/test_squashed_gaussian.py tests/ops/test_categorical.py tests/ops/test_categorical_td.py
           tests/ops/test_selfcheck.py tests/ops/test_backend_selection.py tests/csrc/test_cuda_ext.py
           -k "low_precision or gradients_match_float64_autograd or gradcheck_float64 or alpha_loss_value or opcheck or large_batch or selfcheck or a_backend or failing or mismatch or strict or compiled_backend or test_cuda_ext or loss_and_gradient_match_float64 or projection_matches")
CAPTURE_TESTS=(tests/agents/test_fallbacks.py tests/agents/test_learner.py tests/agents/test_act_in_update.py
               tests/agents/test_flashsac.py tests/agents/test_categorical_critic.py tests/training/test_portability.py
               tests/training/test_device_env_training.py
               -k "every_backend or cuda_graph_update_matches_eager or cuda_graph_acting_update or on_the_gpu")

bench_ops() {
  local args=(bench/bench_ops.py --device cuda --sizes 4096 1048576 --dims 6 --json "$OUT/bench_ops.json")
  if [ "$DRY" = 1 ]; then would_run "${args[@]}"; else "$PY" "${args[@]}"; fi
}

bench_update() {
  local args=(bench/bench_update.py --device cuda --repeats 5)
  if [ "$DRY" = 1 ]; then would_run "${args[@]}"; else "$PY" "${args[@]}"; fi
}

e2e() {
  local args=(bench/bench_sps.py --device cuda --configs 1 --providers fastsac baseline --measure 2000
              --json "$OUT/bench_sps.json")
  if ! "$PY" -c "import gymnasium, mujoco" 2>/dev/null; then
    echo "skipped: gymnasium + mujoco are not installed (carry their cp312 wheels in .wheels/)"; return 0
  fi
  if [ "$DRY" = 1 ]; then would_run "${args[@]}"; else "$PY" "${args[@]}"; fi
}

dist() {  # data parallel on 2 GPUs: NCCL, the functional all-reduce in the compiled + captured update
  local n
  n=$("$PY" -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null || echo 0)
  local worker=(-m torch.distributed.run --standalone --nproc-per-node 2 tests/training/dist_worker.py "$OUT" 4 compile cuda)
  local run=(-m torch.distributed.run --standalone --nproc-per-node 2 -m fastsac train --device cuda
             --out "$OUT/dist_run" --total-steps 20000 --no-progress)
  if [ "$DRY" = 1 ]; then
    [ -f tests/training/dist_worker.py ] || { echo "missing tests/training/dist_worker.py"; return 1; }
    echo "would run: $PY ${worker[*]}"
    "$PY" -m torch.distributed.run --help >/dev/null || { echo "torch.distributed.run --help failed"; return 1; }
    would_run "${run[@]:5}"  # the trainer under torchrun: -m fastsac train and its flags
    return
  fi
  if [ "${n:-0}" -lt 2 ]; then echo "skipped: fewer than 2 GPUs here"; return 0; fi
  "$PY" "${worker[@]}" && "$PY" "${run[@]}"
}

parallel() {  # the FastSAC regime on a device env: Pendulum-v1-sac-fastsac (LayerNorm + SiLU networks, C51, bf16
  # autocast, observation normalization) at the published G1 preset's scale: 4096 torch Pendulum envs on the GPU,
  # FastSAC's widths, batch 8192, 8 updates a vector step as one captured block, trained for a fixed wall time
  # (interrupted with SIGINT: a checkpoint, then exit); metrics.csv has env steps/s, updates and the training return
  # per row. Locomotion at 4096 envs needs a GPU simulator there (mjlab's Warp or MJX), which that machine lacks.
  local args=(-m fastsac train --preset Pendulum-v1-sac-fastsac --num-envs 4096 --device cuda
              --hidden-sizes 512 256 128 --critic-hidden-sizes 768 384 192 --buffer-size 4194304
              --total-steps 409600000 --learning-starts 40960 --batch-size 8192 --utd 0.001953125
              --log-every 204800 --eval-every 0 --checkpoint-every 0 --out "$OUT/parallel_run" --no-progress)
  if [ "$DRY" = 1 ]; then would_run "${args[@]}"; return; fi
  timeout -s INT 60 "$PY" "${args[@]}" || true
  [ -f "$OUT/parallel_run/metrics.csv" ] || { echo "no metrics.csv"; return 1; }
  cut -d, -f1-7 "$OUT/parallel_run/metrics.csv"
  grep -o '"fallbacks": \[[^]]*\]' "$OUT/parallel_run/summary.json" || true
}

locomotion() {  # MJX-Humanoid-v0-sac-fastsac at 4096 envs on the GPU (MJX on JAX's GPU, DLPack to torch) for a
  # fixed wall time (SIGINT: a checkpoint, then exit); JAX compiles the humanoid's step first (a minute or so)
  local args=(-m fastsac train --preset MJX-Humanoid-v0-sac-fastsac --device cuda --log-every 204800 --eval-every 0
              --checkpoint-every 0 --out "$OUT/locomotion_run" --no-progress)
  if ! "$PY" -c "import jax; from mujoco import mjx" 2>/dev/null; then
    echo "skipped: mujoco-mjx or JAX is not installed (carry the mujoco and mujoco-mjx cp312 wheels in .wheels/)"
    return 0
  fi
  if [ "$DRY" = 1 ]; then would_run "${args[@]}"; return; fi
  timeout -s INT 150 "$PY" "${args[@]}" || true
  [ -f "$OUT/locomotion_run/metrics.csv" ] || { echo "no metrics.csv"; return 1; }
  cut -d, -f1-7 "$OUT/locomotion_run/metrics.csv"
  grep -o '"fallbacks": \[[^]]*\]' "$OUT/locomotion_run/summary.json" || true
}

gpu_tests() { pytest_step "${GPU_TESTS[@]}"; }
capture() { pytest_step "${CAPTURE_TESTS[@]}"; }

if [ -n "$STEP" ]; then "$STEP"; exit $?; fi
mkdir -p "$OUT"
: >"$OUT/summary.txt"
[ "$DRY" = 1 ] && echo "gpu_checks: DRY RUN (no GPU needed); results in $OUT"
run_step machine 15
run_step wheels 30
run_step build 120
run_step gpu_tests 80
run_step capture 90
run_step bench_ops 35
run_step bench_update 40
run_step e2e 60
run_step parallel 75
run_step locomotion 170
run_step dist 60
echo; echo "=== [$((SECONDS - t0)) s] summary ($OUT/summary.txt) ==="
cat "$OUT/summary.txt"
exit $status
