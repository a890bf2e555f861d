/*
 * CPU time of processes, read from /proc: what a load costs in CPU, which a loaded machine does not
 * distort the way it distorts wall time (eight helpers share two cores here; CI shares more).
 *
 * `cpuMs(pids)` sums user + system time of the given processes; `childrenOf(pid)` lists a process's
 * live children (a PostgreSQL postmaster's backends). Linux only; elsewhere both answer nothing, and a
 * benchmark prints `n/a`.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** clock ticks per second of /proc/<pid>/stat (USER_HZ, 100 on every Linux we run on) */
const TICKS_PER_S = 100;

/** fields after the `(comm)` of /proc/<pid>/stat, which may itself hold spaces and parentheses */
function statFields(pid: number): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** user + system CPU time of the processes and their reaped children, in ms (one gone counts 0) */
export function cpuMs(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    const f = statFields(pid);
    // after comm: state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14); the last two are the
    // children it has reaped (a PostgreSQL backend that closed while we measured)
    if (f) ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  }
  return (ticks * 1000) / TICKS_PER_S;
}

/** the live children of `pid` */
export function childrenOf(pid: number): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  return entries
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .filter((p) => Number(statFields(p)?.[1]) === pid);
}
