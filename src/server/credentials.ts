/*
 * Secrets the server hands out: enrollment tokens, machine credentials, the admin token.
 *
 * Each is 32 random bytes (base64url) behind a prefix saying what it is (`sut_enroll_`, `sut_machine_`,
 * `sut_admin_`), so a leaked string is recognisable. The server stores only sha256(secret): with 256 bits
 * of entropy a slow password hash buys nothing, and a fast hash keeps the check-in lookup to one index
 * probe. Comparing hashes through the index means no timing leak about the secret itself.
 */
import { createHash, randomBytes } from 'node:crypto';

export type SecretKind = 'enroll' | 'machine' | 'admin';

export function newSecret(kind: SecretKind): string {
  return `sut_${kind}_${randomBytes(32).toString('base64url')}`;
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** A random id with a prefix: `m-…` for machines, `t-…` for tokens (16 hex digits). */
export function newId(prefix: 'm' | 't'): string {
  return `${prefix}-${randomBytes(8).toString('hex')}`;
}

/** The secret from an `Authorization: Bearer …` header, or undefined. */
export function bearer(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^Bearer\s+(\S{1,512})$/i.exec(header.trim());
  return m?.[1];
}
