#!/usr/bin/env bash
# Serve DeepSeek-V3.2 with FP8 KV from the built image, wait until healthy, answer one request,
# stop. A by-hand smoke test of an image (the pipeline does not run it: the gates start the same
# FP8 server, and each server configuration is loaded once per run); the server log is kept.
#
#   MODEL_PATH=/data/models/DeepSeek-V3.2 ci/server.sh gfx942|gfx950
#
# Env (or the runner config, ci/lib.sh): MODEL_PATH (required, a local checkpoint), TP (8), PORT (30000),
#      KV_CACHE_DTYPE (fp8_e4m3), STARTUP_TIMEOUT_S (3600), IMAGE (default: the tag make builds).
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
arch="$(ci_arch "${1:-}")"
cd "$CI_ROOT"
ci_load_config
dir="$(ci_reports "$arch")"

: "${MODEL_PATH:?set MODEL_PATH to a local DeepSeek-V3.2 checkpoint on the runner}"
[[ -d "$MODEL_PATH" ]] || ci_die "MODEL_PATH=$MODEL_PATH is not a directory on this runner"
image="$(ci_image "$arch")"
port="${PORT:-30000}"
timeout_s="${STARTUP_TIMEOUT_S:-3600}"
name="$(ci_container_name "$arch" server)"

# Server flags for DeepSeek-V3.2 on ROCm (DESIGN §12.1): both NSA phases on TileLang, FP8 KV.
server_args=(
    python3 -m sglang.launch_server
    --model-path /model --trust-remote-code
    --tp-size "${TP:-8}" --host 127.0.0.1 --port "$port"
    --attention-backend nsa --nsa-prefill-backend tilelang --nsa-decode-backend tilelang
    --kv-cache-dtype "${KV_CACHE_DTYPE:-fp8_e4m3}"
    --mem-fraction-static 0.85
    --model-loader-extra-config '{"enable_multithread_load": true}'
    --watchdog-timeout 1200
)

cleanup() {
    docker logs "$name" > "$dir/server.log" 2>&1 || true
    docker rm -f "$name" > /dev/null 2>&1 || true
}
trap cleanup EXIT INT TERM

serve() {
    docker rm -f "$name" > /dev/null 2>&1 || true
    docker run -d --name "$name" --label "$CI_LABEL=1" \
        --label "sglang-nsa-fp8.run=$(ci_run_key "$arch")" --label sglang-nsa-fp8.role=server \
        "${CI_DOCKER_GPU_FLAGS[@]}" \
        -v "$MODEL_PATH:/model:ro" -v tilelang-cache:/var/cache/tilelang \
        "$image" "${server_args[@]}"
    local deadline=$(( $(date +%s) + timeout_s ))
    until curl -fsS "http://127.0.0.1:$port/health" > /dev/null 2>&1; do
        if [[ "$(docker inspect -f '{{.State.Running}}' "$name")" != "true" ]]; then
            docker logs --tail 60 "$name" >&2 || true
            ci_die "the server exited during start-up (log: $dir/server.log)"
        fi
        (( $(date +%s) < deadline )) || ci_die "no /health after ${timeout_s}s (log: $dir/server.log)"
        sleep 5
    done
    docker logs "$name" 2>&1 | grep -m1 'KV Cache is allocated' || true
    curl -fsS "http://127.0.0.1:$port/generate" -H 'Content-Type: application/json' \
        -d '{"text": "The capital of France is", "sampling_params": {"max_new_tokens": 16, "temperature": 0}}' \
        | tee "$dir/server-answer.json"
    echo
}

ci_step "$arch" server serve
