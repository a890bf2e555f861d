/*
 * The HTTP server: fastify with the machine API (`/v1/…`), the admin API (`/admin/v1/…`), `/metrics`
 * and the dashboard, over one Store, one ArtifactStore and the server's signing key.
 *
 * Every input edge parses before it touches anything: bodies through the zod schemas of protocol.ts
 * (strict: unknown fields are a 400), secrets through their sha256 index. A request that fails
 * parsing, size limits, rate limits (rate-limit.ts, before authentication), control characters
 * (text-fields.ts) or authentication is answered 4xx with an ErrorResponse before any statement runs,
 * so bad input never changes the database. Every response carries the anti-framing and
 * content-security headers of security-headers.ts.
 */
import Fastify, {
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from 'fastify';
import { isSutureError } from '../diagnostic.js';
import type { ArtifactStore } from './artifacts.js';
import { adminSecretFrom, defaultLimits, type Limits, type ServerContext } from './context.js';
import { hashSecret } from './credentials.js';
import { STYLE_HASH } from './dashboard-html.js';
import { errorBody, HttpError, unauthorized } from './http-error.js';
import { OfferCache } from './offer-cache.js';
import { RateLimiter } from './rate-limit.js';
import { registerRoutes } from './routes.js';
import { contentSecurityPolicy, setSecurityHeaders } from './security-headers.js';
import type { ServerSigner } from './signing.js';
import type { Store } from './store.js';
import { rejectControlCharacters } from './text-fields.js';

export type { Limits, ServerContext } from './context.js';

export interface AppOptions {
  store: Store;
  artifacts: ArtifactStore;
  signer: ServerSigner;
  checkinIntervalSeconds?: number;
  limits?: Partial<Limits>;
  /** fastify logger (off by default; `suture server` turns it on) */
  logger?: boolean;
  /** how long another instance's publish may take to show in check-ins (ms) */
  offerTtlMs?: number;
  /** how long one /metrics rendering is served to scrapes (ms, default 5000; 0 = always fresh) */
  metricsCacheMs?: number;
  /** serve HTTPS with this certificate chain and key (PEM) */
  tls?: { cert: Buffer; key: Buffer };
  /**
   * the TLS proxy in front: its addresses (or `loopback`, …) whose X-Forwarded-For/-Proto/-Host count
   * for the client address, rate-limit keys and `Secure` cookies; nothing is trusted by default
   */
  trustProxy?: string[];
  /** require `Authorization: Bearer` with this token on /metrics */
  metricsToken?: string;
}

export async function buildApp(opts: AppOptions): Promise<FastifyInstance> {
  const limits: Limits = { ...defaultLimits, ...opts.limits };
  const app = Fastify({
    ...(opts.tls ? { https: { cert: opts.tls.cert, key: opts.tls.key } } : {}),
    logger: opts.logger ?? false,
    // thousands of check-ins a second: log what went wrong (below), not every request
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: limits.adminBody,
    trustProxy: opts.trustProxy?.length ? opts.trustProxy : false,
    return503OnClosing: true,
  });
  const limiter = new RateLimiter(limits);
  const csp = contentSecurityPolicy(STYLE_HASH);
  // before everything else, authentication included: see rate-limit.ts
  // (callback hooks, not async ones: these run on every check-in, the hot path)
  app.addHook('onRequest', (req, reply, done) => {
    setSecurityHeaders(reply, csp);
    try {
      limiter.check(req, reply);
    } catch (e) {
      return done(e as Error);
    }
    done();
  });
  // after parsing, before any handler: see text-fields.ts
  app.addHook('preHandler', (req, _reply, done) => {
    try {
      rejectControlCharacters(req.params, 'the path');
      rejectControlCharacters(req.query, 'the query string');
      rejectControlCharacters(req.body, 'the request body');
    } catch (e) {
      return done(e as Error);
    }
    done();
  });
  app.addHook('onResponse', async (req, reply) => {
    limiter.recordOutcome(req, reply.statusCode);
    if (reply.statusCode >= 400) {
      req.log.warn(
        { method: req.method, url: req.url.split('?')[0], status: reply.statusCode, ip: req.ip },
        'refused',
      );
    } else if (req.method !== 'GET' && req.url.startsWith('/admin/')) {
      req.log.info({ method: req.method, url: req.url, status: reply.statusCode, ip: req.ip }, 'admin');
    }
  });

  const ctx = serverContext(opts, limits, limiter);

  // JSON only (plus the two below): a text/plain body is a 415, not a string to validate
  app.removeContentTypeParser('text/plain');
  // uploads: hand the raw stream to the artifact store, which enforces size and hash itself
  app.addContentTypeParser('application/octet-stream', (_req, payload, done) => done(null, payload));
  // the dashboard's forms (the admin API refuses this type: admin-api.ts)
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(String(body))));
  });

  app.setErrorHandler(errorReply);
  await limiter.register(app);
  app.setNotFoundHandler({ preHandler: app.rateLimit() }, (req, reply) => {
    reply.code(404).send(errorBody('NOT-FOUND', `no such endpoint: ${req.method} ${req.url.split('?')[0]}`));
  });

  registerRoutes(app, ctx, opts.metricsCacheMs);
  return app;
}

