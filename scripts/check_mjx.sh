#!/usr/bin/env bash
# The MJX backend's tests (tests/data/test_mjx_backend.py, tests/training/test_mjx_training.py) in a venv with
# mujoco-mjx and JAX (CPU), which the main environment does not get (JAX and its dependencies are ~600 MB). The venv
# sees the system site packages (this checkout's editable fastsac, its torch, mujoco, pytest). Opt-in, like
# check_mjlab.sh: run it before every landing that touches the device env path. JAX's compilations are cached in
# ~/.cache/fastsac/jax-cache (the humanoid's first step compiles ~1.5 min on a 2-core CPU, ~20 s from the cache).
#
#   bash scripts/check_mjx.sh [--fresh] [--remove-venv] [--all]     # --all: the slow tests too
#
# Environment: FASTSAC_MJX_VENV (default ~/.cache/fastsac/venv-mjx), FASTSAC_MJX_SPEC (default "mujoco-mjx>=3.3"),
# PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv_lib.sh
VENV=${FASTSAC_MJX_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/fastsac/venv-mjx}
SPEC=${FASTSAC_MJX_SPEC:-mujoco-mjx>=3.3}
check_args check_mjx "$@"
start_work fastsac-mjx
TORCH=$("${PYTHON:-python3}" -c "import torch; print(torch.__version__.split('+')[0])")

step "venv with $SPEC, jax[cpu] and torch==$TORCH in $VENV"
ensure_venv "$VENV" "$FRESH" \
  "import jax, torch; from mujoco import mjx; assert torch.__version__.split('+')[0] == '$TORCH'" \
  "$SPEC" "jax[cpu]" "torch==$TORCH"
VPY=$VENV/bin/python
"$VPY" -c "import sys, torch, jax, mujoco; from importlib.metadata import version as v; print('python', sys.version.split()[0], '| torch', torch.__version__, '| jax', jax.__version__, '| mujoco', mujoco.__version__, '| mujoco-mjx', v('mujoco-mjx'))" 2>&1 | grep -v -i warp

step "pytest ${MARK[*]} on the mjx tests"
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/fastsac/jax-cache}
FASTSAC_REQUIRE_MJX=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} "$VPY" -m pytest -q -p no:cacheprovider "${MARK[@]}" \
  tests/data/test_mjx_backend.py tests/training/test_mjx_training.py

step "done in $((SECONDS - t0)) s"
