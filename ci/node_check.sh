#!/usr/bin/env bash
# Pre-job check of a GPU runner, before anything is built or started: the Docker daemon answers,
# no container of an earlier run is still alive, nothing listens on the gates' port, and no
# process holds the GPUs. Each failure names the command that fixes it.
#
#   ci/node_check.sh gfx942|gfx950
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
arch="$(ci_arch "${1:-}")"
cd "$CI_ROOT"
ci_load_config
port="${PORT:-30000}"
failed=0
fail() { echo "node check: $*" >&2; failed=1; }

docker info --format '{{.ServerVersion}}' > /dev/null 2>&1 \
    || fail "no reachable Docker daemon for the runner user (docker info fails): start docker or add the user to the docker group"

left="$(docker ps --filter "label=$CI_LABEL=1" --format '{{.Names}} ({{.Status}})' 2>/dev/null || true)"
[[ -z "$left" ]] || fail "containers of an earlier run are still alive: $left; remove them with: ci/cleanup.sh $arch --all"

if (exec 3<> "/dev/tcp/127.0.0.1/$port") 2> /dev/null; then
    fail "something listens on 127.0.0.1:$port (the gates' server port): find it with 'ss -ltnp | grep :$port', stop it, or set PORT= in the runner config"
fi

if command -v rocm-smi > /dev/null 2>&1; then
    pids="$(rocm-smi --showpids 2>/dev/null | awk '$1 ~ /^[0-9]+$/ {print $1 " (" $2 ")"}' | tr '\n' ' ')"
    [[ -z "$pids" ]] || fail "processes hold the GPUs: $pids; stop them (docs/runbook.md, 'VRAM not freed')"
elif command -v fuser > /dev/null 2>&1; then
    users="$(fuser /dev/kfd 2>/dev/null | tr -s ' ' || true)"
    [[ -z "${users// /}" ]] || fail "processes hold /dev/kfd (the GPUs): $users"
else
    echo "node check: warning: neither rocm-smi nor fuser on this host; GPU use not checked" >&2
fi

(( failed == 0 )) || exit 1
echo "node check: $arch runner ready (docker up, no leftover containers, port $port free, GPUs idle)"
