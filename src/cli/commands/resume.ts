/*
 * `suture resume <patch> --tier T`: lift a halt (from a `bad` or, in a waved rollout, a failure
 * report, or `suture rollout halt`): machines of the tier are offered the patch again, audited.
 * To withdraw the patch instead, `suture revoke <patch>`.
 */
import type { Command } from 'commander';
import { AdminClient, type AdminCliOptions, adminTarget } from '../../server/admin-client.js';
import { renderRollout } from '../../server/rollout-view.js';

export function register(program: Command): void {
  program
    .command('resume <patch>')
    .description('resume a halted patch for a tier (after a bad or failure report)')
    .requiredOption('--tier <tier>', 'the tier to resume it for')
    .option('--server <url>', 'server URL [$SUTURE_SERVER]')
    .option('--admin-token <token>', 'admin token [$SUTURE_ADMIN_TOKEN]')
    .option('--json', 'print the rollout as JSON')
    .action(async (ref: string, o: AdminCliOptions & { tier: string }) => {
      const client = new AdminClient(adminTarget(o));
      const r = await client.resume((await client.resolvePatch(ref)).id, o.tier);
      process.stdout.write(o.json ? `${JSON.stringify(r, null, 2)}\n` : renderRollout(r));
    });
}
