/*
 * How a kernel's code is generated, and what each choice means for a livepatch built against it.
 *
 * None of these options stops a livepatch from loading; each puts a requirement on the code and tables
 * of the module Suture builds, so `suture kernel info` names them next to the livepatch verdict. The 6.12
 * line turns most of them on (IBT, call padding with `__pfx_` symbols, call depth tracking, rethunk,
 * SRSO, ITS); Debian 12's 6.1 has retpolines, rethunk, SRSO and ITS under older option names.
 */

export interface CodegenFeature {
  /** the option's current name (6.12); `alias` is its older name where it was renamed */
  name: string;
  alias?: string;
  /** value of whichever name the config uses; `n` when absent */
  value: string;
  on: boolean;
  /** what it does to the kernel's code */
  what: string;
  /** what a livepatch module for this kernel must therefore do */
  livepatch: string;
}

interface Known {
  name: string;
  alias?: string;
  what: string;
  livepatch: string;
}

const KNOWN: Known[] = [
  {
    name: 'X86_KERNEL_IBT',
    what: 'Indirect Branch Tracking: an indirect call or jump must land on an endbr64, or the CPU faults; unused endbr64s of vmlinux are sealed (overwritten) at boot from .ibt_endbr_seal',
    livepatch:
      'every carried function and every function whose address the patch takes must start with endbr64 (-fcf-protection=branch); the seal entries of carried functions go with them. QEMU TCG has no IBT, so only the static check of the module catches a missing endbr64',
  },
  {
    name: 'CALL_PADDING',
    what: 'FUNCTION_PADDING_BYTES of padding before every function, for call thunks and FineIBT',
    livepatch:
      'the padding belongs to the function after it: a function and its padding are compared, carried and relocated as one unit',
  },
  {
    name: 'PREFIX_SYMBOLS',
    what: 'a `__pfx_<function>` symbol covers the padding before every function',
    livepatch:
      'a `__pfx_` symbol is part of its function, never a function of its own: it must not count as a changed or new function, nor hide the function sections',
  },
  {
    name: 'MITIGATION_CALL_DEPTH_TRACKING',
    alias: 'CALL_DEPTH_TRACKING',
    what: 'call depth tracking (Skylake retbleed): calls are redirected at boot and module load to accounting thunks in the callee padding; call sites are listed in .call_sites',
    livepatch:
      'the module must list exactly the calls of its carried functions in .call_sites, so the loader patches them like the kernel’s own',
  },
  {
    name: 'MITIGATION_RETHUNK',
    alias: 'RETHUNK',
    what: 'every `ret` is compiled as a jump to the return thunk; the sites are listed in .return_sites and rewritten at boot and module load',
    livepatch:
      'carried functions must keep their .return_sites entries (and only theirs), or their returns bypass the mitigation the kernel selected',
  },
  {
    name: 'MITIGATION_SRSO',
    alias: 'CPU_SRSO',
    what: 'Speculative Return Stack Overflow mitigation (AMD): the return thunk becomes the SRSO one chosen at boot',
    livepatch:
      'nothing beyond RETHUNK: as long as returns go through .return_sites the loader applies the kernel’s choice to the module',
  },
  {
    name: 'MITIGATION_ITS',
    what: 'Indirect Target Selection mitigation (Intel): indirect branches in the lower half of a cache line are sent through ITS thunks, rewritten from .retpoline_sites',
    livepatch:
      'carried functions must keep their .retpoline_sites entries so the loader rewrites their indirect branches',
  },
  {
    name: 'MITIGATION_RETPOLINE',
    alias: 'RETPOLINE',
    what: 'indirect calls and jumps go through retpoline thunks, listed in .retpoline_sites',
    livepatch:
      'the module is compiled with the same thunks (-mindirect-branch=thunk-extern) and keeps its .retpoline_sites entries',
  },
];

/** The code generation options of a kernel config, each with what it means for a livepatch. */
export function codegenFeatures(cfg: ReadonlyMap<string, string>): CodegenFeature[] {
  return KNOWN.map((k) => {
    const current = cfg.get(k.name);
    const old = k.alias ? cfg.get(k.alias) : undefined;
    const value = current ?? old ?? 'n';
    const usesAlias = current === undefined && old !== undefined;
    return {
      name: usesAlias && k.alias ? k.alias : k.name,
      ...(k.alias ? { alias: usesAlias ? k.name : k.alias } : {}),
      value,
      on: value === 'y',
      what: k.what,
      livepatch: k.livepatch,
    };
  });
}
