/*
 * The signing key on the admin API: which key signs, and rotating it (`suture key rotate`).
 *
 *   GET  /admin/v1/key          → { publicKey, fingerprint, custody, rotations }
 *   POST /admin/v1/key/rotate   → { previous, publicKey, fingerprint, at }   (audited: `key-rotate`)
 *
 * A rotation makes a new key, announces it under the old one and switches to it (signing.ts); the next
 * check-in answers carry the announcement, and each agent moves its trust to the new key when it
 * verifies. The offer lists are rebuilt at once, signed with the new key. Like every admin route
 * (admin-route.ts): Bearer only, JSON only, a foreign `Origin` refused, the admin rate budget.
 */
import type { FastifyInstance } from 'fastify';
import { keyFingerprint } from '../manifest/signature.js';
import { adminAudit, adminRoute } from './admin-route.js';
import type { ServerContext } from './context.js';

export interface KeyInfo {
  publicKey: string;
  fingerprint: string;
  /** `the database` or the key file's path */
  custody: string;
  rotations: number;
}

export interface KeyRotation {
  previous: string;
  publicKey: string;
  fingerprint: string;
  at: string;
}

export function registerKeyApi(app: FastifyInstance, ctx: ServerContext): void {
  const route = adminRoute(ctx);
  app.get('/admin/v1/key', route, async (): Promise<KeyInfo> => {
    await ctx.signer.refresh();
    return {
      publicKey: ctx.signer.publicKey,
      fingerprint: keyFingerprint(ctx.signer.publicKey),
      custody: ctx.signer.custody,
      rotations: ctx.signer.rotations,
    };
  });

  app.post('/admin/v1/key/rotate', route, async (req): Promise<KeyRotation> => {
    const ann = await ctx.signer.rotate((detail) =>
      adminAudit(req, 'key-rotate', keyFingerprint(ctx.signer.publicKey), detail),
    );
    ctx.offers.clear();
    return {
      previous: ann.previous,
      publicKey: ann.publicKey,
      fingerprint: keyFingerprint(ann.publicKey),
      at: ann.at,
    };
  });
}
