/*
 * Every route of the server, registered in one place: the machine API, the admin API (with incident response, rollout waves and halts), /metrics and the
 * dashboard. app.ts calls this after its hooks and error handlers; nothing here imports app.ts.
 */
import type { FastifyInstance } from 'fastify';
import { registerAdminApi } from './admin-api.js';
import { registerAdminIncident } from './admin-incident.js';
import type { ServerContext } from './context.js';
import { registerDashboard } from './dashboard.js';
import { registerKeyApi } from './key-api.js';
import { registerMachineApi } from './machine-api.js';
import { registerMetrics } from './metrics.js';
import { registerRolloutApi } from './rollout-api.js';

export function registerRoutes(app: FastifyInstance, ctx: ServerContext, metricsCacheMs?: number): void {
  registerMachineApi(app, ctx);
  registerAdminApi(app, ctx);
  registerAdminIncident(app, ctx);
  registerRolloutApi(app, ctx);
  registerKeyApi(app, ctx);
  registerMetrics(app, ctx, metricsCacheMs);
  registerDashboard(app, ctx);
}
