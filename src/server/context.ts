/*
 * What every route module is given: the server's context (store, artifacts, signing key, limits, offer
 * cache, admin authentication) and the request limits. It imports no route module, so routes and the
 * app that wires them (app.ts, routes.ts) form no cycle.
 */
import type { FastifyRequest } from 'fastify';
import type { ArtifactStore } from './artifacts.js';
import { bearer } from './credentials.js';
import type { Limits } from './limits.js';
import type { OfferCache } from './offer-cache.js';
import type { RateLimiter } from './rate-limit.js';
import type { ServerSigner } from './signing.js';
import type { Store } from './store.js';

export { defaultLimits, type Limits } from './limits.js';

export interface ServerContext {
  store: Store;
  artifacts: ArtifactStore;
  /** the signing key: manifests, check-in answers, rotation (signing.ts) */
  signer: ServerSigner;
  checkinIntervalSeconds: number;
  limits: Limits;
  offers: OfferCache;
  /** failed logins are counted here (rate-limit.ts) */
  limiter: RateLimiter;
  /** sha256 of the Bearer token /metrics requires, when one was configured (`--metrics-token`) */
  metricsTokenHash?: string;
  /** the admin token as `Authorization: Bearer` (never a cookie), checked against the stored hash */
  isAdmin(req: FastifyRequest): Promise<boolean>;
  /** the current admin token hash (cached for one second, so every instance agrees within it) */
  adminTokenHash(): Promise<string | undefined>;
  /** throws 401 unless `isAdmin`; returns the audit actor */
  requireAdmin(req: FastifyRequest): Promise<string>;
}

/** The admin token of a request: the Bearer header only (a cookie would let other sites act). */
export function adminSecretFrom(req: FastifyRequest): string | undefined {
  return bearer(req.headers.authorization);
}
