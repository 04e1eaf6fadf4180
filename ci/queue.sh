#!/usr/bin/env bash
# Queue check on every push (CPU runner): install the pinned tools, fetch + apply + lint the patch
# queue (`make all`), run the CPU tests (`make test`).
#
#   ci/queue.sh
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$CI_ROOT"

[[ -x scripts/setup_env.sh ]] || ci_die "scripts/setup_env.sh is missing (it installs the pins of versions.env)"
ci_step cpu setup scripts/setup_env.sh
ci_step cpu queue make all
ci_step cpu test make test
