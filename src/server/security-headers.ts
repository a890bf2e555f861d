/*
 * Headers on every response: no framing (`X-Frame-Options: DENY`, `frame-ancestors 'none'`), a strict
 * Content-Security-Policy (nothing loads but the dashboard's one stylesheet, identified by its hash; no
 * script at all; forms post only to this server), no MIME sniffing, and no referrer to other sites
 * (`same-origin`, not `no-referrer`: with the latter a browser sends `Origin: null` on our own forms,
 * and session.ts checks that Origin).
 */
import type { FastifyReply } from 'fastify';

export function contentSecurityPolicy(styleHash: string): string {
  return [
    "default-src 'none'",
    `style-src '${styleHash}'`,
    "img-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join('; ');
}

export function setSecurityHeaders(reply: FastifyReply, csp: string): void {
  reply.header('content-security-policy', csp);
  reply.header('x-frame-options', 'DENY');
  reply.header('x-content-type-options', 'nosniff');
  reply.header('referrer-policy', 'same-origin');
}
