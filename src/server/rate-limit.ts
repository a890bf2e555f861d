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
 * The counters live in this process: several instances behind a load balancer each allow the limit.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
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

/** Counts per key in fixed one-minute windows; the previous window is dropped whole. */
class WindowCounter {
  private counts = new Map<string, number>();
  private windowStart = 0;

  constructor(private readonly windowMs: number) {}

  private roll(now: number): void {
    if (now - this.windowStart >= this.windowMs) {
      this.counts = new Map();
      this.windowStart = now;
    }
  }

  /** add one; returns the count in this window */
  hit(key: string, now: number): number {
    this.roll(now);
    const n = (this.counts.get(key) ?? 0) + 1;
    this.counts.set(key, n);
    return n;
  }

  count(key: string, now: number): number {
    this.roll(now);
    return this.counts.get(key) ?? 0;
  }

  retryAfterSeconds(now: number): number {
    return Math.max(1, Math.ceil((this.windowStart + this.windowMs - now) / 1000));
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

export class RateLimiter {
  private readonly requests = new WindowCounter(60_000);
  private readonly failures = new WindowCounter(60_000);

  constructor(private readonly limits: Limits) {}

  private budget(c: LimitClass): number {
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

  /** onRequest: refuse an address over its failure budget, then count the request against its key. */
  check(req: FastifyRequest, reply: FastifyReply): void {
    const now = Date.now();
    if (this.failures.count(req.ip, now) >= this.limits.authFailuresPerMinute) {
      const after = this.failures.retryAfterSeconds(now);
      reply.header('retry-after', String(after));
      throw rateLimited(`too many failed authentications from ${req.ip}`, after);
    }
    const c = req.routeOptions.config?.limit ?? 'other';
    // enrollment and login are counted per address whatever they carry: their secret is in the body
    const key = `${c}:${c === 'enroll' || c === 'login' ? `addr:${req.ip}` : RateLimiter.keyOf(req)}`;
    if (this.requests.hit(key, now) > this.budget(c)) {
      const after = this.requests.retryAfterSeconds(now);
      reply.header('retry-after', String(after));
      throw rateLimited(`more than ${this.budget(c)} requests a minute`, after);
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
