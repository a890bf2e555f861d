#!/usr/bin/env bash
# The main job, end to end, on a fresh Debian 12 machine (as root):
#   1. set up (Debian packages, npm dependencies, the target kernel's artifacts in the cache);
#   2. the blog's first example: a hand-written livepatch of cmdline_proc_show (`suture new` +
#      `suture module build`), loaded in a QEMU VM running the exact target kernel;
#   3. the blog's second example: `suture build` turns a plain source diff of fs/proc/meminfo.c into a
#      livepatch module, and the real `suture apply`/`revert` run inside the VM;
#   4. delivery: a `suture server` on this host (SQLite), the patch published to the canary tier, and
#      a VM enrolled with a canary token whose `suture agent` checks in, verifies and applies it.
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

step "delivery: suture server here, the patch published to canary, an agent in a VM applies it"
port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
admin="sut_admin_demo_$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
rm -rf "$work/server"
# node itself in the background (not the `suture` function's subshell), so that kill reaches it
node bin/suture.js server --data "$work/server" --listen "127.0.0.1:$port" --admin-token "$admin" --quiet &
server_pid=$!
trap 'kill $server_pid 2>/dev/null || true' EXIT
export SUTURE_SERVER="http://127.0.0.1:$port" SUTURE_ADMIN_TOKEN="$admin"
for _ in $(seq 50); do suture kernels >/dev/null 2>&1 && break; sleep 0.2; done
token=$(suture token create --tier canary --note demo)
suture publish "$work/meminfo/livepatch-meminfo.ko" --manifest "$work/meminfo/livepatch-meminfo.manifest.json" \
  --tier canary --description "VmallocChunk becomes VMALLOCCHUNK (the blog's example)"
cat >"$work/agent.sh" <<SH
set -e
hostname demo-canary
grep -i chunk /proc/meminfo
suture agent enable $token --server http://10.0.2.2:$port
suture agent run --once
suture agent status
grep -q '^VMALLOCCHUNK:' /proc/meminfo
grep -i chunk /proc/meminfo
SH
suture vm run --kernel "$SUTURE_KERNEL" --with-suture --net --script "$work/agent.sh"
suture machines
suture machines "$(suture machines --json | node -e "process.stdout.write(JSON.parse(require('fs').readFileSync(0,'utf8'))[0].id)")"
kill "$server_pid"
wait "$server_pid" 2>/dev/null || true

step "done: both livepatches took effect and were reverted; the agent applied the published one (work files in $work)"
