/*
 * What every route module is given: the server's context (store, artifacts, signing key, limits, offer
 * cache, admin authentication) and the request limits. It imports no route module, so routes and the
 * app that wires them (app.ts, routes.ts) form no cycle.
 */
import type { FastifyRequest } from 'fastify';
import type { ArtifactStore } from './artifacts.js';
import { bearer } from './credentials.js';
import type { OfferCache } from './offer-cache.js';
import type { RateLimiter } from './rate-limit.js';
import type { ServerSigner } from './signing.js';
import type { Store } from './store.js';

export interface Limits {
  /** largest JSON body on the machine API (bytes) */
  machineBody: number;
  /** largest JSON body on the admin API (bytes) */
  adminBody: number;
  /** largest module upload (bytes) */
  upload: number;
  /** largest module publish accepts (bytes), and the most executable bytes (SHF_EXECINSTR) in it */
  moduleBytes: number;
  moduleText: number;
  /**
   * requests per minute (rate-limit.ts): enrollments and logins per client address; check-ins,
   * reports and downloads per machine credential; admin and other calls per token or address
   */
  enrollPerMinute: number;
  checkinPerMinute: number;
  adminPerMinute: number;
  loginPerMinute: number;
  /** failed authentications per client address per minute before everything from it is refused */
  authFailuresPerMinute: number;
}

export const defaultLimits: Limits = {
  machineBody: 64 * 1024,
  adminBody: 1024 * 1024,
  upload: 64 * 1024 * 1024,
  moduleBytes: 16 * 1024 * 1024,
  moduleText: 4 * 1024 * 1024,
  enrollPerMinute: 60,
  checkinPerMinute: 60,
  adminPerMinute: 600,
  loginPerMinute: 20,
  authFailuresPerMinute: 30,
};

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
