/*
 * The special tables' entry sizes of one target kernel, read from its own types: the `.BTF` section of
 * its debug vmlinux (elf/btf.ts) gives `sizeof(struct alt_instr)` and friends, so a new kernel line needs
 * no table keyed by version. Reading the BTF of a 400 MB vmlinux takes a few hundred milliseconds; the
 * result is kept in a small JSON file the caller names (one per kernel build id).
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { fail } from '../diagnostic.js';
import { readBtfStructs } from '../elf/btf.js';
import { type TableSizes, tableSizesFromStructs } from './special-tables.js';

const cached = z.object({
  format: z.literal(1),
  vmlinux: z.string(),
  sizes: z.record(z.string(), z.number().int().positive()),
});

/** The entry sizes of the kernel whose debug vmlinux is `vmlinux`, remembered in `cacheFile` if given. */
export function kernelTableSizes(vmlinux: string, cacheFile?: string): TableSizes {
  if (cacheFile && existsSync(cacheFile)) {
    const c = cached.safeParse(JSON.parse(readFileSync(cacheFile, 'utf8')));
    if (c.success && c.data.vmlinux === vmlinux) return c.data.sizes;
  }
  const structs = readBtfStructs(vmlinux);
  if (!structs)
    fail('OBJDIFF-NO-KERNEL-TYPES', `${vmlinux} has no .BTF section`, {
      location: { file: vmlinux },
      why: 'the special tables` entry sizes are read from the kernel`s own type information (DEBUG_INFO_BTF)',
      hint: 'set them by hand: --table-entry SECTION=BYTES for each table the objects have',
    });
  const sizes = tableSizesFromStructs((name) => structs.get(name)?.size);
  if (cacheFile) {
    mkdirSync(dirname(cacheFile), { recursive: true });
    const tmp = `${cacheFile}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify({ format: 1, vmlinux, sizes }));
    renameSync(tmp, cacheFile);
  }
  return sizes;
}

/** The sizes of a target kernel (its debug vmlinux and build id), cached in `<cacheRoot>/tables/<build id>.json`. */
export function targetTableSizes(t: { vmlinux: string; buildId: string }, cacheRoot: string): TableSizes {
  return kernelTableSizes(t.vmlinux, join(cacheRoot, 'tables', `${t.buildId}.json`));
}
