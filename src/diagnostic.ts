/*
 * Diagnostics: how Suture reports anything that went wrong.
 *
 * Every stage reports failure as a value: a Diagnostic with a stable code (e.g. `ELF-TRUNCATED`,
 * `KERNEL-UNKNOWN-RELEASE`, `KLP-DATA-CHANGED`), a one-line message, an optional location (file, line,
 * byte offset, symbol), the reason in plain words (`why`) and what the operator can do about it (`hint`).
 * Stages that cannot return a value through a deep call chain throw a SutureError, which only carries a
 * Diagnostic; the CLI catches it and renders it like a compiler would:
 *
 *   fs/proc/meminfo.c:131: error[KLP-DATA-CHANGED]: static variable `foo` changed size
 *     why: a livepatch replaces functions, not data: the running kernel keeps the old layout
 *     hint: move the new state into a shadow variable (klp_shadow_alloc) or drop the change
 *
 * This file is a leaf: every folder may import it, it imports nothing of ours.
 */

export type Severity = 'error' | 'warning' | 'note';

export interface Location {
  file?: string;
  line?: number;
  /** byte offset into `file`, for binary inputs (ELF, .deb) */
  offset?: number;
  /** the ELF field or record the problem is in, e.g. `e_shoff`, `section[12].sh_link` */
  field?: string;
  symbol?: string;
  section?: string;
}

export interface Diagnostic {
  severity: Severity;
  code: string;
  message: string;
  location?: Location;
  why?: string;
  hint?: string;
  /** extra lines shown verbatim under the message (a hunk, a stack, a list of symbols) */
  detail?: string[];
}

export class SutureError extends Error {
  readonly diagnostic: Diagnostic;
  constructor(diagnostic: Omit<Diagnostic, 'severity'> & { severity?: Severity }) {
    const d: Diagnostic = { severity: 'error', ...diagnostic };
    super(`${d.code}: ${d.message}`);
    this.name = 'SutureError';
    this.diagnostic = d;
  }
  get code(): string {
    return this.diagnostic.code;
  }
}

/** Shorthand for `throw new SutureError({...})` in expression position. */
export function fail(
  code: string,
  message: string,
  extra: Partial<Omit<Diagnostic, 'code' | 'message'>> = {},
): never {
  throw new SutureError({ code, message, ...extra });
}

export function isSutureError(e: unknown): e is SutureError {
  return e instanceof SutureError;
}

/** A result for APIs that collect several problems instead of stopping at the first. */
export type Result<T> = { ok: true; value: T } | { ok: false; diagnostics: Diagnostic[] };

export function formatLocation(loc: Location | undefined): string {
  if (!loc) return '';
  let s = loc.file ?? '';
  if (loc.line !== undefined) s += `:${loc.line}`;
  if (loc.offset !== undefined) s += `${s ? ':' : ''}0x${loc.offset.toString(16)}`;
  const inner = [loc.section && `section ${loc.section}`, loc.symbol && `symbol ${loc.symbol}`, loc.field]
    .filter(Boolean)
    .join(', ');
  if (inner) s += s ? ` (${inner})` : inner;
  return s;
}

/** Render like a compiler: `where: error[CODE]: message`, then why/hint/detail lines. */
export function renderDiagnostic(d: Diagnostic, color = false): string {
  const paint = (code: string, s: string) => (color ? `\x1b[${code}m${s}\x1b[0m` : s);
  const sevColor = d.severity === 'error' ? '1;31' : d.severity === 'warning' ? '1;33' : '1;36';
  const where = formatLocation(d.location);
  const lines = [`${where ? `${where}: ` : ''}${paint(sevColor, `${d.severity}[${d.code}]`)}: ${d.message}`];
  for (const l of d.detail ?? []) lines.push(`    ${l}`);
  if (d.why) lines.push(`  ${paint('1', 'why')}: ${d.why}`);
  if (d.hint) lines.push(`  ${paint('1', 'hint')}: ${d.hint}`);
  return lines.join('\n');
}

/** Turn anything thrown into a Diagnostic (unknown errors become `INTERNAL` with the stack as detail). */
export function toDiagnostic(e: unknown): Diagnostic {
  if (isSutureError(e)) return e.diagnostic;
  const err = e instanceof Error ? e : new Error(String(e));
  return {
    severity: 'error',
    code: 'INTERNAL',
    message: err.message,
    detail: (err.stack ?? '').split('\n').slice(1, 8),
    hint: 'this is a bug in Suture: please report it with the command you ran',
  };
}
