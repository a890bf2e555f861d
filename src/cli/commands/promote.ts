/*
 * `suture promote <patch> --tier stable`: offer a published patch to one more tier.
 * <patch> is a patch id, a unique id prefix, or the name of the one active patch with that name.
 * `--waves 10,50,100 [--gate-checkins N] [--soak 10m]` rolls the new tier out in waves.
 */
import type { Command } from 'commander';
import { AdminClient, type AdminCliOptions, adminTarget } from '../../server/admin-client.js';
import { addWaveOptions, type WaveCliOptions, wavePlanFrom } from '../../server/wave-options.js';

export function register(program: Command): void {
  const cmd = program
    .command('promote <patch>')
    .description('offer a published patch to another tier (e.g. canary → stable)')
    .requiredOption('--tier <tier>', 'the tier to add')
    .option('--server <url>', 'server URL [$SUTURE_SERVER]')
    .option('--admin-token <token>', 'admin token [$SUTURE_ADMIN_TOKEN]')
    .option('--json', 'print the patch as JSON');
  addWaveOptions(cmd).action(async (ref: string, o: AdminCliOptions & WaveCliOptions & { tier: string }) => {
    const rollout = wavePlanFrom(o);
    const client = new AdminClient(adminTarget(o));
    const p = await client.promote((await client.resolvePatch(ref)).id, o.tier, rollout);
    process.stdout.write(
      o.json
        ? `${JSON.stringify(p, null, 2)}\n`
        : `${p.id} ${p.name} v${p.version}: tiers ${p.tiers.join(', ')}\n`,
    );
  });
}
