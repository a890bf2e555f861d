/*
 * `/metrics`: the fleet in Prometheus text exposition format (version 0.0.4), computed from the store
 * at scrape time, so every instance behind a load balancer reports the same numbers.
 *
 *   suture_machines{tier,state}                      machines by summary patch state
 *   suture_machine_checkins_total                    check-ins received (sum over machines)
 *   suture_patch_apply_failures_total{patch,name}    failed applies reported by agents
 *   suture_patch_machines{patch,name,tier,state}     machines per patch, tier and patch state
 *   suture_patch_rollout_ratio{patch,name,tier}      applied / eligible machines (exact kernel, tier)
 *   suture_patches{state}                            published patches, active or revoked
 *   suture_patch_halted{patch,name,tier}             1 for each halted (patch, tier): a bad/failure report or an admin
 *   suture_machines_kernel_support{support}          machines by what their check-in answer says of their kernel
 *                                                    (patched, upgrade-required, unsupported: kernel-support.ts)
 *
 * No secrets, hostnames or machine ids appear here: only counts, tiers and patch ids. With
 * `--metrics-token` the endpoint needs that token as Bearer (the numbers still say how big the fleet is
 * and which patches fail).
 */
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from './context.js';
import { bearer, hashSecret } from './credentials.js';
import { unauthorized } from './http-error.js';
import { kernelSupportOf, patchedKernelsOf } from './kernel-support.js';
import type { Store } from './store.js';

function esc(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function labels(l: Record<string, string>): string {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${esc(v)}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

export async function renderMetrics(store: Store): Promise<string> {
  const [fleet, rollout, counters, patches, halts, kernels] = await Promise.all([
    store.fleet(),
    store.rollout(),
    store.counters(),
    store.listPatches(),
    store.listHalts(),
    store.listKernels(),
  ]);
  const names = new Map(patches.map((p) => [p.id, p.name]));
  const out: string[] = [];
  const family = (name: string, type: 'gauge' | 'counter', help: string) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  };

  family(
    'suture_machines',
    'gauge',
    'Enrolled machines by tier and summary patch state (failed > transition > applied > none).',
  );
  const byTierState = new Map<string, number>();
  for (const f of fleet) {
    const k = `${f.tier}\0${f.state}`;
    byTierState.set(k, (byTierState.get(k) ?? 0) + f.machines);
  }
  for (const [k, n] of [...byTierState].sort()) {
    const [tier = '', state = ''] = k.split('\0');
    out.push(`suture_machines${labels({ tier, state })} ${n}`);
  }

  family('suture_machine_checkins_total', 'counter', 'Check-ins received from all machines.');
  out.push(`suture_machine_checkins_total ${counters.checkins}`);

  family('suture_patch_apply_failures_total', 'counter', 'Failed applies reported by agents, per patch.');
  for (const f of counters.applyFailures) {
    out.push(
      `suture_patch_apply_failures_total${labels({ patch: f.patchId, name: names.get(f.patchId) ?? '' })} ${f.n}`,
    );
  }

  family('suture_patch_machines', 'gauge', 'Machines per patch, tier and patch state.');
  for (const r of rollout) {
    const name = names.get(r.patchId) ?? '';
    for (const state of ['applied', 'transition', 'failed', 'reverted'] as const) {
      out.push(`suture_patch_machines${labels({ patch: r.patchId, name, tier: r.tier, state })} ${r[state]}`);
    }
  }

  family(
    'suture_patch_rollout_ratio',
    'gauge',
    'Share of eligible machines (exact kernel, tier) that applied the patch.',
  );
  for (const r of rollout) {
    const ratio = r.eligible ? r.applied / r.eligible : 0;
    out.push(
      `suture_patch_rollout_ratio${labels({ patch: r.patchId, name: names.get(r.patchId) ?? '', tier: r.tier })} ${ratio}`,
    );
  }

  family('suture_patches', 'gauge', 'Published patches by state.');
  const revoked = patches.filter((p) => p.revokedAt).length;
  out.push(`suture_patches${labels({ state: 'active' })} ${patches.length - revoked}`);
  out.push(`suture_patches${labels({ state: 'revoked' })} ${revoked}`);

  family(
    'suture_patch_halted',
    'gauge',
    'Patches halted for a tier (no further machine of it is offered them).',
  );
  for (const x of halts) {
    out.push(
      `suture_patch_halted${labels({ patch: x.patchId, name: names.get(x.patchId) ?? '', tier: x.tier })} 1`,
    );
  }

  family(
    'suture_machines_kernel_support',
    'gauge',
    'Machines by what the server knows of their kernel: patched, upgrade-required (only other kernels of its flavour are), unsupported.',
  );
  const bySupport = { patched: 0, 'upgrade-required': 0, unsupported: 0 };
  const patched = patchedKernelsOf(patches); // the patches at hand, not a second query
  for (const k of kernels) {
    if (k.machines) bySupport[kernelSupportOf(k, patched).kernelSupport] += k.machines;
  }
  for (const [support, n] of Object.entries(bySupport))
    out.push(`suture_machines_kernel_support${labels({ support })} ${n}`);
  return `${out.join('\n')}\n`;
}

/**
 * Rendering aggregates over every machine (≈200 ms at 100,000 machines on SQLite, during which the
 * single SQLite connection serves nothing else), so one rendering is shared by all scrapes within
 * `cacheMs` and concurrent scrapes wait for the same one.
 */
export function registerMetrics(app: FastifyInstance, ctx: ServerContext, cacheMs = 5000): void {
  let cached: { at: number; text: Promise<string> } | undefined;
  app.get('/metrics', async (req, reply) => {
    if (ctx.metricsTokenHash) {
      const secret = bearer(req.headers.authorization);
      if (!secret || hashSecret(secret) !== ctx.metricsTokenHash) {
        throw unauthorized(
          secret ? 'the metrics token is wrong' : '/metrics needs the metrics token as Bearer',
          'configure the scraper with the token given to `suture server --metrics-token` (Prometheus: authorization.credentials)',
        );
      }
    }
    if (!cached || Date.now() - cached.at > cacheMs) {
      const text = renderMetrics(ctx.store);
      cached = { at: Date.now(), text };
      text.catch(() => {
        cached = undefined;
      });
    }
    return reply.type('text/plain; version=0.0.4; charset=utf-8').send(await cached.text);
  });
}
