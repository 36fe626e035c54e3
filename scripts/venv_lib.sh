# Shared by scripts/check_cuda_build.sh, check_torch_floor.sh, check_mjlab.sh and check_mjx.sh (sourced, not run): a
# cached venv with a given torch, a copy of this checkout to install from (so no build output lands in the working
# tree), and the checks' options.

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

# check_args NAME ARGS...: the options of a venv check (check_torch_floor.sh, check_mjlab.sh): --fresh (FRESH=1),
# --remove-venv (REMOVE=1), --all (MARK empty: the slow tests too; default MARK=(-m "not slow")); anything else
# exits 2 naming NAME.
check_args() {
  local name=$1 arg
  shift
  FRESH=0 REMOVE=0 MARK=(-m "not slow")
  for arg in "$@"; do
    case $arg in
      --fresh) FRESH=1 ;;
      --remove-venv) REMOVE=1 ;;
      --all) MARK=() ;;
      *) echo "$name: unknown argument $arg (use --fresh, --remove-venv, --all)" >&2; exit 2 ;;
    esac
  done
}
