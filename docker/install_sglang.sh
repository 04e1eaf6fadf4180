#!/usr/bin/env bash
# Install the patched sglang (the build context's python/, i.e. `make apply`'s tree) over the base
# image's sglang of the same version, without re-resolving dependencies: the base already holds
# that version's dependency set built for ROCm, and a resolver run could swap its torch for a CUDA one.
#
#   install_sglang.sh <path to python/ of the patched tree>
set -euo pipefail

die() { echo "install_sglang: $*" >&2; exit 1; }

SRC="${1:?usage: install_sglang.sh <patched tree>/python}"
[[ -n "${SGLANG_VERSION:-}" ]] || die "build arg SGLANG_VERSION is empty: build with 'make image'"
[[ -f "$SRC/sglang/__init__.py" ]] || die "$SRC/sglang is not an sglang package: run 'make apply' first"
PYTHON="${PYTHON:-python3}"

if [[ -f "$SRC/pyproject.toml" ]]; then
    # Full upstream checkout: a normal install, version forced to versions.env's (no git metadata).
    SETUPTOOLS_SCM_PRETEND_VERSION="$SGLANG_VERSION" \
        "$PYTHON" -m pip install --no-cache-dir --no-deps --no-build-isolation "$SRC"
    exit 0
fi

# Wheel layout (python/sglang only, no packaging files): overlay the package the base imports.
DEST="$("$PYTHON" -c 'import importlib.util, os; print(os.path.dirname(importlib.util.find_spec("sglang").origin))')" \
    || die "the base image has no sglang to overlay"
BASE_VERSION="$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("sglang"))')"
[[ "${BASE_VERSION%%+*}" == "$SGLANG_VERSION" ]] \
    || die "base image carries sglang $BASE_VERSION, versions.env says $SGLANG_VERSION: wrong base image"
echo "[sglang] overlaying $SRC/sglang onto $DEST (base sglang $BASE_VERSION)"
# Python files the patched tree does not have (deleted by a patch) must not survive; other base
# files (e.g. the MI300X_VF tuning-config copies the base image generates) stay.
(cd "$DEST" && find . -name '*.py' -type f -print0) | while IFS= read -r -d '' rel; do
    [[ -e "$SRC/sglang/$rel" ]] || rm -f "$DEST/$rel"
done
find "$DEST" -name __pycache__ -type d -prune -exec rm -rf {} +
cp -a "$SRC/sglang/." "$DEST/"
