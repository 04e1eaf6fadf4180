#!/usr/bin/env bash
# Build the deployment image for one arch on a GPU runner: apply the queue, then `make image`.
# The tag goes to reports/ci/ARCH/image-tag and the build record (image id, base digest used,
# base versions, the versions.env line to commit if the base was not pinned) to
# reports/ci/ARCH/image.json, for the later steps and the summary.
#
#   ci/image.sh gfx942|gfx950        (extra make variables may follow, e.g. BASE_IMAGE=...)
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
cp "build/image/image-$arch.json" "$dir/image.json"
echo "built $tag"
