/*
 * Rate limits, enforced before authentication.
 *
 * Every request is counted in a one-minute window under a key taken from the request as parsed, never
 * from raw header bytes: the Bearer secret when one parses (`bearer()` ignores the
 * scheme's case and surrounding spaces, so `bearer  X` and `Bearer X` are one key), otherwise the client
 * address (`req.ip`, which honours X-Forwarded-For only with `--trust-proxy`). Requests without any
 * credential are therefore limited per address like the rest.
 *
 * Failed authentications (401/403: a wrong admin token or password, an unknown or disabled machine
 * credential, a bad enrollment token) are also counted per client address, and an address over its
 * failure budget is refused before its credential is even looked at — so guessing with a fresh
 * forged credential each time, which would start a fresh key each time, is limited too.
 *
 * The request budgets are @fastify/rate-limit's (`hook: 'onRequest'`, one key per budget and parsed
 * credential or address, `max` per budget); it counts requests only, so the failure counter is ours.
 * The counters live in this process: several instances behind a load balancer each allow the limit.
 */
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { bearer } from './credentials.js';
import { HttpError } from './http-error.js';
import type { Limits } from './limits.js';

/** Which budget a request draws from: a route says so in `config: { limit }`; the default is 'other'. */
export type LimitClass = 'enroll' | 'machine' | 'admin' | 'login' | 'other';

declare module 'fastify' {
  interface FastifyContextConfig {
    limit?: LimitClass;
  }
}

export function limitClassOf(method: string, route: string | undefined): LimitClass {
  if (route === '/v1/enroll') return 'enroll';
  if (route === '/v1/checkin' || route === '/v1/report' || route === '/v1/patches/:id/module')
    return 'machine';
  if (route?.startsWith('/admin/')) return 'admin';
  if (route === '/login' && method === 'POST') return 'login';
  return 'other';
}

const rateLimited = (why: string, retryAfter: number) =>
  new HttpError(429, 'RATE-LIMITED', `${why}; retry in ${retryAfter} s`, {
    hint: 'slow down: retry after the time given (Retry-After)',
  });

/** Failed authentications per client address in fixed one-minute windows. */
class FailureCounter {
  private counts = new Map<string, number>();
  private windowStart = 0;

  private roll(now: number): void {
    if (now - this.windowStart >= 60_000) {
      this.counts = new Map();
      this.windowStart = now;
    }
  }

  hit(key: string, now: number): void {
    this.roll(now);
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  count(key: string, now: number): number {
    this.roll(now);
    return this.counts.get(key) ?? 0;
  }

  retryAfterSeconds(now: number): number {
    return Math.max(1, Math.ceil((this.windowStart + 60_000 - now) / 1000));
  }
}

export class RateLimiter {
  private readonly failures = new FailureCounter();

  constructor(private readonly limits: Limits) {}

  budget(c: LimitClass): number {
    switch (c) {
      case 'enroll':
        return this.limits.enrollPerMinute;
      case 'machine':
        return this.limits.checkinPerMinute;
      case 'login':
        return this.limits.loginPerMinute;
      default:
        return this.limits.adminPerMinute;
    }
  }

  /** The key a request is counted under: its parsed credential, else its client address. */
  static keyOf(req: FastifyRequest): string {
    // the parsed secret itself (in memory only, for a minute): hashing it here would cost the hot path
    const secret = bearer(req.headers.authorization);
    return secret ? `cred:${secret}` : `addr:${req.ip}`;
  }

  /** The budget and key of a request; enrollment and login count per address (their secret is in the body). */
  static budgetKey(req: FastifyRequest): string {
    const c = req.routeOptions.config?.limit ?? 'other';
    return `${c}:${c === 'enroll' || c === 'login' ? `addr:${req.ip}` : RateLimiter.keyOf(req)}`;
  }

  /**
   * The per-key request budgets, by @fastify/rate-limit: registered (awaited) before any route, so its
   * onRoute hook puts its onRequest check on every route, after the app's own onRequest hook (`check`).
   * Unknown paths (the not-found handler) draw from the 'other' budget through `app.rateLimit()` (as its preHandler).
   */
  async register(app: FastifyInstance): Promise<void> {
    const off = { 'x-ratelimit-limit': false, 'x-ratelimit-remaining': false, 'x-ratelimit-reset': false };
    await app.register(rateLimit, {
      global: true,
      hook: 'onRequest',
      timeWindow: 60_000,
      // one entry per machine credential seen in a minute: a fleet of 100,000 fits
      cache: 1_000_000,
      keyGenerator: RateLimiter.budgetKey,
      max: (req) => this.budget(req.routeOptions.config?.limit ?? 'other'),
      addHeadersOnExceeding: off,
      addHeaders: { ...off, 'retry-after': true },
      errorResponseBuilder: (_req, c) =>
        rateLimited(`more than ${c.max} requests a minute`, Math.max(1, Math.ceil(c.ttl / 1000))),
    });
  }

  /** onRequest: refuse an address over its failure budget (before the request budgets are counted). */
  check(req: FastifyRequest, reply: FastifyReply): void {
    const now = Date.now();
    if (this.failures.count(req.ip, now) >= this.limits.authFailuresPerMinute) {
      const after = this.failures.retryAfterSeconds(now);
      reply.header('retry-after', String(after));
      throw rateLimited(`too many failed authentications from ${req.ip}`, after);
    }
  }

  /** A refused credential or password counts against the address it came from. */
  failed(req: FastifyRequest): void {
    this.failures.hit(req.ip, Date.now());
  }

  /** onResponse: every 401/403 is a failure of its address. */
  recordOutcome(req: FastifyRequest, status: number): void {
    if (status === 401 || status === 403) this.failed(req);
  }
}
