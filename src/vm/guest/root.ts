/*
 * The root file system of a Debian guest: debootstrap's minbase of a suite plus systemd as PID 1,
 * udev, kmod, iproute2 and procps (sysctl: the livepatch selftests set kernel.ftrace_enabled),
 * configured to boot under the harness (fstab for /dev/vda, DHCP on eth0 by systemd-networkd, the
 * command channel service of channel.ts, no apt timers).
 *
 * It reuses the kernel cache's machinery for build roots (kernel/build-root.ts: debootstrap in a
 * private mount namespace, the suite's signature checked; kernel/cache.ts: built in staging, renamed
 * into place only when finished), under its own content address `guest-root-<suite>-<key>`, where the
 * key covers the recipe below, the suite, the package set and the mirror. It holds no kernel: the
 * modules of a target are added when the disk image is made (image.ts).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fail } from '../../diagnostic.js';
import { debootstrap, ROOT_MIRROR, type RootSpec } from '../../kernel/build-root.js';
import { cacheRoot, ensureEntry } from '../../kernel/cache.js';
import { CTL_SCRIPT, CTL_SCRIPT_PATH, CTL_UNIT, CTL_UNIT_TEXT } from './channel.js';

/** Bumped whenever what goes into a guest root changes. */
export const GUEST_ROOT_RECIPE = 1;

export const GUEST_PACKAGES = ['systemd', 'systemd-sysv', 'udev', 'kmod', 'iproute2', 'procps'];

export const GUEST_ROOT_MARKER = '.suture-guest-root.json';

/** The Debian releases a guest can be: 12 and 13 (trixie's root comes from its own archive, main only). */
export const GUEST_SUITES = { bookworm: '12', trixie: '13' } as const;
export type GuestSuite = keyof typeof GUEST_SUITES;

export function guestRootSpec(suite: GuestSuite = 'bookworm'): RootSpec {
  return { suite, packages: [...GUEST_PACKAGES], mirror: ROOT_MIRROR };
}

export function guestRootEntryName(spec: RootSpec): string {
  const key = createHash('sha256')
    .update(
      JSON.stringify({
        recipe: GUEST_ROOT_RECIPE,
        suite: spec.suite,
        packages: [...spec.packages].sort(),
        mirror: spec.mirror,
        files: [CTL_SCRIPT, CTL_UNIT_TEXT, NETWORK_UNIT, FSTAB],
      }),
    )
    .digest('hex')
    .slice(0, 24);
  return `guest-root-${spec.suite}-${key}`;
}

const FSTAB = '/dev/vda / ext4 rw,errors=remount-ro 0 1\n';
const NETWORK_UNIT = '[Match]\nName=eth0\n\n[Network]\nDHCP=ipv4\n';
/** timers and services a test guest has no use for, and that would compete for its one vCPU */
const MASKED = ['apt-daily.timer', 'apt-daily-upgrade.timer', 'e2scrub_all.timer', 'fstrim.timer'];

function put(root: string, path: string, text: string, mode = 0o644): void {
  const p = join(root, path);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, text);
  chmodSync(p, mode);
}

function inRoot(root: string, args: string[]): void {
  const r = spawnSync('chroot', [root, ...args], { encoding: 'utf8' });
  if (r.status !== 0)
    fail('VM-GUEST-ROOT', `\`${args.join(' ')}\` in the guest root failed`, {
      detail: [r.stderr.trim(), r.stdout.trim()].filter(Boolean),
      location: { file: root },
    });
}

/** Turn a fresh debootstrap tree into a guest that boots under the harness. */
export function configureGuestRoot(root: string): void {
  put(root, 'etc/hostname', 'suture-guest\n');
  put(root, 'etc/hosts', '127.0.0.1 localhost\n127.0.1.1 suture-guest\n');
  put(root, 'etc/fstab', FSTAB);
  put(root, 'etc/systemd/network/10-eth0.network', NETWORK_UNIT);
  put(root, 'etc/resolv.conf', 'nameserver 10.0.2.3\n');
  put(root, CTL_SCRIPT_PATH.slice(1), CTL_SCRIPT, 0o755);
  put(root, `etc/systemd/system/${CTL_UNIT}`, CTL_UNIT_TEXT);
  // an empty machine-id: systemd makes a fresh one at each guest's first boot
  put(root, 'etc/machine-id', '');
  inRoot(root, ['systemctl', 'enable', CTL_UNIT, 'systemd-networkd.service']);
  inRoot(root, ['systemctl', 'mask', ...MASKED]);
  inRoot(root, ['passwd', '-d', 'root']);
}

/** The cached guest root of `spec` (built by debootstrap on first use); its directory. */
export async function ensureGuestRoot(
  spec: RootSpec = guestRootSpec(),
  onLine: (l: string) => void = () => undefined,
  root = cacheRoot(),
): Promise<string> {
  const name = guestRootEntryName(spec);
  const dir = await ensureEntry(
    root,
    name,
    async (tmp) => {
      const t0 = performance.now();
      await debootstrap(root)(spec, tmp, onLine);
      configureGuestRoot(tmp);
      const rec = { recipe: GUEST_ROOT_RECIPE, ...spec, ms: Math.round(performance.now() - t0) };
      writeFileSync(join(tmp, GUEST_ROOT_MARKER), `${JSON.stringify(rec, null, 2)}\n`);
    },
    { relocatable: true },
  );
  if (!existsSync(join(dir, GUEST_ROOT_MARKER)))
    fail('VM-GUEST-ROOT', `cache entry ${name} is not a finished guest root`, { location: { file: dir } });
  return dir;
}

/** How long debootstrap + configuration took when the root was made (ms), from its record. */
export function guestRootCost(dir: string): number | undefined {
  try {
    return (JSON.parse(readFileSync(join(dir, GUEST_ROOT_MARKER), 'utf8')) as { ms?: number }).ms;
  } catch {
    return undefined;
  }
}
