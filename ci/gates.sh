#!/usr/bin/env bash
# Run one regression gate (`make accuracy` or `make throughput`, config/gates.toml) inside the
# built image on a GPU runner; the gates start the BF16 and FP8 servers themselves and write their
# reports under reports/.
#
#   MODEL_PATH=/data/models/DeepSeek-V3.2 ci/gates.sh gfx942|gfx950 accuracy|throughput
#
# Env: MODEL_PATH (required), GSM8K_DATA (optional local test.jsonl for offline runners),
#      IMAGE (default: the tag make builds).
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
arch="$(ci_arch "${1:-}")"
gate="${2:-}"
case "$gate" in
    accuracy|throughput) ;;
    *) ci_die "gate '$gate' is unknown: use accuracy or throughput" ;;
esac
cd "$CI_ROOT"
dir="$(ci_reports "$arch")"

: "${MODEL_PATH:?set MODEL_PATH to a local DeepSeek-V3.2 checkpoint on the runner}"
image="${IMAGE:-$(cat "$dir/image-tag" 2>/dev/null || ci_image_tag "$arch")}"

make_args=(GATES_PYTHON=python3 GATES_MODEL=/model "GATES_ARGS=--report-dir reports/$arch/$gate")
mounts=(-v "$CI_ROOT:/workspace" -v "$MODEL_PATH:/model:ro" -v tilelang-cache:/var/cache/tilelang)
if [[ -n "${GSM8K_DATA:-}" ]]; then
    mounts+=(-v "$GSM8K_DATA:/data/gsm8k-test.jsonl:ro")
    make_args+=(GATES_DATA=/data/gsm8k-test.jsonl)
fi

# The variables of mk/gates.mk; the gates start the BF16 and FP8 servers inside this container.
run_gate() {
    docker run --rm "${CI_DOCKER_GPU_FLAGS[@]}" "${mounts[@]}" -w /workspace "$image" \
        make "$gate" "${make_args[@]}"
}

ci_step "$arch" "$gate" run_gate
