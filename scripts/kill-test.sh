#!/usr/bin/env bash
# The long kill test: 50 seeded kills (SIGKILL mostly, some SIGTERM/SIGINT) across a build with
# RUN, ADD and an export, each followed by fsck and a rebuild (CI runs 6). Root required.
#   bash scripts/kill-test.sh [KILLS] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsc -p tsconfig.json
STRATA_KILLS="${1:-50}" STRATA_KILL_SEED="${2:-20261123}" exec npx vitest run test/hardening/kill.test.ts
