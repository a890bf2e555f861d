/*
 * Phased rollouts and halts from the admin's side, and the gate that opens waves.
 *
 *   GET  /admin/v1/patches/:id/rollout   each tier's waves (size, applied, healthy, failed, opened at) and halt
 *   POST /admin/v1/patches/:id/halt      { tier, reason }: no further machine of the tier is offered it (audited)
 *   POST /admin/v1/patches/:id/resume    { tier }: lift a halt, by hand or from a `bad` report (audited)
 *
 * The gate (`store.advanceRollouts`) runs every `intervalMs` on every instance; opening a wave is a
 * conditional update, so two instances never open the same wave twice. Whatever it opens, and any halt
 * or resume here, clears this instance's offer cache.
 */
import type { FastifyInstance } from 'fastify';
import { patchIdSchema } from '../manifest/protocol.js';
import { haltRequestSchema, resumeRequestSchema } from './admin-protocol.js';
import { adminAudit, adminRoute } from './admin-route.js';
import type { ServerContext } from './context.js';
import { HttpError, invalidRequest } from './http-error.js';
import type { HaltOutcome } from './store.js';

function parseId(raw: string): string {
  const r = patchIdSchema.safeParse(raw);
  if (!r.success) throw invalidRequest('the patch id', r.error);
  return r.data;
}

function refuse(out: HaltOutcome, id: string, tier: string): void {
  if (out === 'unknown') {
    throw new HttpError(404, 'PATCH-TIER-UNKNOWN', `patch ${id} is not offered to tier ${tier}`, {
      hint: 'see `suture rollout status PATCH` for its tiers',
    });
  }
}

export function registerRolloutApi(app: FastifyInstance, ctx: ServerContext, intervalMs = 5000): void {
  const { store } = ctx;
  const common = adminRoute(ctx);
  const status = async (id: string) => {
    if (!(await store.getPatch(id)))
      throw new HttpError(404, 'PATCH-UNKNOWN', `no patch ${id} on this server`, {
        hint: 'see `suture kernels`',
      });
    return store.rolloutStatus(id);
  };

  app.get<{ Params: { id: string } }>('/admin/v1/patches/:id/rollout', common, async (req) =>
    status(parseId(req.params.id)),
  );

  app.post<{ Params: { id: string } }>('/admin/v1/patches/:id/halt', common, async (req) => {
    const id = parseId(req.params.id);
    const r = haltRequestSchema.safeParse(req.body);
    if (!r.success) throw invalidRequest('the halt request', r.error);
    await status(id);
    const out = await store.haltPatch(
      id,
      r.data.tier,
      r.data.reason,
      adminAudit(req, 'halt', id, { tier: r.data.tier, reason: r.data.reason }),
    );
    refuse(out, id, r.data.tier);
    ctx.offers.clear();
    return store.rolloutStatus(id);
  });

  app.post<{ Params: { id: string } }>('/admin/v1/patches/:id/resume', common, async (req) => {
    const id = parseId(req.params.id);
    const r = resumeRequestSchema.safeParse(req.body);
    if (!r.success) throw invalidRequest('the resume request', r.error);
    await status(id);
    const out = await store.resumePatch(
      id,
      r.data.tier,
      adminAudit(req, 'resume', id, { tier: r.data.tier }),
    );
    refuse(out, id, r.data.tier);
    ctx.offers.clear();
    return store.rolloutStatus(id);
  });

  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    store
      .advanceRollouts(new Date().toISOString())
      .then((opened) => {
        if (opened.length) ctx.offers.clear();
      })
      .catch((e: unknown) => app.log.error(e, 'rollout gate'))
      .finally(() => {
        running = false;
      });
  }, intervalMs);
  timer.unref();
  app.addHook('onClose', async () => clearInterval(timer));
}