export { HttpError };

/** The context every route module is given; admin authentication re-reads the token hash each second. */
function serverContext(opts: AppOptions, limits: Limits, limiter: RateLimiter): ServerContext {
  let adminHash: { value: string | undefined; at: number } = { value: undefined, at: 0 };
  const ctx: ServerContext = {
    store: opts.store,
    artifacts: opts.artifacts,
    signer: opts.signer,
    checkinIntervalSeconds: opts.checkinIntervalSeconds ?? 600,
    limits,
    offers: new OfferCache(opts.store, opts.signer, opts.offerTtlMs),
    limiter,
    ...(opts.metricsToken ? { metricsTokenHash: hashSecret(opts.metricsToken) } : {}),
    async adminTokenHash() {
      if (Date.now() - adminHash.at > 1000) {
        adminHash = { value: await opts.store.getSetting('admin_token_hash'), at: Date.now() };
      }
      return adminHash.value;
    },
    async isAdmin(req) {
      const secret = adminSecretFrom(req);
      if (!secret) return false;
      const stored = await ctx.adminTokenHash();
      return stored !== undefined && hashSecret(secret) === stored;
    },
    async requireAdmin(req) {
      if (!(await ctx.isAdmin(req))) {
        throw unauthorized(
          adminSecretFrom(req) ? 'the admin token is wrong' : 'this call needs the admin token as Bearer',
          'pass --admin-token (or set SUTURE_ADMIN_TOKEN) to the token printed at the first start, stored in <data>/admin-token',
        );
      }
      return `admin@${req.ip}`;
    },
  };
  return ctx;
}

/** Every error as an ErrorResponse body: ours with their status and code, fastify's mapped to codes. */
function errorReply(err: unknown, req: FastifyRequest, reply: FastifyReply) {
  if (err instanceof HttpError) {
    const d = err.diagnostic;
    return reply.code(err.status).send(errorBody(d.code, d.message, d.hint, d.detail));
  }
  if (isSutureError(err)) {
    const d = err.diagnostic;
    // ARTIFACT-*: a module the database should hold is gone or damaged — the server's fault
    const status = d.code === 'UPLOAD-TOO-LARGE' ? 413 : d.code.startsWith('ARTIFACT-') ? 500 : 400;
    return reply.code(status).send(errorBody(d.code, d.message, d.hint, d.detail));
  }
  const e = err as { statusCode?: number; code?: string; message: string };
  const status = e.statusCode ?? 500;
  if (status === 429) {
    return reply
      .code(429)
      .send(errorBody('RATE-LIMITED', e.message, 'slow down: retry after the time given'));
  }
  if (status === 413) {
    return reply
      .code(413)
      .send(errorBody('BODY-TOO-LARGE', `the request body is larger than this endpoint accepts`, undefined));
  }
  if (status === 415) {
    return reply
      .code(415)
      .send(errorBody('CONTENT-TYPE', e.message, 'send JSON with Content-Type: application/json'));
  }
  if (status >= 400 && status < 500) {
    const code =
      e.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || /JSON/i.test(e.message) ? 'JSON-INVALID' : 'BAD-REQUEST';
    return reply.code(status).send(errorBody(code, e.message));
  }
  req.log.error(err);
  return reply.code(500).send(errorBody('INTERNAL', 'internal server error', 'see the server log'));
}
