/*
 * Errors the HTTP layer answers with: a status code plus the diagnostic body of protocol.ts
 * (`{ error: { code, message, hint?, detail? } }`). Handlers throw HttpError; app.ts turns it — and
 * fastify's own errors (bad JSON, oversized body, wrong content type, rate limit) — into that body.
 */
import type { ZodError } from 'zod';
import { SutureError } from '../diagnostic.js';
import type { ErrorResponse } from '../manifest/protocol.js';

export class HttpError extends SutureError {
  constructor(
    readonly status: number,
    code: string,
    message: string,
    extra: { hint?: string; detail?: string[] } = {},
  ) {
    super({ code, message, ...extra });
  }
}

export function errorBody(code: string, message: string, hint?: string, detail?: string[]): ErrorResponse {
  const error: ErrorResponse['error'] = { code, message };
  if (hint) error.hint = hint;
  if (detail?.length) error.detail = detail;
  return { error };
}

export function invalidRequest(what: string, e: ZodError): HttpError {
  return new HttpError(400, 'REQUEST-INVALID', `${what} is not valid`, {
    detail: e.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`),
    hint: 'see src/manifest/protocol.ts for the exact schema; unknown fields are refused',
  });
}

export const unauthorized = (what: string, hint: string) =>
  new HttpError(401, 'AUTH-INVALID', what, { hint });
