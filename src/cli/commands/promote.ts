/*
 * `suture promote <patch> --tier stable`: offer a published patch to one more tier.
 * <patch> is a patch id, a unique id prefix, or the name of the one active patch with that name.
 */
import type { Command } from 'commander';
import { AdminClient, type AdminCliOptions, adminTarget } from '../../server/admin-client.js';

export function register(program: Command): void {
  program
    .command('promote <patch>')
    .description('offer a published patch to another tier (e.g. canary → stable)')
    .requiredOption('--tier <tier>', 'the tier to add')
    .option('--server <url>', 'server URL [$SUTURE_SERVER]')
    .option('--admin-token <token>', 'admin token [$SUTURE_ADMIN_TOKEN]')
    .option('--json', 'print the patch as JSON')
    .action(async (ref: string, o: AdminCliOptions & { tier: string }) => {
      const client = new AdminClient(adminTarget(o));
      const p = await client.promote((await client.resolvePatch(ref)).id, o.tier);
      process.stdout.write(
        o.json
          ? `${JSON.stringify(p, null, 2)}\n`
          : `${p.id} ${p.name} v${p.version}: tiers ${p.tiers.join(', ')}\n`,
      );
    });
}
