/*
 * What every admin API route shares: a request a browser marks with another site's `Origin` is a 403;
 * authentication by the admin token as `Authorization: Bearer` (a cookie never counts, so another site
 * cannot make a browser act); JSON bodies only (a form is a 415);
 * the admin rate-limit budget, and the audit entry of a change.
 */
import type { FastifyRequest } from 'fastify';
import type { ServerContext } from './context.js';
import { HttpError } from './http-error.js';
import { requireSameOrigin } from './session.js';
import type { AuditEntry } from './store.js';

export function adminRoute(ctx: ServerContext) {
  const onRequest = async (req: FastifyRequest) => {
    // a browser says where a request comes from: another site's page never reaches authentication
    if (req.headers.origin !== undefined) requireSameOrigin(req);
    await ctx.requireAdmin(req);
    const type = req.headers['content-type'] ?? '';
    const upload = req.method === 'PUT' && type.startsWith('application/octet-stream');
    if (
      req.method !== 'GET' &&
      req.method !== 'HEAD' &&
      !upload &&
      !/^application\/json\s*(;|$)/i.test(type)
    ) {
      throw new HttpError(
        415,
        'CONTENT-TYPE',
        'the admin API takes JSON bodies only (Content-Type: application/json)',
        {
          hint: 'send JSON with Content-Type: application/json and the admin token as Bearer',
        },
      );
    }
  };
  return { onRequest, config: { limit: 'admin' as const } };
}

export function adminAudit(
  req: FastifyRequest,
  action: string,
  target: string,
  detail: Record<string, unknown>,
): AuditEntry {
  return { at: new Date().toISOString(), actor: `admin@${req.ip}`, action, target, detail };
}
