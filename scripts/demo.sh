#!/usr/bin/env bash
# The main job, end to end: fetch the target kernel, build the blog's livepatches (the hand-written
# cmdline module and the meminfo diff), and prove each in a QEMU VM running that exact kernel.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node dist/cli/demo.js
