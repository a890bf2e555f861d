/*
 * Incident response on the admin API: take back what was handed out.
 *
 *   revoke an enrollment token      it enrolls nobody from now on (machines it enrolled keep running)
 *   disable a machine's credential  its check-ins, reports and downloads get 403 MACHINE-DISABLED
 *                                   until it is enabled again
 *   rotate the admin token          a new one is returned once; the old one and every dashboard
 *                                   session stop working at once (other instances within a second)
 *
 * Each is audited in the transaction that makes it.
 */
import type { FastifyInstance } from 'fastify';
import { emptyRequestSchema, machineDisableRequestSchema } from './admin-protocol.js';
import { adminAudit, adminRoute } from './admin-route.js';
import type { ServerContext } from './context.js';
import { bearer, hashSecret, newSecret } from './credentials.js';
import { HttpError, invalidRequest } from './http-error.js';

export function registerAdminIncident(app: FastifyInstance, ctx: ServerContext): void {
  const { store } = ctx;
  const common = adminRoute(ctx);
  const machineOr404 = async (id: string) => {
    const m = await store.getMachine(id);
    if (!m)
      throw new HttpError(404, 'MACHINE-UNKNOWN', `no machine ${id}`, { hint: 'see `suture machines`' });
    return m;
  };

  app.post<{ Params: { id: string } }>('/admin/v1/tokens/:id/revoke', common, async (req) => {
    const r = emptyRequestSchema.safeParse(req.body ?? {});
    if (!r.success) throw invalidRequest('the token revoke request', r.error);
    const now = new Date().toISOString();
    const out = await store.revokeToken(
      req.params.id,
      adminAudit(req, 'token.revoke', req.params.id, {}),
      now,
    );
    const t = (await store.listTokens()).find((x) => x.id === req.params.id);
    if (out === 'unknown' || !t) {
      throw new HttpError(404, 'TOKEN-UNKNOWN', `no enrollment token ${req.params.id}`, {
        hint: 'see `suture token list`',
      });
    }
    return t;
  });

  const setDisabled = (disabled: boolean) =>
    app.post<{ Params: { id: string } }>(
      `/admin/v1/machines/:id/${disabled ? 'disable' : 'enable'}`,
      common,
      async (req) => {
        const r = machineDisableRequestSchema.safeParse(req.body ?? {});
        if (!r.success)
          throw invalidRequest(`the machine ${disabled ? 'disable' : 'enable'} request`, r.error);
        const detail = r.data.reason ? { reason: r.data.reason } : {};
        const action = disabled ? 'machine.disable' : 'machine.enable';
        const out = await store.setMachineDisabled(
          req.params.id,
          disabled,
          adminAudit(req, action, req.params.id, detail),
          new Date().toISOString(),
        );
        if (out === 'unknown') await machineOr404(req.params.id);
        return machineOr404(req.params.id);
      },
    );
  setDisabled(true);
  setDisabled(false);

  app.post('/admin/v1/admin-token/rotate', common, async (req, reply) => {
    const r = emptyRequestSchema.safeParse(req.body ?? {});
    if (!r.success) throw invalidRequest('the rotate request', r.error);
    const current = bearer(req.headers.authorization) ?? '';
    const token = newSecret('admin');
    const ok = await store.rotateAdminToken(
      hashSecret(current),
      hashSecret(token),
      adminAudit(req, 'admin.rotate-token', 'admin-token', {}),
    );
    if (!ok) {
      throw new HttpError(409, 'ADMIN-TOKEN-CHANGED', 'the admin token changed while this call ran', {
        hint: 'use the current admin token and rotate again',
      });
    }
    return reply.code(201).send({ token });
  });
}
