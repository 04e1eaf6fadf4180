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

# --- per-runner configuration ----------------------------------------------------------------
# Keys a runner may set. Precedence, highest first, and an EMPTY value never wins (GitHub turns
# an unset repository variable into an empty string):
#   1. the environment of the job (the runner service's own env, e.g. its .env file);
#   2. the runner's config file, $SGLANG_NSA_FP8_CI_CONFIG or /etc/sglang-nsa-fp8/ci.env,
#      KEY=value lines (a MI300 host and a MI355 host each keep their own);
#   3. CI_REPO_<KEY>, which the workflow fills from the per-arch repository variables
#      (vars.MODEL_PATH_GFX942, vars.MODEL_PATH_GFX950, ...).
CI_CONFIG_KEYS=(MODEL_PATH GSM8K_DATA PORT TP UPSTREAM)
CI_CONFIG_FILE_DEFAULT=/etc/sglang-nsa-fp8/ci.env

ci_load_config() {
    local file="${SGLANG_NSA_FP8_CI_CONFIG:-$CI_CONFIG_FILE_DEFAULT}" key line value repo
    if [[ -f "$file" ]]; then
        while IFS= read -r line || [[ -n "$line" ]]; do
            [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
            [[ "$line" =~ ^([A-Z_][A-Z0-9_]*)=(.*)$ ]] \
                || ci_die "$file: '$line' is not KEY=value"
            key="${BASH_REMATCH[1]}" value="${BASH_REMATCH[2]}"
            [[ " ${CI_CONFIG_KEYS[*]} " == *" $key "* ]] \
                || ci_die "$file: unknown key $key (known: ${CI_CONFIG_KEYS[*]})"
            if [[ -z "${!key:-}" && -n "$value" ]]; then
                printf -v "$key" '%s' "$value"
                export "${key?}"
            fi
        done < "$file"
    fi
    for key in "${CI_CONFIG_KEYS[@]}"; do
        repo="CI_REPO_$key"
        if [[ -z "${!key:-}" && -n "${!repo:-}" ]]; then
            printf -v "$key" '%s' "${!repo}"
            export "${key?}"
        fi
    done
}

# ci_reports ARCH: the folder this arch's CI artifacts go to (created).
ci_reports() {
    local dir="$CI_ROOT/reports/ci/$1"
    mkdir -p "$dir"
    echo "$dir"
}

# ci_step ARCH NAME CMD...: run CMD, log to reports/ci/ARCH/NAME.log, record the outcome and its
# duration in reports/ci/ARCH/steps.tsv (read by scripts/ci/summary.py); return its status.
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

# ci_image ARCH: the image the GPU steps use (IMAGE, else the tag ci/image.sh recorded).
ci_image() {
    local dir
    dir="$(ci_reports "$1")"
    echo "${IMAGE:-$(cat "$dir/image-tag" 2>/dev/null || ci_image_tag "$1")}"
}

# --- containers ------------------------------------------------------------------------------
# Every container the pipeline starts is named and labelled, so a cancelled or killed job leaves
# nothing that ci/cleanup.sh cannot find: label sglang-nsa-fp8.ci=1 on all of them, and
# sglang-nsa-fp8.run=<run id>-<attempt>-<arch> for this job's.
CI_LABEL=sglang-nsa-fp8.ci
ci_run_key() { echo "${GITHUB_RUN_ID:-local}-${GITHUB_RUN_ATTEMPT:-0}-$1"; }
ci_container_name() { echo "sglang-nsa-fp8-ci-$(ci_run_key "$1")-$2"; }

# docker run flags for a ROCm GPU container (all GPUs of the node, host network and IPC).
CI_DOCKER_GPU_FLAGS=(
    --device=/dev/kfd --device=/dev/dri --group-add video
    --ipc=host --network=host --shm-size=32g
    --security-opt seccomp=unconfined --cap-add=SYS_PTRACE
)
export CI_DOCKER_GPU_FLAGS

# ci_docker_run ARCH ROLE DOCKER_RUN_ARGS...: a named, labelled foreground container that is
# removed when this shell gets INT/TERM or exits (SIGKILL skips traps: ci/cleanup.sh, run by
# the workflow with `if: always()`, removes what is left).
ci_docker_run() {
    local arch="$1" role="$2"; shift 2
    local name
    name="$(ci_container_name "$arch" "$role")"
    docker rm -f "$name" > /dev/null 2>&1 || true
    # shellcheck disable=SC2064  # expand $name now: the trap must remove this container
    trap "docker rm -f '$name' > /dev/null 2>&1 || true" EXIT INT TERM
    docker run --rm --name "$name" --label "$CI_LABEL=1" \
        --label "sglang-nsa-fp8.run=$(ci_run_key "$arch")" --label "sglang-nsa-fp8.role=$role" \
        "$@"
}

# ci_chown_cmd: the shell line a container runs last so that what it wrote into the mounted
# checkout belongs to the runner user, not root.
ci_chown_cmd() {
    echo "chown -R $(id -u):$(id -g) /workspace/reports /workspace/build 2>/dev/null || true"
}
