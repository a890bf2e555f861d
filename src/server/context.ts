/*
 * What every route module is given: the server's context (store, artifacts, signing key, limits, offer
 * cache, admin authentication) and the request limits. It imports no route module, so routes and the
 * app that wires them (app.ts, routes.ts) form no cycle.
 */
import type { FastifyRequest } from 'fastify';
import type { ArtifactStore } from './artifacts.js';
import { bearer } from './credentials.js';
import type { OfferCache } from './offer-cache.js';
import type { ServerSigner } from './signing.js';
import type { Store } from './store.js';

export interface Limits {
  /** largest JSON body on the machine API (bytes) */
  machineBody: number;
  /** largest JSON body on the admin API (bytes) */
  adminBody: number;
  /** largest module upload (bytes) */
  upload: number;
  /** requests per minute: enrollments per client address, check-ins and reports per machine credential */
  enrollPerMinute: number;
  checkinPerMinute: number;
  adminPerMinute: number;
}

export const defaultLimits: Limits = {
  machineBody: 64 * 1024,
  adminBody: 1024 * 1024,
  upload: 64 * 1024 * 1024,
  enrollPerMinute: 60,
  checkinPerMinute: 60,
  adminPerMinute: 600,
};

export interface ServerContext {
  store: Store;
  artifacts: ArtifactStore;
  /** the signing key: manifests, check-in answers, rotation (signing.ts) */
  signer: ServerSigner;
  checkinIntervalSeconds: number;
  limits: Limits;
  offers: OfferCache;
  /** sha256 of the admin token, re-read from the store so every instance agrees */
  isAdmin(req: FastifyRequest): Promise<boolean>;
  requireAdmin(req: FastifyRequest): Promise<string>;
}

const COOKIE = 'suture_admin';

export function adminSecretFrom(req: FastifyRequest): string | undefined {
  const b = bearer(req.headers.authorization);
  if (b) return b;
  const cookie = req.headers.cookie;
  if (!cookie) return undefined;
  for (const part of cookie.split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === COOKIE) return decodeURIComponent(v.join('='));
  }
  return undefined;
}

export const adminCookie = (token: string, secure: boolean) =>
  `${COOKIE}=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/; Max-Age=86400${secure ? '; Secure' : ''}`;
