#!/usr/bin/env bash
# The test command: set up what is missing, then run every test (unit, then VM tests in QEMU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node scripts/run-tests.mjs "$@"
