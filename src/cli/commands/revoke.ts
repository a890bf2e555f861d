/*
 * `suture revoke <patch> [--reason …]`: withdraw a patch; every agent that may have it reverts it at
 * its next check-in, and it is never offered or served again.
 */
import type { Command } from 'commander';
import { AdminClient, type AdminCliOptions, adminTarget } from '../../server/admin-client.js';

export function register(program: Command): void {
  program
    .command('revoke <patch>')
    .description('revoke a patch: agents revert it at their next check-in')
    .option('--reason <text>', 'why (kept in the audit log and shown on the dashboard)', '')
    .option('--server <url>', 'server URL [$SUTURE_SERVER]')
    .option('--admin-token <token>', 'admin token [$SUTURE_ADMIN_TOKEN]')
    .option('--json', 'print the patch as JSON')
    .action(async (ref: string, o: AdminCliOptions & { reason: string }) => {
      const client = new AdminClient(adminTarget(o));
      const p = await client.revoke((await client.resolvePatch(ref)).id, o.reason);
      process.stdout.write(
        o.json
          ? `${JSON.stringify(p, null, 2)}\n`
          : `${p.id} ${p.name} v${p.version}: revoked at ${p.revokedAt}\n`,
      );
    });
}
