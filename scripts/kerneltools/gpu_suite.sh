#!/usr/bin/env bash
# Run the GPU tests and benchmarks on an offline NVIDIA host (the device machine), with
# TileLang from the bundle that ../shared/gpu/make_bundle.sh builds and a pre-built kernel cache.
#
#   scripts/kerneltools/gpu_suite.sh OUTDIR [STEP ...]   (from the repository root)
#   steps: tests bench-decode bench-store repro
#
# Inputs (all optional, defaults in brackets):
#   SGLANG_TREE      patched tree with python/sglang/...                   [build/sglang]
#   BASE_TREE        unpatched v0.5.9 tree, for the race reproducer        [unset: skip repro]
#   TL_BUNDLE        tilelang + deps bundle (.tar.xz)                      [.gpu/tilelang-bundle-0.1.9.tar.xz]
#   TL_LAYER         a tilelang-only bundle put in front (another version) [unset]
#   V2_LAYER         a tilelang 0.1.8-only bundle: bench-decode times v0.5.9's v2 with it, in a
#                    child process of the same run (--v2-layer)                       [unset]
#   PYDEPS           pytest & co. for a host without them (.tar.xz)        [.gpu/pydeps.tar.xz]
#   TILELANG_CACHE_DIR  kernel cache built by scripts.kerneltools.prebuild [.gpu/tlcache]
#   TL_CACHE_TAR     that cache packed (`tar -cJf X -C CACHE .`), unpacked into it   [unset]
#   PYTEST_ARGS      extra pytest arguments (split on spaces)              [-q]
#   PYTEST_K         a pytest -k expression (kept as one argument)         [unset]
#   BENCH_DECODE_ARGS / BENCH_STORE_ARGS  extra benchmark arguments (e.g. --variants, --sweep)
# Every step logs to OUTDIR/<step>.log; the exit status is the number of failed steps.
set -uo pipefail
OUT=${1:?usage: scripts/kerneltools/gpu_suite.sh OUTDIR [STEP ...]}
shift
STEPS=${*:-tests bench-decode bench-store repro}
mkdir -p "$OUT" /tmp/nsa-site
SITE=/tmp/nsa-site
tar -xJf "${TL_BUNDLE:-.gpu/tilelang-bundle-0.1.9.tar.xz}" -C "$SITE"
[ -f "${PYDEPS:-.gpu/pydeps.tar.xz}" ] && tar -xJf "${PYDEPS:-.gpu/pydeps.tar.xz}" -C "$SITE"
PYTHONPATH=$SITE
if [ -n "${TL_LAYER:-}" ]; then
  mkdir -p /tmp/nsa-layer && tar -xJf "$TL_LAYER" -C /tmp/nsa-layer
  PYTHONPATH=/tmp/nsa-layer:$PYTHONPATH
  # an older tilelang loads libz3 through the dynamic linker instead of preloading it
  export LD_LIBRARY_PATH=$SITE/z3/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
export PYTHONPATH PYTHONUNBUFFERED=1
export SGLANG_TREE=${SGLANG_TREE:-build/sglang}
export TILELANG_CACHE_DIR=${TILELANG_CACHE_DIR:-$PWD/.gpu/tlcache}
V2_ARGS=()
if [ -n "${V2_LAYER:-}" ]; then
  mkdir -p /tmp/nsa-v2-layer && tar -xJf "$V2_LAYER" -C /tmp/nsa-v2-layer
  V2_ARGS=(--v2-layer /tmp/nsa-v2-layer)
fi
if [ -n "${TL_CACHE_TAR:-}" ]; then
  mkdir -p "$TILELANG_CACHE_DIR" && tar -xJf "$TL_CACHE_TAR" -C "$TILELANG_CACHE_DIR"
fi
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv | tee "$OUT/device.txt"
python3 -c 'import tilelang, torch, triton; print("tilelang", tilelang.__version__, "torch", torch.__version__, "triton", triton.__version__)' | tee -a "$OUT/device.txt"
date -u +%Y-%m-%dT%H:%M:%SZ | tee -a "$OUT/device.txt"

failed=0
run() {  # run STEP CMD...: log to OUT/STEP.log, count failures
  local step=$1; shift
  echo "== $step: $*"
  local start=$SECONDS
  "$@" > "$OUT/$step.log" 2>&1
  local rc=$?
  echo "== $step: exit $rc after $((SECONDS - start)) s"
  tail -n 25 "$OUT/$step.log"
  [ $rc -eq 0 ] || failed=$((failed + 1))
}
for step in $STEPS; do
  case $step in
    tests) run tests python3 -m pytest tests/gpu ${PYTEST_ARGS:--q} ${PYTEST_K:+-k "$PYTEST_K"} -p no:cacheprovider --junitxml="$OUT/gpu-tests.xml" ;;
    bench-decode) run bench-decode python3 -m scripts.kerneltools.bench_decode --out-dir "$OUT" "${V2_ARGS[@]}" ${BENCH_DECODE_ARGS:-} ;;
    bench-store) run bench-store python3 -m scripts.kerneltools.bench_kv_store --out "$OUT/bench_kv_store.json" ${BENCH_STORE_ARGS:-} ;;
    repro)
      if [ -n "${BASE_TREE:-}" ]; then
        run repro python3 -m scripts.kerneltools.repro_reduce_race --base-tree "$BASE_TREE" --tree "$SGLANG_TREE" --out "$OUT/repro_reduce_race.json"
      else
        echo "== repro: skipped (set BASE_TREE to an unpatched v0.5.9 tree)"
      fi ;;
    *) echo "unknown step $step"; failed=$((failed + 1)) ;;
  esac
done
exit $failed
