/*
 * The two ends of reading a manifest that do not depend on how its fields are checked: JSON text (or
 * an already parsed value) in, and the refusal naming each bad field out. Free of zod, so the host's
 * own reader (host/manifest-read.ts) shares them with parseManifest without loading it.
 */
import { SutureError } from '../diagnostic.js';

const HINT = 'use the manifest.json that `suture build` wrote next to the module';

/** The manifest as a JSON value: text is parsed (MANIFEST-INVALID when it is not JSON), a value passes. */
export function manifestValue(input: string | unknown, where: string): unknown {
  if (typeof input !== 'string') return input;
  try {
    return JSON.parse(input);
  } catch (e) {
    throw new SutureError({
      code: 'MANIFEST-INVALID',
      message: `${where} is not JSON: ${(e as Error).message}`,
      location: { file: where },
      hint: HINT,
    });
  }
}

/** MANIFEST-INVALID for a value whose fields broke the schema, one `path: message` line per issue. */
export function manifestRefused(where: string, issues: string[]): SutureError {
  return new SutureError({
    code: 'MANIFEST-INVALID',
    message: `${where} does not describe a livepatch`,
    location: { file: where },
    detail: issues,
    hint: HINT,
  });
}
