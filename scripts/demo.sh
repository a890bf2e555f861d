#!/usr/bin/env bash
# The main job, end to end, on a fresh Debian 12 machine (as root):
#   1. set up (Debian packages, npm dependencies, the target kernel's artifacts in the cache);
#   2. the blog's first example: a hand-written livepatch of cmdline_proc_show (`suture new` +
#      `suture module build`), loaded in a QEMU VM running the exact target kernel;
#   3. the blog's second example: `suture build` turns a plain source diff of fs/proc/meminfo.c into a
#      livepatch module, and the real `suture apply`/`revert` run inside the VM.
# Exits non-zero if any step does not show what it should. Work files go to $SUTURE_DEMO_DIR
# (default: a new temporary directory, printed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

: "${SUTURE_KERNEL:=6.1.0-53-cloud-amd64}"
export SUTURE_KERNEL
work="${SUTURE_DEMO_DIR:-$(mktemp -d /tmp/suture-demo.XXXXXX)}"
mkdir -p "$work"
suture() { node bin/suture.js "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "target kernel $SUTURE_KERNEL"
suture kernel info "$SUTURE_KERNEL"

step "example 1: hand-written livepatch of cmdline_proc_show"
rm -rf "$work/cmdline"
suture new "$work/cmdline" --function cmdline_proc_show --name livepatch_cmdline
suture module build "$work/cmdline" --kernel "$SUTURE_KERNEL"
cat >"$work/cmdline.sh" <<'SH'
set -e
echo "before: $(cat /proc/cmdline)"
insmod /cmdline/livepatch_cmdline.ko
p=/sys/kernel/livepatch/livepatch_cmdline
while [ "$(cat $p/transition)" != 0 ]; do sleep 0.2; done
echo "patched: $(cat /proc/cmdline)"
grep -qx 'this has been live patched' /proc/cmdline
echo 0 > $p/enabled
while [ -d $p ]; do sleep 0.2; done
echo "disabled: $(cat /proc/cmdline)"
rmmod livepatch_cmdline
echo "module unloaded"
SH
suture vm run --kernel "$SUTURE_KERNEL" --add "$work/cmdline" --script "$work/cmdline.sh"

step "example 2: suture build of the VmallocChunk diff, applied with suture inside the VM"
rm -rf "$work/meminfo"
suture build examples/meminfo-vmallocchunk.patch --kernel "$SUTURE_KERNEL" --name meminfo -o "$work/meminfo"
cat >"$work/meminfo.sh" <<'SH'
set -e
grep -i chunk /proc/meminfo
suture apply /meminfo/livepatch-meminfo.ko --manifest /meminfo/livepatch-meminfo.manifest.json --timeout 30s
grep -i chunk /proc/meminfo
grep -q '^VMALLOCCHUNK:' /proc/meminfo
suture status
suture revert livepatch_meminfo
grep -i chunk /proc/meminfo
grep -q '^VmallocChunk:' /proc/meminfo
SH
suture vm run --kernel "$SUTURE_KERNEL" --with-suture --add "$work/meminfo" --script "$work/meminfo.sh"

step "done: both livepatches took effect and were reverted (work files in $work)"
