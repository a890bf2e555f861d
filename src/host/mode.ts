/*
 * The kill switch: `suture.mode=normal|no-apply|no-refresh|stop`, on the kernel command line
 * (/proc/cmdline) or in <config>/mode (normally /etc/suture/mode).
 *
 *   normal      the boot unit re-applies stored patches, the agent checks in and converges
 *   no-apply    nothing is loaded (neither at boot nor by the agent); the agent still checks in
 *   no-refresh  the agent makes no check-ins; the boot unit still re-applies stored patches
 *   stop        neither
 *
 * The command line wins over the file: it is what an operator can change from the boot loader when
 * the machine does not come up. A value that is not one of the four (in either place) is taken as
 * `normal` and reported as a warning, never as an error: a typo must not keep a machine from booting.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HostRoots } from './roots.js';

export const MODES = ['normal', 'no-apply', 'no-refresh', 'stop'] as const;
export type SutureMode = (typeof MODES)[number];

export interface ModeSetting {
  mode: SutureMode;
  /** where it came from: the kernel command line, the mode file, or nothing set */
  source: 'cmdline' | 'file' | 'default';
  /** the file or /proc path read */
  path?: string;
  /** set when a value was present but not understood (then `mode` is `normal`) */
  warning?: string;
}

const isMode = (v: string): v is SutureMode => (MODES as readonly string[]).includes(v);

export function modeFile(roots: HostRoots): string {
  return join(roots.config, 'mode');
}

function readSmall(path: string): string | undefined {
  try {
    return readFileSync(path, 'latin1').slice(0, 4096);
  } catch {
    return undefined;
  }
}

/** `suture.mode=` from a kernel command line; the last one wins, as the kernel does for its own. */
export function modeFromCmdline(cmdline: string): string | undefined {
  let found: string | undefined;
  for (const word of cmdline.split(/\s+/)) if (word.startsWith('suture.mode=')) found = word.slice(12);
  return found;
}

function printable(v: string): string {
  return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
}

/** The mode in force on this machine, and where it came from. Never throws. */
export function readMode(roots: HostRoots): ModeSetting {
  const cmdPath = join(roots.proc, 'cmdline');
  const fromCmd = modeFromCmdline(readSmall(cmdPath) ?? '');
  if (fromCmd !== undefined) {
    if (isMode(fromCmd)) return { mode: fromCmd, source: 'cmdline', path: cmdPath };
    return {
      mode: 'normal',
      source: 'cmdline',
      path: cmdPath,
      warning: `suture.mode=${printable(fromCmd)} on the kernel command line is not one of ${MODES.join(', ')}: taken as normal`,
    };
  }
  const file = modeFile(roots);
  const raw = readSmall(file);
  if (raw === undefined) return { mode: 'normal', source: 'default' };
  const value = raw.trim().replace(/^suture\.mode=/, '');
  if (isMode(value)) return { mode: value, source: 'file', path: file };
  return {
    mode: 'normal',
    source: 'file',
    path: file,
    warning: `${file} holds ${printable(raw.trim())}, not one of ${MODES.join(', ')}: taken as normal`,
  };
}

/** Whether the mode lets anything be loaded into the kernel. */
export const modeAllowsApply = (m: SutureMode): boolean => m === 'normal' || m === 'no-refresh';
/** Whether the mode lets the agent check in. */
export const modeAllowsCheckin = (m: SutureMode): boolean => m === 'normal' || m === 'no-apply';
