#!/usr/bin/env bash
# Remove what a GPU job may have left on the runner, whatever ended it (failure, timeout,
# cancel): the job's containers (found by label, see ci/lib.sh), and root-owned files the
# containers wrote into the checkout (given back to the runner user). The workflow runs it with
# `if: always()`; by hand it also cleans up after a killed run.
#
#   ci/cleanup.sh gfx942|gfx950 [--all]     (--all: every sglang-nsa-fp8 CI container on the node)
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
arch="$(ci_arch "${1:-}")"
cd "$CI_ROOT"

filter=(--filter "label=sglang-nsa-fp8.run=$(ci_run_key "$arch")")
[[ "${2:-}" == "--all" ]] && filter=(--filter "label=$CI_LABEL=1")
mapfile -t ids < <(docker ps -aq "${filter[@]}")
if (( ${#ids[@]} )); then
    echo "cleanup: removing ${#ids[@]} container(s): $(docker ps -a "${filter[@]}" --format '{{.Names}}' | tr '\n' ' ')"
    docker rm -f "${ids[@]}" > /dev/null
else
    echo "cleanup: no container left"
fi

# Files of the checkout the runner user does not own (written as root by a container that was
# killed before its own chown) would break the next checkout: chown them from a container.
uid="$(id -u)" gid="$(id -g)"
if [[ -n "$(find "$CI_ROOT" -xdev ! -user "$uid" -print -quit 2>/dev/null)" ]]; then
    image="$(ci_image "$arch")"
    if docker image inspect "$image" > /dev/null 2>&1; then
        echo "cleanup: giving files under $CI_ROOT back to $uid:$gid"
        docker run --rm --label "$CI_LABEL=1" -v "$CI_ROOT:/workspace" --entrypoint chown \
            "$image" -R "$uid:$gid" /workspace
    else
        echo "cleanup: warning: root-owned files under $CI_ROOT and no image $image to chown them with;" \
            "run: sudo chown -R $uid:$gid $CI_ROOT" >&2
    fi
fi
