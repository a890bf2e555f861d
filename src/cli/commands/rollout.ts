/*
 * `suture rollout status <patch>`: each tier's waves — size, applied, healthy, failed, opened at —
 * and whether it is halted (and why). `suture rollout halt <patch> --tier T --reason …` stops it by
 * hand; `suture resume` lifts a halt, `suture revoke` withdraws the patch.
 */
import type { Command } from 'commander';
import { AdminClient, type AdminCliOptions, adminTarget } from '../../server/admin-client.js';
import { renderRollout } from '../../server/rollout-view.js';

export function register(program: Command): void {
  const rollout = program.command('rollout').description('phased rollouts: waves and halts of a patch');
  rollout
    .command('status <patch>')
    .description("show each tier's waves (size, applied, healthy, failed, opened at) and halts")
    .option('--server <url>', 'server URL [$SUTURE_SERVER]')
    .option('--admin-token <token>', 'admin token [$SUTURE_ADMIN_TOKEN]')
    .option('--json', 'print the rollout as JSON')
    .action(async (ref: string, o: AdminCliOptions) => {
      const client = new AdminClient(adminTarget(o));
      const r = await client.rolloutStatus((await client.resolvePatch(ref)).id);
      process.stdout.write(o.json ? `${JSON.stringify(r, null, 2)}\n` : renderRollout(r));
    });
  rollout
    .command('halt <patch>')
    .description('halt a patch for a tier: no further machine of it is offered the patch')
    .requiredOption('--tier <tier>', 'the tier to halt it for')
    .requiredOption('--reason <text>', 'why (audit log, dashboard)')
    .option('--server <url>', 'server URL [$SUTURE_SERVER]')
    .option('--admin-token <token>', 'admin token [$SUTURE_ADMIN_TOKEN]')
    .option('--json', 'print the rollout as JSON')
    .action(async (ref: string, o: AdminCliOptions & { tier: string; reason: string }) => {
      const client = new AdminClient(adminTarget(o));
      const r = await client.halt((await client.resolvePatch(ref)).id, o.tier, o.reason);
      process.stdout.write(o.json ? `${JSON.stringify(r, null, 2)}\n` : renderRollout(r));
    });
}
