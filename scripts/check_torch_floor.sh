#!/usr/bin/env bash
# Prove the lower end of the torch range pyproject.toml declares: install the lowest supported torch (and the
# triton it pins) in a venv, install a copy of this checkout there as a user would, and run the CPU test suite's
# fast part (-m "not slow": everything but the learning runs) on it. The floor is the lent GPU machine's versions:
# Python 3.12, torch 2.11, triton 3.6 (here with this machine's Python).
#
#   bash scripts/check_torch_floor.sh [--fresh] [--remove-venv] [--all]     # --all: the slow tests too
#
# Environment: FASTSAC_FLOOR_VENV (default ~/.cache/fastsac/venv-torch-floor), FASTSAC_FLOOR_TORCH (default
# torch==2.11.0), FASTSAC_FLOOR_TRITON (default triton==3.6.0), PYTHON. Needs about 5 GB of disk; where a CUDA
# toolkit matches that torch's CUDA, the install builds fastsac._C too. Result and time: bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv_lib.sh
VENV=${FASTSAC_FLOOR_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/fastsac/venv-torch-floor}
TORCH_SPEC=${FASTSAC_FLOOR_TORCH:-torch==2.11.0}
TRITON_SPEC=${FASTSAC_FLOOR_TRITON:-triton==3.6.0}
check_args check_torch_floor "$@"
start_work fastsac-torch-floor
want_torch=${TORCH_SPEC#torch==}
want_triton=${TRITON_SPEC#triton==}

step "venv with $TORCH_SPEC and $TRITON_SPEC in $VENV"
ensure_venv "$VENV" "$FRESH" \
  "import torch, triton; assert torch.__version__.split('+')[0] == '$want_torch' and triton.__version__ == '$want_triton'" \
  "$TORCH_SPEC" "$TRITON_SPEC" setuptools wheel ninja
VPY=$VENV/bin/python
"$VPY" -c "import sys, torch, triton; print('python', sys.version.split()[0], '| torch', torch.__version__, '| triton', triton.__version__)"

step "copy of the checkout in $WORK/src, pip install --no-build-isolation -e .[test]"
copy_checkout "$WORK/src"
(cd "$WORK/src" && "$VPY" -m pip install -q --disable-pip-version-check --no-build-isolation -e ".[test]" \
  >"$WORK/install.log" 2>&1) || { tail -40 "$WORK/install.log"; exit 1; }
(cd "$WORK/src" && "$VPY" -c "import fastsac.ops as o, fastsac.ops.extension as e; print('backends:', o.available_backends(), '| build note:', e.build_note())")

step "pytest ${MARK[*]} on the floor"
(cd "$WORK/src" && "$VPY" -m pytest -q -p no:cacheprovider "${MARK[@]}" 2>&1 | tail -8; exit "${PIPESTATUS[0]}")

step "done in $((SECONDS - t0)) s"
