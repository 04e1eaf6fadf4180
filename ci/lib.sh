# Shared helpers of the ci/*.sh entry points (sourced, not run).
# shellcheck shell=bash

CI_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CI_ROOT

ci_die() { echo "ci: $*" >&2; exit 1; }

# ci_arch ARCH: validate and echo a GPU arch.
ci_arch() {
    case "${1:-}" in
        gfx942|gfx950) echo "$1" ;;
        *) ci_die "GPU arch '${1:-}' is not supported: use gfx942 (MI300X/MI325X) or gfx950 (MI350X/MI355X)" ;;
    esac
}

# ci_reports ARCH: the folder this arch's CI artifacts go to (created).
ci_reports() {
    local dir="$CI_ROOT/reports/ci/$1"
    mkdir -p "$dir"
    echo "$dir"
}

# ci_step ARCH NAME CMD...: run CMD, log to reports/ci/ARCH/NAME.log, record the outcome and its
# duration in reports/ci/ARCH/steps.tsv (read by scripts/image/ci_summary.py); return its status.
ci_step() {
    local arch="$1" name="$2"; shift 2
    local dir start status
    dir="$(ci_reports "$arch")"
    start="$(date +%s)"
    echo "== [$arch] $name: $*"
    set +e
    "$@" 2>&1 | tee "$dir/$name.log"
    status="${PIPESTATUS[0]}"
    set -e
    local outcome=pass
    [[ "$status" -eq 0 ]] || outcome=fail
    printf '%s\t%s\t%s\t%s\n' "$name" "$outcome" "$(( $(date +%s) - start ))" "$name.log" >> "$dir/steps.tsv"
    return "$status"
}

# The image tag `make image` builds for ARCH.
ci_image_tag() {
    make -s -C "$CI_ROOT" image-tag GPU_ARCH="$1"
}

# docker run flags for a ROCm GPU container (all GPUs of the node, host network and IPC).
CI_DOCKER_GPU_FLAGS=(
    --device=/dev/kfd --device=/dev/dri --group-add video
    --ipc=host --network=host --shm-size=32g
    --security-opt seccomp=unconfined --cap-add=SYS_PTRACE
)
export CI_DOCKER_GPU_FLAGS
