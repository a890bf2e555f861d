/*
 * `suture status` as an exit code, for scripts (documented in the README's CLI reference):
 *
 *   0  every applicable patch is applied (at least one Suture patch active, none waiting)
 *   1  no patch applied, and none available for this kernel
 *   2  a patch is available for this kernel but not applied (stored for boot but not active, or in
 *      transition)
 *   3  unsupported kernel (no livepatch support: verdict `unsupported`), or patches exist only for
 *      another kernel and none is active (verdict `kernel-upgrade-required`: boot the kernel they are
 *      for, or get patches built for this one)
 *   4  a patch is marked bad by the crash-loop guard (wins over everything else)
 *
 * "Available" is what this host holds for the running kernel: its boot store (`suture apply
 * --persist`, the agent's applies). Pure function of HostStatus.
 */
import type { HostStatus } from './status.js';

export const STATUS_EXIT = {
  applied: 0,
  none: 1,
  available: 2,
  unsupported: 3,
  'kernel-upgrade-required': 3,
  bad: 4,
} as const;
export type StatusVerdict = keyof typeof STATUS_EXIT;

export function statusVerdict(s: HostStatus): StatusVerdict {
  if (s.bad.length) return 'bad';
  if (!s.livepatchSupported) return 'unsupported';
  const bad = new Set(s.bad.map((b) => b.patch));
  const active = new Set(s.patches.filter((p) => p.state === 'active' && !p.transition).map((p) => p.name));
  const applicable = s.stored.filter((p) => p.forRunningKernel && !bad.has(p.patch));
  if (applicable.some((p) => !active.has(p.patch))) return 'available';
  if (s.patches.some((p) => p.transition)) return 'available';
  if (active.size) return 'applied';
  if (s.stored.length && !applicable.length) return 'kernel-upgrade-required';
  return 'none';
}

export function statusExitCode(s: HostStatus): number {
  return STATUS_EXIT[statusVerdict(s)];
}
