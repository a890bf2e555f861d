/*
 * The patch manifest: the one description of a livepatch that every stage agrees on.
 *
 * `suture build` writes it next to `livepatch-NAME.ko`; the server stores and signs it; the agent and
 * `suture apply` read it to refuse a patch for any other kernel before touching the running one.
 * Parse, don't validate: everything that reads a manifest from disk or the network goes through
 * `parseManifest`, which returns a typed value or throws a SutureError naming the bad field.
 */
import { z } from 'zod';
import { manifestRefused, manifestValue } from './manifest-input.js';

const hex = (len?: number) =>
  (len ? z.string().length(len) : z.string().min(2)).regex(/^[0-9a-f]+$/, 'lowercase hex expected');

export const patchedFunctionSchema = z
  .object({
    /** symbol in the running kernel that is replaced */
    name: z.string().min(1),
    /** position among same-named local symbols of that object (0 = unique), as klp_func.old_sympos */
    sympos: z.number().int().min(0),
    /** source file that defines it, e.g. `fs/proc/meminfo.c` */
    file: z.string().optional(),
    change: z.enum(['changed', 'new']).default('changed'),
  })
  .strict();

export const patchedObjectSchema = z
  .object({
    /** `vmlinux` or a module name as the kernel knows it (e.g. `xfs`) */
    name: z.string().min(1),
    functions: z.array(patchedFunctionSchema),
  })
  .strict();

export const manifestSchema = z
  .object({
    schema: z.literal(1),
    /** livepatch name: the module is `livepatch-NAME.ko`, sysfs dir `/sys/kernel/livepatch/livepatch_NAME` */
    name: z.string().regex(/^[a-z0-9_-]{1,48}$/, 'lowercase letters, digits, - and _ only'),
    /** free-form version shown by `status` (e.g. `1`, `2026.11.24-1`) */
    version: z.string().min(1).default('1'),
    kernel: z
      .object({
        release: z.string().min(1),
        buildId: hex(40),
        debianVersion: z.string().optional(),
      })
      .strict(),
    /** cumulative patch: replaces every earlier livepatch (klp_patch.replace) */
    replace: z.boolean().default(false),
    objects: z.array(patchedObjectSchema).min(1),
    module: z
      .object({
        file: z.string().min(1),
        sha256: hex(64),
        /** module name as loaded (`livepatch_NAME`) */
        name: z.string().min(1),
      })
      .strict(),
    source: z
      .object({
        diffSha256: hex(64).optional(),
        description: z.string().optional(),
      })
      .strict()
      .default({}),
    cves: z.array(z.string().regex(/^CVE-\d{4}-\d{4,}$/)).default([]),
    tool: z.object({ name: z.literal('suture'), version: z.string() }).strict(),
    createdAt: z.string().datetime().optional(),
  })
  .strict();

export type Manifest = z.infer<typeof manifestSchema>;
export type PatchedObject = z.infer<typeof patchedObjectSchema>;
export type PatchedFunction = z.infer<typeof patchedFunctionSchema>;

/** Parse untrusted JSON (text or value) into a Manifest, or throw MANIFEST-INVALID naming the field. */
export function parseManifest(input: string | unknown, where = 'manifest'): Manifest {
  const r = manifestSchema.safeParse(manifestValue(input, where));
  if (!r.success)
    throw manifestRefused(
      where,
      r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`),
    );
  return r.data;
}

/** Canonical JSON (sorted keys, no spaces) of a manifest: what gets hashed and signed. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * Canonical JSON of an object whose values are already canonical JSON text: the same bytes as
 * canonicalJson of the parsed object, without re-serialising large parts (the server's offer lists).
 */
export function canonicalObject(parts: Record<string, string | undefined>): string {
  const entries = Object.entries(parts)
    .filter((e): e is [string, string] => e[1] !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`;
}
