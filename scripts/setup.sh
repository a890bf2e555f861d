#!/usr/bin/env bash
# Installs everything Suture needs on a fresh Debian 12 machine, idempotently:
#   Debian packages (QEMU, busybox, the kernel build tool chain, PostgreSQL and Chromium for tests,
#   wrk for the server benchmarks),
#   npm dependencies, the compiled TypeScript, and the target kernel's artifacts in the cache.
# Usage: scripts/setup.sh [--no-kernel]
set -euo pipefail
cd "$(dirname "$0")/.."

: "${SUTURE_KERNEL:=6.1.0-53-cloud-amd64}"
export SUTURE_KERNEL

APT_PACKAGES=(
  qemu-system-x86 busybox-static cpio gzip zstd xz-utils
  make gcc libc6-dev bc bison flex libelf-dev libssl-dev dwarves kmod patch binutils file python3
  debootstrap qemu-utils e2fsprogs gpg debian-archive-keyring
  postgresql chromium openssl wrk
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent build

if [ "${1:-}" != "--no-kernel" ]; then
  node bin/suture.js kernel fetch "$SUTURE_KERNEL"
fi
