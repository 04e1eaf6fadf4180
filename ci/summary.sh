#!/usr/bin/env bash
# Write the pipeline's summary table (steps, outcome, duration, and the gates' Markdown reports)
# to $GITHUB_STEP_SUMMARY, or to stdout when run by hand.
#
#   ci/summary.sh [ARCH]...          (default: every arch with results under reports/ci/)
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$CI_ROOT"
out="${GITHUB_STEP_SUMMARY:-/dev/stdout}"
python3 -m scripts.ci.summary --reports reports "$@" >> "$out"
