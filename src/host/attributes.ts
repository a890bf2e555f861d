/*
 * The per-patch sysfs attributes a running kernel may or may not have, read and shown as they are.
 *
 * 6.1 has `enabled`, `transition`, `force` per patch and `patched` per object; 6.12 adds `replace` (is
 * the patch cumulative) and kernels from 6.13 `stack_order` (its position in the stack of patches
 * applied to the same functions: 1 is the oldest). Which exist is detected from the directory, never
 * assumed from the release; a missing one is `undefined`, not a default.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** `stack_order` of a patch directory, when the kernel has the attribute and it reads as a number. */
export function readStackOrder(dir: string, attributes: readonly string[]): number | undefined {
  if (!attributes.includes('stack_order')) return undefined;
  try {
    const n = Number.parseInt(readFileSync(join(dir, 'stack_order'), 'utf8').trim(), 10);
    return Number.isInteger(n) && n >= 0 ? n : undefined;
  } catch {
    return undefined; // the patch was freed while being read
  }
}

export interface ShownAttributes {
  replace: boolean | undefined;
  stackOrder: number | undefined;
  objects: readonly { name: string; patched: boolean | undefined }[];
}

/**
 * What the kernel itself says of a patch, only the attributes it has: `replace 1, stack_order 2,
 * vmlinux patched 1, binfmt_misc patched 0`. Undefined when it has none of them (an inactive patch).
 */
export function attributesText(p: ShownAttributes): string | undefined {
  const parts: string[] = [];
  if (p.replace !== undefined) parts.push(`replace ${p.replace ? 1 : 0}`);
  if (p.stackOrder !== undefined) parts.push(`stack_order ${p.stackOrder}`);
  for (const o of p.objects)
    if (o.patched !== undefined) parts.push(`${o.name} patched ${o.patched ? 1 : 0}`);
  return parts.length ? parts.join(', ') : undefined;
}
