/*
 * Dashboard sessions and what guards the dashboard's state-changing forms.
 *
 * Logging in with the admin token opens a session: a random 32-byte id in an `HttpOnly;
 * SameSite=Strict` cookie (plus `Secure` when the request came over TLS — directly, or through a proxy
 * trusted with `--trust-proxy`), its sha256 and expiry in the database (store/admin-access.ts). The
 * cookie never holds the admin token, so logging out (POST, deletes the row) or rotating the token
 * really ends it. The admin API ignores the cookie entirely: it takes the token as Bearer only.
 *
 * SameSite does not separate ports or sibling subdomains (they are the same site), so every
 * state-changing dashboard POST must also carry
 *   - an `Origin` equal to this server's own origin (scheme, host and port as the browser used them), and
 *   - the session's CSRF token in a hidden form field: HMAC-SHA256 keyed by the session id, which
 *     another origin can neither read (HttpOnly) nor compute.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { HttpError } from './http-error.js';
import type { Store } from './store.js';

export const SESSION_COOKIE = 'suture_session';
/** a session lasts 12 hours from login */
export const SESSION_SECONDS = 12 * 3600;

const hashId = (id: string) => createHash('sha256').update(`session\0${id}`).digest('hex');

function cookieValue(req: FastifyRequest, name: string): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      const v = part.slice(eq + 1).trim();
      return /^[A-Za-z0-9_-]{43}$/.test(v) ? v : undefined;
    }
  }
  return undefined;
}

export function sessionCookie(id: string, secure: boolean): string {
  return `${SESSION_COOKIE}=${id}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${SESSION_SECONDS}${secure ? '; Secure' : ''}`;
}

export function clearedSessionCookie(secure: boolean): string {
  return `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0${secure ? '; Secure' : ''}`;
}

export async function openSession(store: Store, actor: string): Promise<string> {
  const id = randomBytes(32).toString('base64url');
  const now = new Date();
  await store.openSession({
    idHash: hashId(id),
    actor,
    now: now.toISOString(),
    expiresAt: new Date(now.getTime() + SESSION_SECONDS * 1000).toISOString(),
  });
  return id;
}

/** The live session of this request: its id and CSRF token, or undefined. */
export async function currentSession(
  store: Store,
  req: FastifyRequest,
): Promise<{ id: string; csrf: string } | undefined> {
  const id = cookieValue(req, SESSION_COOKIE);
  if (!id || !(await store.sessionValid(hashId(id), new Date().toISOString()))) return undefined;
  return { id, csrf: csrfToken(id) };
}

export function closeSession(store: Store, id: string): Promise<void> {
  return store.closeSession(hashId(id));
}

export function csrfToken(sessionId: string): string {
  return createHmac('sha256', sessionId).update('suture dashboard csrf').digest('base64url');
}

/** This server's origin as the browser addressed it (`--trust-proxy` makes forwarded values count). */
export function ownOrigin(req: FastifyRequest): string {
  return `${req.protocol}://${req.host}`;
}

/** 403 unless the request's Origin is this server's own. */
export function requireSameOrigin(req: FastifyRequest): void {
  const origin = req.headers.origin;
  if (origin !== ownOrigin(req)) {
    throw new HttpError(
      403,
      'ORIGIN-MISMATCH',
      origin
        ? `a form from ${origin} may not act on this dashboard (${ownOrigin(req)})`
        : 'this dashboard action needs an Origin header (sent by every browser on a form POST)',
      {
        hint:
          origin === `https://${req.host}` && req.protocol === 'http'
            ? 'the browser used https: behind a TLS proxy, start the server with --trust-proxy ADDR (the proxy)'
            : 'use the dashboard itself, or the admin API with the admin token as Bearer',
      },
    );
  }
}

/** 403 unless the form carries this session's CSRF token. */
export function requireCsrf(session: { csrf: string }, body: unknown): void {
  const sent = (body as { csrf?: unknown } | undefined)?.csrf;
  const ok =
    typeof sent === 'string' &&
    sent.length === session.csrf.length &&
    timingSafeEqual(Buffer.from(sent), Buffer.from(session.csrf));
  if (!ok) {
    throw new HttpError(403, 'CSRF-INVALID', 'this form does not carry the CSRF token of your session', {
      hint: 'reload the dashboard page and submit its form again',
    });
  }
}
