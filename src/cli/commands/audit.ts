/*
 * `suture audit [--json]`: the server's audit log — every admin action (publish, promote, revoke,
 * token creation) with when, from where and what, newest first (the last 200), as the server recorded
 * it in the same transaction as the change itself.
 */
import type { Command } from 'commander';
import { AdminClient, type AdminCliOptions, adminTarget, renderTable } from '../../server/admin-client.js';

export function register(program: Command): void {
  program
    .command('audit')
    .description("show the server's audit log of admin actions")
    .option('--server <url>', 'server URL [$SUTURE_SERVER]')
    .option('--admin-token <token>', 'admin token [$SUTURE_ADMIN_TOKEN]')
    .option('--json', 'JSON output')
    .action(async (o: AdminCliOptions) => {
      const entries = await new AdminClient(adminTarget(o)).listAudit();
      if (o.json) {
        process.stdout.write(`${JSON.stringify(entries, null, 2)}\n`);
        return;
      }
      process.stdout.write(
        `${renderTable(
          ['at', 'actor', 'action', 'target', 'detail'],
          entries.map((e) => [
            e.at,
            e.actor,
            e.action,
            e.target,
            Object.entries(e.detail)
              .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
              .join(' '),
          ]),
        )}\n`,
      );
    });
}
