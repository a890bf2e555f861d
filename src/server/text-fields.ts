/*
 * Control characters at the HTTP edge: every string a request carries — JSON body values and keys,
 * form fields, query strings, path parameters — is refused with one 400 (`TEXT-CONTROL-CHARACTER`)
 * when it holds a NUL or another control character, before any handler or store sees it. Tab, line
 * feed and carriage return are text (failure reasons and descriptions span lines).
 *
 * Without this the two stores disagreed: SQLite stored a NUL, PostgreSQL answered 500.
 */
import { HttpError } from './http-error.js';

// C0 except \t \n \r, DEL, and the C1 block
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/;

function refuse(where: string, s: string): never {
  const at = s.search(CONTROL);
  const code = s.charCodeAt(at).toString(16).padStart(4, '0');
  throw new HttpError(400, 'TEXT-CONTROL-CHARACTER', `${where} holds the control character U+${code}`, {
    detail: [`at character ${at}`],
    hint: 'send text without NUL or other control characters (tab and newlines are fine)',
  });
}

/** Throw the 400 if `value` (any parsed JSON or form value) holds a control character anywhere. */
export function rejectControlCharacters(value: unknown, where: string, depth = 0): void {
  if (typeof value === 'string') {
    if (CONTROL.test(value)) refuse(where, value);
    return;
  }
  if (value === null || typeof value !== 'object' || depth > 64) return;
  if (Array.isArray(value)) {
    value.forEach((v, i) => {
      rejectControlCharacters(v, `${where}[${i}]`, depth + 1);
    });
    return;
  }
  // a stream (module upload) or bytes are not text
  if (Buffer.isBuffer(value) || typeof (value as { pipe?: unknown }).pipe === 'function') return;
  for (const [k, v] of Object.entries(value)) {
    if (CONTROL.test(k)) refuse(`${where}: a field name`, k);
    rejectControlCharacters(v, `${where}.${k}`, depth + 1);
  }
}
