# Shared by scripts/check_cuda_build.sh and scripts/check_torch_floor.sh (sourced, not run): a cached venv with a
# given torch, and a copy of this checkout to install from (so no build output lands in the working tree).

# ensure_venv VENV FRESH CHECK_PY PACKAGE... : create VENV (system site packages: numpy, pytest, gymnasium, ...
# come from there) and install PACKAGE..., unless it exists and `python -c CHECK_PY` succeeds in it; FRESH=1
# recreates it.
ensure_venv() {
  local venv=$1 fresh=$2 check=$3
  shift 3
  if [ "$fresh" = 1 ]; then rm -rf "$venv"; fi
  if "$venv/bin/python" -c "$check" >/dev/null 2>&1; then
    echo "reusing $venv"
    return
  fi
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  "${PYTHON:-python3}" -m venv --system-site-packages "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "$@"
  "$venv/bin/python" -c "$check"
}

# copy_checkout DEST: the tracked and untracked (not ignored) files of the checkout in the current folder.
copy_checkout() {
  mkdir -p "$1"
  git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} cp --parents {} "$1/" 2>/dev/null || true
  test -f "$1/setup.py"
}

# start_work NAME: a temporary folder $WORK, removed at exit with $VENV too when REMOVE=1; starts the clock.
start_work() {
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  trap 'rm -rf "$WORK"; if [ "${REMOVE:-0}" = 1 ]; then rm -rf "$VENV"; fi' EXIT
  t0=$SECONDS
}

# step TEXT: a numbered heading with the seconds since the script started (needs t0=$SECONDS).
step() { echo; echo "=== [$((SECONDS - t0)) s] $* ==="; }
