#!/usr/bin/env bash
# Build the deployment image for one arch on a GPU runner: apply the queue, then `make image`.
# The tag is written to reports/ci/ARCH/image-tag for the later steps.
#
#   ci/image.sh gfx942|gfx950        (extra make variables may follow, e.g. ALLOW_UNPINNED_BASE=1)
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
arch="$(ci_arch "${1:-}")"; shift
cd "$CI_ROOT"
dir="$(ci_reports "$arch")"

ci_step "$arch" apply make apply
ci_step "$arch" image make image GPU_ARCH="$arch" "$@"
tag="$(ci_image_tag "$arch")"
echo "$tag" > "$dir/image-tag"
echo "built $tag"
