#!/usr/bin/env bash
# Set up fastsac in the current Python environment (idempotent; seconds when everything is already present).
# - keeps an installed torch;
# - otherwise installs the pinned CPU build (torch==2.13.0) where no CUDA exists, or the default CUDA build;
# - then installs fastsac itself (editable) with its test extra, building the C++ extension fastsac._C (about a
#   minute): with CUDA where a CUDA build of torch and a CUDA toolkit exist, CPU-only elsewhere. Where the CUDA
#   build is skipped, or a build fails, setup.py leaves one line saying why (pip hides build output), which this
#   script prints at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PIP="$PY -m pip --disable-pip-version-check"

if $PY -c "import torch" >/dev/null 2>&1; then
  echo "fastsac setup: keeping the installed torch $($PY -c 'import torch; print(torch.__version__)')"
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
  echo "fastsac setup: no torch; a CUDA device is present, installing the default (CUDA) torch build"
  $PIP install -q torch
else
  echo "fastsac setup: no torch and no CUDA; installing the pinned CPU build torch==2.13.0"
  $PIP install -q torch==2.13.0
fi

# Build in this environment (torch must be visible to setup.py to decide on the extension).
$PIP install -q setuptools wheel
$PIP install -q --no-build-isolation -e ".[test]"
command -v pyenv >/dev/null 2>&1 && pyenv rehash || true   # expose the `fastsac` command under pyenv shims
$PY -c "import fastsac, fastsac.ops as o, fastsac.ops.extension as e; print('fastsac setup: ok; op backends available here:', o.available_backends()); [print(n) for n in [e.build_note()] if n]"
