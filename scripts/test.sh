#!/usr/bin/env bash
# The README's second command (npm test) and what CI runs: installs what is missing, then runs the
# whole test suite on real overlay mounts (root required).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
exec npx vitest run "$@"
