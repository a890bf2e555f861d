/*
 * `suture publish <module.ko> --manifest m.json --tier canary [--cve CVE-…]… [--description …]`
 *
 * Uploads the module and its manifest to the server, which checks the module's sha256 against the
 * manifest, merges the CVEs and description into it, signs it and stores it atomically. With
 * `--waves 10,50,100 [--gate-checkins N] [--soak 10m]` the tier gets it in waves (phased rollout).
 */
import type { Command } from 'commander';
import { AdminClient, type AdminCliOptions, adminTarget } from '../../server/admin-client.js';
import { addWaveOptions, type WaveCliOptions, wavePlanFrom } from '../../server/wave-options.js';
import { renderPatchTable } from '../patch-table.js';

export function register(program: Command): void {
  const cmd = program
    .command('publish <module>')
    .description('publish a livepatch module to a tier of the server (signed by the server)')
    .requiredOption('--manifest <file>', 'the manifest.json `suture build` wrote next to the module')
    .requiredOption('--tier <tier>', 'first tier to offer it to (e.g. canary)')
    .option('--cve <id>', 'a CVE the patch fixes (repeatable)', (v: string, acc: string[]) => [...acc, v], [])
    .option('--description <text>', 'one line shown on the dashboard')
    .option('--server <url>', 'server URL [$SUTURE_SERVER]')
    .option('--admin-token <token>', 'admin token [$SUTURE_ADMIN_TOKEN]')
    .option('--json', 'print the published patch as JSON');
  addWaveOptions(cmd).action(
    async (
      module: string,
      o: AdminCliOptions &
        WaveCliOptions & { manifest: string; tier: string; cve: string[]; description?: string },
    ) => {
      const rollout = wavePlanFrom(o);
      const client = new AdminClient(adminTarget(o));
      const p = await client.publish({
        module,
        manifest: o.manifest,
        tier: o.tier,
        cves: o.cve,
        ...(o.description !== undefined ? { description: o.description } : {}),
        ...(rollout ? { rollout } : {}),
      });
      if (o.json) {
        process.stdout.write(`${JSON.stringify(p, null, 2)}\n`);
        return;
      }
      process.stdout.write(`${renderPatchTable([p])}\n`);
    },
  );
}
