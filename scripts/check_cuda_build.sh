#!/usr/bin/env bash
# Build the CUDA extension fastsac._C with nvcc against a CUDA build of torch, on a machine without a GPU, the way
# a user installs it, and check what can be checked without a GPU:
#   1. a venv with a CUDA build of torch (kept for the next run; --fresh recreates it, --remove-venv deletes it);
#   2. `pip install --no-build-isolation -e .` of a copy of this checkout, with no CUDA_HOME set: setup.py must find
#      the toolkit itself (behind a wrapper nvcc on PATH too), compile for every default arch, link, and install;
#   3. `import fastsac._C` (built with CUDA) and `available_backends()` naming 'cpp';
#   4. pytest in that venv: the setup tests (a deliberately wrong toolkit: the install succeeds with the one-line
#      note, FASTSAC_FORCE_CUDA=1 turns it into a failure), torch.library.opcheck on meta tensors and the fake
#      CUDA registrations, the C++ tests and every op test of the 'cpp' backend (the nvcc-built module's CPU code,
#      through the custom ops).
#
#   bash scripts/check_cuda_build.sh [--fresh] [--remove-venv]
#
# Environment: FASTSAC_CUDA_VENV (default ~/.cache/fastsac/venv-cuda-check), FASTSAC_CUDA_TORCH (default
# torch==2.14.1, a CUDA 13.0 build), PYTHON (the interpreter the venv is made from; default python3).
# Needs a CUDA toolkit whose major version matches torch's CUDA (here /usr/local/cuda-13.0) and about 6 GB of disk.
# CI runs it when FASTSAC_CUDA_BUILD_CHECK=1 (see .ci/run and bench/RESULTS.md for its time).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv_lib.sh
VENV=${FASTSAC_CUDA_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/fastsac/venv-cuda-check}
TORCH_SPEC=${FASTSAC_CUDA_TORCH:-torch==2.14.1}
FRESH=0 REMOVE=0
for arg in "$@"; do
  case $arg in
    --fresh) FRESH=1 ;;
    --remove-venv) REMOVE=1 ;;
    *) echo "check_cuda_build: unknown argument $arg (use --fresh, --remove-venv)" >&2; exit 2 ;;
  esac
done
start_work fastsac-cuda-check

step "venv with a CUDA build of torch ($TORCH_SPEC) in $VENV"
ensure_venv "$VENV" "$FRESH" "import torch; assert torch.version.cuda" "$TORCH_SPEC" setuptools wheel ninja
VPY=$VENV/bin/python
"$VPY" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, '| GPU present:', torch.cuda.is_available())"

step "copy of the checkout in $WORK/src"
copy_checkout "$WORK/src"

step "pip install --no-build-isolation -e . (no CUDA_HOME: setup.py finds the toolkit)"
build_start=$SECONDS
(cd "$WORK/src" && env -u CUDA_HOME -u CUDA_PATH -u FASTSAC_FORCE_CUDA -u TORCH_CUDA_ARCH_LIST \
  "$VPY" -m pip install -v --disable-pip-version-check --no-build-isolation --no-deps -e . >"$WORK/build.log" 2>&1) \
  || { tail -40 "$WORK/build.log"; exit 1; }
grep -E "^ *fastsac: " "$WORK/build.log" | sed "s/^ *//" || true
echo "build + install: $((SECONDS - build_start)) s"

step "import fastsac._C and ask for the backends"
(cd "$WORK/src" && "$VPY" - <<'EOF'
import torch  # noqa: F401  (fastsac._C links against torch's libraries)
import fastsac._C as C
from fastsac import ops
from fastsac.ops import extension

assert C.with_cuda, "fastsac._C was built without CUDA"
assert extension.load() is C
backends = ops.available_backends()
print("fastsac._C:", C.__file__, "| with_cuda:", C.with_cuda, "| available_backends():", backends,
      "| for cuda tensors:", ops.available_backends("cuda"))
assert "cpp" in backends, backends  # no GPU here: the compiled module's CPU code serves the 'cpp' backend
assert extension.build_note() is None, extension.build_note()
EOF
)

step "pytest: setup (wrong toolkit, FORCE), meta/fake CUDA registrations, the C++ tests, every 'cpp'-backend op test"
run_tests() { (cd "$WORK/src" && "$VPY" -m pytest -q -p no:cacheprovider "$@" 2>&1 | tail -4; exit "${PIPESTATUS[0]}"); }
run_tests tests/test_setup.py tests/ops/test_fake_cuda.py tests/csrc/test_cpp_cpu.py
run_tests tests/ops -k cpp

step "done in $((SECONDS - t0)) s"
