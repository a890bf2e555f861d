/*
 * A kernel's configuration, and whether it can take livepatches.
 *
 * Livepatching needs the kernel's cooperation: the livepatch core (LIVEPATCH), ftrace able to redirect
 * a function with the caller's registers or arguments (DYNAMIC_FTRACE_WITH_REGS or _ARGS), and, for the
 * consistency model to finish a transition without `force`, reliable stack traces
 * (HAVE_RELIABLE_STACKTRACE, which on x86 comes with the ORC unwinder). MODULE_SIG_FORCE means the
 * kernel refuses any module not signed by a key it trusts, so Suture's unsigned modules would not load.
 */

import { type CodegenFeature, codegenFeatures } from './codegen.js';

export type KernelConfig = Map<string, string>;

/** Parse a kernel .config: `CONFIG_X=value` lines; `# CONFIG_X is not set` becomes `n`. */
export function parseKernelConfig(text: string): KernelConfig {
  const cfg: KernelConfig = new Map();
  for (const line of text.split('\n')) {
    const set = /^CONFIG_([A-Za-z0-9_]+)=(.*)$/.exec(line);
    if (set?.[1] !== undefined && set[2] !== undefined) {
      cfg.set(set[1], set[2]);
      continue;
    }
    const unset = /^# CONFIG_([A-Za-z0-9_]+) is not set$/.exec(line);
    if (unset?.[1]) cfg.set(unset[1], 'n');
  }
  return cfg;
}

export interface LivepatchOption {
  name: string;
  /** `y`, `m`, `n`, or a string/number value; `n` when absent */
  value: string;
  ok: boolean;
  role: string;
}

export interface LivepatchVerdict {
  /** `supported`: Suture's modules load and transitions complete; `partial`: they load but need care */
  verdict: 'supported' | 'partial' | 'unsupported';
  options: LivepatchOption[];
  reasons: string[];
  /** how the kernel's code is generated (IBT, call padding, thunks), each with what it asks of a livepatch */
  codegen: CodegenFeature[];
}

/** The options that decide livepatch support, each judged, and an overall verdict. */
export function livepatchVerdict(cfg: KernelConfig): LivepatchVerdict {
  const v = (n: string) => cfg.get(n) ?? 'n';
  const y = (n: string) => v(n) === 'y';
  const ftrace = y('DYNAMIC_FTRACE_WITH_REGS') || y('DYNAMIC_FTRACE_WITH_ARGS');
  const options: LivepatchOption[] = [
    { name: 'LIVEPATCH', value: v('LIVEPATCH'), ok: y('LIVEPATCH'), role: 'the livepatch core' },
    {
      name: 'DYNAMIC_FTRACE_WITH_REGS',
      value: v('DYNAMIC_FTRACE_WITH_REGS'),
      ok: ftrace,
      role: 'ftrace redirects the patched function (this or _ARGS)',
    },
    {
      name: 'DYNAMIC_FTRACE_WITH_ARGS',
      value: v('DYNAMIC_FTRACE_WITH_ARGS'),
      ok: ftrace,
      role: 'ftrace redirects the patched function (this or _REGS)',
    },
    {
      name: 'HAVE_RELIABLE_STACKTRACE',
      value: v('HAVE_RELIABLE_STACKTRACE'),
      ok: y('HAVE_RELIABLE_STACKTRACE'),
      role: 'the consistency model can check sleeping tasks and finish transitions',
    },
    {
      name: 'UNWINDER_ORC',
      value: v('UNWINDER_ORC'),
      ok: y('UNWINDER_ORC'),
      role: 'x86 reliable stack traces come from the ORC unwinder',
    },
    {
      name: 'MODULE_SIG_FORCE',
      value: v('MODULE_SIG_FORCE'),
      ok: !y('MODULE_SIG_FORCE'),
      role: 'when y, only modules signed with a trusted key load',
    },
  ];
  const reasons: string[] = [];
  if (!y('LIVEPATCH')) reasons.push('CONFIG_LIVEPATCH is not enabled: the kernel has no livepatch core');
  if (!ftrace) reasons.push('neither DYNAMIC_FTRACE_WITH_REGS nor _ARGS: ftrace cannot redirect functions');
  if (y('MODULE_SIG_FORCE'))
    reasons.push('MODULE_SIG_FORCE=y: modules must be signed with a key the kernel trusts');
  const partial: string[] = [];
  if (!y('HAVE_RELIABLE_STACKTRACE'))
    partial.push(
      'no reliable stack traces: transitions complete only as tasks leave the kernel, or with force',
    );
  if (!y('UNWINDER_ORC')) partial.push('ORC unwinder not selected: stack checks may be unreliable');
  const codegen = codegenFeatures(cfg);
  const on = codegen.filter((c) => c.on).map((c) => c.name);
  const requires = on.length
    ? [
        `the module must match the kernel's code generation: ${on.join(', ')} (what each asks of it is listed below)`,
      ]
    : [];
  if (reasons.length > 0)
    return { verdict: 'unsupported', options, reasons: [...reasons, ...partial, ...requires], codegen };
  if (partial.length > 0) return { verdict: 'partial', options, reasons: [...partial, ...requires], codegen };
  return {
    verdict: 'supported',
    options,
    reasons: [
      'livepatch core, ftrace with regs/args and reliable stack traces are all present; unsigned modules load',
      ...requires,
    ],
    codegen,
  };
}
