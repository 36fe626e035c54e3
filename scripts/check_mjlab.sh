#!/usr/bin/env bash
# The mjlab backend's tests (tests/data/test_mjlab_backend.py, tests/training/test_mjlab_training.py) in a venv with
# mjlab, which the main environment does not get: mjlab pins mujoco ~=3.11 (the suite's MuJoCo results use the
# installed mujoco) and brings MuJoCo Warp, rsl-rl-lib, wandb and viser (~730 MB). The venv sees the system site
# packages (this checkout's editable fastsac, its torch, gymnasium, pytest) and keeps torch at the installed version.
# Opt-in, like check_torch_floor.sh: run it before every landing that touches the device env path.
#
#   bash scripts/check_mjlab.sh [--fresh] [--remove-venv] [--all]     # --all: the slow learning test too
#
# Environment: FASTSAC_MJLAB_VENV (default ~/.cache/fastsac/venv-mjlab), FASTSAC_MJLAB_SPEC (default
# "mjlab>=1.6,<1.7"), PYTHON. The first env creation compiles Warp's kernels (~50 s, cached in ~/.cache/warp).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv_lib.sh
VENV=${FASTSAC_MJLAB_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/fastsac/venv-mjlab}
SPEC=${FASTSAC_MJLAB_SPEC:-mjlab>=1.6,<1.7}
check_args check_mjlab "$@"
start_work fastsac-mjlab
TORCH=$("${PYTHON:-python3}" -c "import torch; print(torch.__version__.split('+')[0])")

step "venv with $SPEC and torch==$TORCH in $VENV"
ensure_venv "$VENV" "$FRESH" \
  "import mjlab, torch; assert torch.__version__.split('+')[0] == '$TORCH'" \
  "$SPEC" "torch==$TORCH"
VPY=$VENV/bin/python
# rsl-rl-lib declares torchvision, whose index build is linked against a CUDA torch: with a CPU torch its import
# fails (torchvision::nms). Neither mjlab nor fastsac imports it.
if "$VPY" -m pip show -q torchvision >/dev/null 2>&1 && ! "$VPY" -c "import torchvision" >/dev/null 2>&1; then
  "$VPY" -m pip uninstall -q -y torchvision
fi
"$VPY" -c "import sys, torch, mujoco, warp, mjlab; from importlib.metadata import version as v; print('python', sys.version.split()[0], '| torch', torch.__version__, '| mjlab', v('mjlab'), '| mujoco', mujoco.__version__, '| warp', warp.__version__)" 2>&1 | grep -v "CUDA driver"

step "pytest ${MARK[*]} on the mjlab tests"
FASTSAC_REQUIRE_MJLAB=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} "$VPY" -m pytest -q -p no:cacheprovider "${MARK[@]}" \
  tests/data/test_mjlab_backend.py tests/training/test_mjlab_training.py

step "done in $((SECONDS - t0)) s"
