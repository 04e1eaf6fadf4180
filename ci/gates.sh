#!/usr/bin/env bash
# Run the regression gates (config/gates.toml) inside the built image on a GPU runner; the gates
# start each server configuration once (BF16, then FP8) and run every selected gate against it.
# Reports go under reports/<arch>/gates/.
#
#   ci/gates.sh gfx942|gfx950 [all|accuracy|throughput]     (default: all)
#
# Configuration (ci/lib.sh: job env, then the runner's /etc/sglang-nsa-fp8/ci.env, then the
# repository variables): MODEL_PATH (required, a local checkpoint), GSM8K_DATA (a local GSM8K
# test.jsonl; required on runners without internet), PORT, TP; IMAGE overrides the image.
# UPSTREAM=1 adds the third run of the gates: the unpatched upstream image of the same release
# (the base image, by the digest make image used), started as a sibling container through the
# host's Docker socket, BF16 KV, compared with our BF16 run.
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
arch="$(ci_arch "${1:-}")"
gate="${2:-all}"
case "$gate" in
    all) target=gates ;;
    accuracy|throughput) target="$gate" ;;
    *) ci_die "gate '$gate' is unknown: use all, accuracy or throughput" ;;
esac
cd "$CI_ROOT"
ci_load_config
dir="$(ci_reports "$arch")"

[[ -n "${MODEL_PATH:-}" ]] || ci_die "MODEL_PATH is not set: put MODEL_PATH=/path/to/DeepSeek-V3.2 in /etc/sglang-nsa-fp8/ci.env on this runner (docs/runbook.md)"
[[ -d "$MODEL_PATH" ]] || ci_die "MODEL_PATH=$MODEL_PATH is not a directory on this runner"
image="$(ci_image "$arch")"
image_record="$dir/image.json"

make_args=(GATES_PYTHON=python3 GATES_MODEL=/model)
gates_args="--report-dir reports/$arch/gates"
[[ -n "${TP:-}" ]] && make_args+=("GATES_TP=$TP")
[[ -n "${PORT:-}" ]] && make_args+=("GATES_PORT=$PORT")
mounts=(-v "$CI_ROOT:/workspace" -v "$MODEL_PATH:/model:ro" -v tilelang-cache:/var/cache/tilelang)
if [[ -n "${GSM8K_DATA:-}" ]]; then
    [[ -f "$GSM8K_DATA" ]] || ci_die "GSM8K_DATA=$GSM8K_DATA is not a file on this runner"
    mounts+=(-v "$GSM8K_DATA:/data/gsm8k-test.jsonl:ro")
    make_args+=(GATES_DATA=/data/gsm8k-test.jsonl)
fi
# What the reports record about the image (scripts/gates/environment.py reads these).
env_args=(-e "GATES_IMAGE=$image")
if [[ -f "$image_record" ]]; then
    env_args+=(-e "GATES_IMAGE_RECORD=/workspace/reports/ci/$arch/image.json")
fi

if [[ "${UPSTREAM:-0}" == 1 ]]; then
    [[ -f "$image_record" ]] || ci_die "UPSTREAM=1 needs $image_record (run ci/image.sh first)"
    base="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["base_image"])' "$image_record")"
    docker_bin="$(command -v docker)" || ci_die "UPSTREAM=1 needs the docker CLI on the runner"
    up_name="$(ci_container_name "$arch" upstream)"
    # The gates append the server flags (--model-path /model, --port, ...) to this prefix.
    up_launch=(docker run --rm --name "$up_name" --label "$CI_LABEL=1"
        --label "sglang-nsa-fp8.run=$(ci_run_key "$arch")" --label sglang-nsa-fp8.role=upstream
        "${CI_DOCKER_GPU_FLAGS[@]}" -v "$MODEL_PATH:/model:ro" "$base"
        python3 -m sglang.launch_server)
    toml_list() { python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@"; }
    gates_args+=" --set 'upstream.launch=$(toml_list "${up_launch[@]}")'"
    gates_args+=" --set 'upstream.stop=$(toml_list docker rm -f "$up_name")'"
    mounts+=(-v /var/run/docker.sock:/var/run/docker.sock -v "$docker_bin:/usr/local/bin/docker:ro")
fi

make_args+=("GATES_ARGS=$gates_args")

run_gates() {
    local cmd
    cmd="make $(printf '%q ' "$target" "${make_args[@]}"); rc=\$?; $(ci_chown_cmd); exit \$rc"
    ci_docker_run "$arch" gates "${CI_DOCKER_GPU_FLAGS[@]}" "${mounts[@]}" "${env_args[@]}" \
        -w /workspace --entrypoint bash "$image" -c "$cmd"
}

ci_step "$arch" "gates-$gate" run_gates
