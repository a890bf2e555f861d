/*
 * Test fixture (not a test): patches whose patched code uses jump labels and static calls, written
 * against the target's own source. Shared by module-keys.test.ts and module-keys.vm.test.ts.
 *
 *   kyber      — an overflow fix to kyber's calculate_percentile (block/kyber-iosched.c, a module on
 *                Debian), which calls `trace_kyber_latency()`: the tracepoint lives in kyber_iosched
 *   meminfo    — meminfo_proc_show (vmlinux) with a new `trace_sched_kthread_stop_ret(4242)` and a new
 *                `static_branch_unlikely(&sched_schedstats)` printing `SutureSchedstats: on`: both keys
 *                are vmlinux's (neither exported, so klp symbols of vmlinux)
 *   nftables   — a bound check in nft_do_chain (nf_tables), under `static_branch_unlikely(&nft_trace_enabled)`
 *                and `nft_counters_enabled`: static keys of the module
 *   aesni      — ctr_crypt (aesni_intel) wiping its keystream after use, next to `static_call(aesni_ctr_enc_tfm)`:
 *                a static call of the module; aesniPlainCall — the same through KLP_STATIC_CALL
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createTwoFilesPatch } from 'diff';
import type { KernelTarget } from '../../kernel/target.js';

interface Edit {
  file: string;
  from: string;
  to: string;
}

const EDITS = {
  kyber: [
    {
      file: 'block/kyber-iosched.c',
      from: 'percentile_samples = DIV_ROUND_UP(samples * percentile, 100);',
      to: 'percentile_samples = DIV_ROUND_UP_ULL((u64)samples * percentile, 100);',
    },
  ],
  meminfo: [
    {
      file: 'fs/proc/meminfo.c',
      from: '#include "internal.h"\n',
      to: '#include "internal.h"\n#include <trace/events/sched.h>\n\nextern struct static_key_false sched_schedstats;\n',
    },
    {
      file: 'fs/proc/meminfo.c',
      from: '\tarch_report_meminfo(m);\n\n\treturn 0;',
      to: '\tarch_report_meminfo(m);\n\n\ttrace_sched_kthread_stop_ret(4242);\n\tif (static_branch_unlikely(&sched_schedstats))\n\t\tseq_puts(m, "SutureSchedstats: on\\n");\n\n\treturn 0;',
    },
  ],
  nftables: [
    {
      file: 'net/netfilter/nf_tables_core.c',
      from: '\tif (stackptr > 0) {\n\t\tstackptr--;',
      to: '\tif (stackptr > 0 && stackptr <= NFT_JUMP_STACK_SIZE) {\n\t\tstackptr--;',
    },
  ],
  aesni: [
    {
      file: 'arch/x86/crypto/aesni-intel_glue.c',
      from: '\t\t\tcrypto_inc(walk.iv, AES_BLOCK_SIZE);\n\t\t\tnbytes = 0;\n\t\t}\n\t\tkernel_fpu_end();',
      to: '\t\t\tcrypto_inc(walk.iv, AES_BLOCK_SIZE);\n\t\t\tmemzero_explicit(keystream, sizeof(keystream));\n\t\t\tnbytes = 0;\n\t\t}\n\t\tkernel_fpu_end();',
    },
  ],
  /** aesni rewritten as KLP-MODULE-KEY's hint says: the static call made through KLP_STATIC_CALL */
  aesniPlainCall: [
    {
      file: 'arch/x86/crypto/aesni-intel_glue.c',
      from: '#include <linux/static_call.h>\n',
      to: '#include <linux/static_call.h>\n#include <linux/livepatch_helpers.h>\n',
    },
    {
      file: 'arch/x86/crypto/aesni-intel_glue.c',
      from: '\t\t\tstatic_call(aesni_ctr_enc_tfm)(ctx, walk.dst.virt.addr,',
      to: '\t\t\tKLP_STATIC_CALL(aesni_ctr_enc_tfm)(ctx, walk.dst.virt.addr,',
    },
    {
      file: 'arch/x86/crypto/aesni-intel_glue.c',
      from: '\t\t\tcrypto_inc(walk.iv, AES_BLOCK_SIZE);\n\t\t\tnbytes = 0;\n\t\t}\n\t\tkernel_fpu_end();',
      to: '\t\t\tcrypto_inc(walk.iv, AES_BLOCK_SIZE);\n\t\t\tmemzero_explicit(keystream, sizeof(keystream));\n\t\t\tnbytes = 0;\n\t\t}\n\t\tkernel_fpu_end();',
    },
  ],
} satisfies Record<string, Edit[]>;

export type KeysPatch = keyof typeof EDITS;

/** Write `<dir>/<name>.patch` (the edits of `name` on the target's source); returns its path. */
export function writeKeysPatch(target: KernelTarget, dir: string, name: KeysPatch): string {
  const edits: Edit[] = EDITS[name];
  const file = edits[0]!.file;
  const text = readFileSync(join(target.sourceTree, file), 'utf8');
  let changed = text;
  for (const e of edits) {
    if (changed.split(e.from).length !== 2)
      throw new Error(`${name}: the edit of ${file} does not apply once`);
    changed = changed.replace(e.from, e.to);
  }
  const path = join(dir, `${name}.patch`);
  writeFileSync(path, createTwoFilesPatch(`a/${file}`, `b/${file}`, text, changed));
  return path;
}
