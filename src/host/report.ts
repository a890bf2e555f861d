/*
 * Reports: transition events and host status as text for people (the CLI prints these lines; the
 * agent and tests use the same words). Pure functions of the values, no I/O.
 */

import { attributesText } from './attributes.js';
import { KERNEL_SIGNAL_PERIOD_MS, type SignalRound, type TransitionEvent } from './events.js';
import type { BadMark } from './guard.js';
import type { ModeSetting } from './mode.js';
import type { HostStatus, LivepatchStatus } from './status.js';
import { formatStalledTask } from './tasks.js';

const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

export function describeRound(r: SignalRound): string {
  const how =
    r.source === 'kernel-log'
      ? 'kernel log: "signaling remaining tasks"'
      : 'inferred from the 15 s schedule; the kernel logs only the first round';
  const woken = r.woken.length
    ? `woke ${r.woken.map((w) => `${w.kthread ? 'kthread' : 'task'} ${w.comm} (${w.pid})`).join(', ')}`
    : 'no pending task was seen waking';
  return `kernel signalling round ${r.round} at ${secs(r.elapsedMs)} (${how}): ${woken}; ${r.migrated} migrated, ${r.stillPending} still pending`;
}

/** One event as lines of text; progress events are rendered by the caller (they repeat). */
export function eventLines(e: TransitionEvent): string[] {
  switch (e.type) {
    case 'checked':
      return [`${e.patch}: verified ${e.verified.join(', ')} against running ${e.release}`];
    case 'loading':
      return [`${e.patch}: loading ${e.file}`];
    case 'loaded':
      return [`${e.patch}: module loaded in ${e.ms} ms, transition started`];
    case 'disabling':
      return [`${e.patch}: disabling (enabled ← 0), unpatching transition started`];
    case 'progress':
      return [
        `${e.patch}: ${e.target ? 'patching' : 'unpatching'} ${e.migrated}/${e.total} tasks migrated (${secs(e.elapsedMs)})`,
      ];
    case 'kernel-log':
      return [`  kernel: ${e.text}`];
    case 'signal-round':
      return [`${e.patch}: ${describeRound(e)}`];
    case 'stalled': {
      const rounds = Math.floor(e.elapsedMs / KERNEL_SIGNAL_PERIOD_MS);
      return [
        `${e.patch}: transition not complete after ${secs(e.elapsedMs)}; ${e.tasks.length} task(s) not yet migrated (>> marks patched functions):`,
        ...e.tasks.flatMap(formatStalledTask).map((l) => `  ${l}`),
        rounds === 0
          ? `  the kernel has not signalled yet: its first round comes ${secs(KERNEL_SIGNAL_PERIOD_MS)} after the transition started (wakes interruptible kthreads, fake-signals user tasks)`
          : `  the kernel signals remaining tasks every ${secs(KERNEL_SIGNAL_PERIOD_MS)} (${rounds} round(s) so far)`,
      ];
    }
    case 'sigstop':
      return [
        e.tasks.length
          ? `${e.patch}: sent SIGSTOP+SIGCONT to ${e.tasks.map((t) => `${t.comm} (${t.pid})`).join(', ')}; waiting again`
          : `${e.patch}: --signal: no pending user task to signal (kthreads ignore signals); waiting again`,
      ];
    case 'forcing':
      return [`${e.patch}: FORCING the transition (force ← 1). Risk: ${e.risk}`];
    case 'reversing':
      return [`${e.patch}: ${e.reason}; reversing the transition`];
    case 'complete':
      return [
        `${e.patch}: ${e.target ? 'patching' : 'unpatching'} complete in ${secs(e.elapsedMs)}${e.forced ? ' (FORCED)' : ''}`,
      ];
    case 'replaced':
      return [
        `${e.patch}: cumulative patch replaced ${e.replaced.join(', ')} (their modules stay loaded, inactive, until reverted)`,
      ];
    case 'unloaded':
      return [`${e.module}: module unloaded`];
    case 'note':
      return [`note: ${e.text}`];
  }
}

function patchLine(p: LivepatchStatus): string {
  const state =
    p.state === 'inactive'
      ? `inactive${p.replacedBy ? ` (replaced by ${p.replacedBy})` : ' (disabled or replaced)'}`
      : p.state;
  const funcs = p.objects.map(
    (o) =>
      `${o.name}${o.patched === false ? ' (not loaded)' : ''}: ${o.funcs.map((f) => `${f.name},${f.sympos}`).join(' ')}`,
  );
  return [
    `  ${p.name}`,
    `    state: ${state}${p.version ? `, version ${p.version}` : ''}${p.replace ? ', cumulative (replace)' : ''}`,
    ...funcs.map((f) => `    patches ${f}`),
    ...kernelSays(p),
  ].join('\n');
}

function modeLine(m: ModeSetting): string {
  const from = m.source === 'cmdline' ? 'kernel command line' : m.source === 'file' ? m.path : 'default';
  const what = {
    normal: '',
    'no-apply': ': nothing is loaded (boot unit, agent)',
    'no-refresh': ': the agent makes no check-ins',
    stop: ': nothing is loaded and the agent makes no check-ins',
  }[m.mode];
  return `mode: ${m.mode} (${from})${what}${m.warning ? `\n  warning: ${m.warning}` : ''}`;
}

function badLines(b: BadMark): string[] {
  return [
    `  ${b.patch}: ${b.reason}${b.at ? ` at ${b.at}` : ''} — never loaded again (suture host clear-bad ${b.patch})`,
    ...(b.note ? [`    ${b.note}`] : []),
    ...b.kernelLog
      .split('\n')
      .filter(Boolean)
      .slice(0, 20)
      .map((l) => `    kernel: ${l}`),
  ];
}

/** The patch's own sysfs attributes, those the running kernel has (attributes.ts). */
function kernelSays(p: LivepatchStatus): string[] {
  const t = attributesText(p);
  return t ? [`    sysfs: ${t}`] : [];
}

export function statusText(s: HostStatus): string {
  const lines = [
    modeLine(s.mode),
    `kernel: ${s.kernel.release}`,
    `  build id: ${s.kernel.buildId ?? '(none exposed)'}`,
    `  livepatch: ${s.livepatchSupported ? 'supported' : 'NOT supported (no /sys/kernel/livepatch: CONFIG_LIVEPATCH off)'}`,
    `  taint: ${s.taint ? (s.taint.letters ? `${s.taint.letters} — ${s.taint.flags.map((f) => f.meaning).join('; ')}` : 'none') : 'unknown'}`,
    `  transition: ${
      s.transition
        ? `${s.transition} ${s.transitionProgress ? `${s.transitionProgress.target ? 'patching' : 'unpatching'} ${s.transitionProgress.migrated}/${s.transitionProgress.total} tasks migrated` : 'in progress'}`
        : 'none'
    }`,
    `patches: ${s.patches.length ? '' : 'none'}`,
    ...s.patches.map(patchLine),
    ...s.stored
      .filter((p) => !p.forRunningKernel)
      .map((p) => `  ${p.patch} ${p.version}: stored for ${p.release}, not this kernel (upgrade required)`),
  ];
  if (s.bad.length) lines.push('marked bad by the crash-loop guard:', ...s.bad.flatMap(badLines));
  if (!s.root) lines.push('(not root: per-task transition states are not readable)');
  return lines.join('\n');
}
