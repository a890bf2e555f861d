/*
 * `suture kernels [--patches] [--json]`: which exact kernels (release + build id) have patches on the
 * server and how many machines run them; with --patches, every patch with its tiers and state.
 */
import type { Command } from 'commander';
import { AdminClient, type AdminCliOptions, adminTarget, renderTable } from '../../server/admin-client.js';
import { renderPatchTable } from '../patch-table.js';

export function register(program: Command): void {
  program
    .command('kernels')
    .description('kernels known to the server: patches and machines per exact build')
    .option('--patches', 'list every patch too')
    .option('--server <url>', 'server URL [$SUTURE_SERVER]')
    .option('--admin-token <token>', 'admin token [$SUTURE_ADMIN_TOKEN]')
    .option('--json', 'JSON output')
    .action(async (o: AdminCliOptions & { patches?: boolean }) => {
      const client = new AdminClient(adminTarget(o));
      const kernels = await client.listKernels();
      const patches = o.patches ? await client.listPatches() : [];
      if (o.json) {
        process.stdout.write(`${JSON.stringify(o.patches ? { kernels, patches } : kernels, null, 2)}\n`);
        return;
      }
      process.stdout.write(
        `${renderTable(
          ['kernel', 'build id', 'patches', 'active', 'machines'],
          kernels.map((k) => [
            k.release,
            k.buildId,
            String(k.patches),
            String(k.activePatches),
            String(k.machines),
          ]),
        )}\n`,
      );
      if (o.patches) {
        process.stdout.write(`\n${renderPatchTable(patches, { state: true })}\n`);
      }
    });
}
