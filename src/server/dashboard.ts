/*
 * The fleet dashboard: server-rendered HTML pages, no build step and no script.
 *
 *   /            fleet overview: machines by kernel and state, patches with rollout per tier,
 *                failures with the agent's reason, machines, the last admin actions (audit log)
 *   /machines/ID one machine: its kernel, its patches, their state and the CVEs they fix
 *   /patches/ID  one patch: manifest, functions, CVEs, rollout per tier, machines that have it, and
 *                its promote and revoke forms
 *   /login       the admin token, exchanged for a server-side session (session.ts); POST /logout ends it
 *
 * Pages need a live session (or the admin token as Bearer). Every state-changing POST — login, logout,
 * promote, revoke — needs a same-origin `Origin`, and all but login the session's CSRF token.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { patchIdSchema, tierSchema } from '../manifest/protocol.js';
import type { ServerContext } from './context.js';
import { hashSecret } from './credentials.js';
import { fleetPage, loginPage, machinePage, notFoundPage, patchPage } from './dashboard-pages.js';
import { HttpError, invalidRequest } from './http-error.js';
import {
  clearedSessionCookie,
  closeSession,
  currentSession,
  openSession,
  requireCsrf,
  requireSameOrigin,
  sessionCookie,
} from './session.js';
import type { AuditEntry } from './store.js';

const promoteForm = z.object({ csrf: z.string(), tier: tierSchema }).strict();
const revokeForm = z.object({ csrf: z.string(), reason: z.string().max(1000).default('') }).strict();

export function registerDashboard(app: FastifyInstance, ctx: ServerContext): void {
  const { store } = ctx;
  const html = (reply: FastifyReply, s: string) => reply.type('text/html; charset=utf-8').send(s);
  const secure = (req: FastifyRequest) => req.protocol === 'https';
  /** the session's CSRF token, or a redirect to the login form (a Bearer admin gets a throwaway one) */
  const gate = async (req: FastifyRequest, reply: FastifyReply): Promise<string | undefined> => {
    const s = await currentSession(store, req);
    if (s) return s.csrf;
    if (await ctx.isAdmin(req)) return '';
    await reply.redirect('/login');
    return undefined;
  };
  /** a state-changing form: same origin, a live session, its CSRF token */
  const action = async (req: FastifyRequest) => {
    requireSameOrigin(req);
    const s = await currentSession(store, req);
    if (!s) {
      throw new HttpError(403, 'SESSION-INVALID', 'this action needs a live dashboard session', {
        hint: 'log in again at /login',
      });
    }
    requireCsrf(s, req.body);
    return s;
  };
  const audit = (req: FastifyRequest, action: string, target: string, detail: Record<string, unknown>) =>
    ({ at: new Date().toISOString(), actor: `dashboard@${req.ip}`, action, target, detail }) as AuditEntry;

  app.get('/login', async (req, reply) =>
    html(reply, loginPage(Boolean((req.query as { failed?: string }).failed))),
  );

  app.post('/login', { config: { limit: 'login' } }, async (req, reply) => {
    requireSameOrigin(req);
    const token = (req.body as { token?: unknown } | undefined)?.token;
    const stored = await ctx.adminTokenHash();
    if (typeof token !== 'string' || !stored || hashSecret(token) !== stored) {
      ctx.limiter.failed(req);
      return reply.redirect('/login?failed=1', 303);
    }
    const id = await openSession(store, `dashboard@${req.ip}`);
    return reply.header('set-cookie', sessionCookie(id, secure(req))).redirect('/', 303);
  });

  app.post('/logout', async (req, reply) => {
    const s = await action(req);
    await closeSession(store, s.id);
    return reply.header('set-cookie', clearedSessionCookie(secure(req))).redirect('/login', 303);
  });

  app.get('/', async (req, reply) => {
    const csrf = await gate(req, reply);
    if (csrf === undefined) return reply;
    const [fleet, rollout, failures, patches, machines, auditLog, halts] = await Promise.all([
      store.fleet(),
      store.rollout(),
      store.failures(50),
      store.listPatches(),
      store.listMachines(200),
      store.listAudit(20),
      store.listHalts(),
    ]);
    return html(
      reply,
      fleetPage({ fleet, rollout, failures, patches, machines, audit: auditLog, halts }, csrf),
    );
  });

  app.get<{ Params: { id: string } }>('/machines/:id', async (req, reply) => {
    const csrf = await gate(req, reply);
    if (csrf === undefined) return reply;
    const m = await store.getMachine(req.params.id);
    if (!m) return html(reply.code(404), notFoundPage(`machine ${req.params.id}`, csrf));
    return html(reply, machinePage(m, csrf));
  });

  app.get<{ Params: { id: string } }>('/patches/:id', async (req, reply) => {
    const csrf = await gate(req, reply);
    if (csrf === undefined) return reply;
    const p = /^[0-9a-f]{16}$/.test(req.params.id) ? await store.getPatch(req.params.id) : undefined;
    if (!p) return html(reply.code(404), notFoundPage(`patch ${req.params.id}`, csrf));
    const rollout = (await store.rollout()).filter((r) => r.patchId === p.id);
    return html(
      reply,
      patchPage(p, rollout, await store.patchMachines(p.id), csrf, await store.rolloutStatus(p.id)),
    );
  });

  const patchId = (raw: string) => {
    const r = patchIdSchema.safeParse(raw);
    if (!r.success) throw invalidRequest('the patch id', r.error);
    return r.data;
  };

  app.post<{ Params: { id: string } }>('/patches/:id/promote', async (req, reply) => {
    await action(req);
    const id = patchId(req.params.id);
    const f = promoteForm.safeParse(req.body);
    if (!f.success) throw invalidRequest('the promote form', f.error);
    const out = await store.promote(
      id,
      f.data.tier,
      audit(req, 'promote', id, { tier: f.data.tier }),
      new Date().toISOString(),
    );
    if (out === 'unknown') throw new HttpError(404, 'PATCH-UNKNOWN', `no patch ${id} on this server`);
    if (out === 'revoked') throw new HttpError(409, 'PATCH-REVOKED', `patch ${id} is revoked`);
    ctx.offers.clear();
    return reply.redirect(`/patches/${id}`, 303);
  });

  app.post<{ Params: { id: string } }>('/patches/:id/revoke', async (req, reply) => {
    await action(req);
    const id = patchId(req.params.id);
    const f = revokeForm.safeParse(req.body);
    if (!f.success) throw invalidRequest('the revoke form', f.error);
    const out = await store.revoke(
      id,
      f.data.reason,
      audit(req, 'revoke', id, { reason: f.data.reason }),
      new Date().toISOString(),
    );
    if (out === 'unknown') throw new HttpError(404, 'PATCH-UNKNOWN', `no patch ${id} on this server`);
    ctx.offers.clear();
    return reply.redirect(`/patches/${id}`, 303);
  });
}
