/*
 * `suture admin rotate-token`: replace the admin token. The server returns a new one (printed once, on
 * stdout alone); the old one and every dashboard session stop working at once, audited. Update
 * SUTURE_ADMIN_TOKEN / <data>/admin-token, and do not restart the server with the old --admin-token.
 */
import type { Command } from 'commander';
import { AdminClient, type AdminCliOptions, adminTarget } from '../../server/admin-client.js';

export function register(program: Command): void {
  const admin = program.command('admin').description('the admin token itself');
  admin
    .command('rotate-token')
    .description('replace the admin token: the old one and every dashboard session end (audited)')
    .option('--server <url>', 'server URL [$SUTURE_SERVER]')
    .option('--admin-token <token>', 'the current admin token [$SUTURE_ADMIN_TOKEN]')
    .option('--json', 'JSON output')
    .action(async (o: AdminCliOptions) => {
      const { token } = await new AdminClient(adminTarget(o)).rotateAdminToken();
      if (o.json) {
        process.stdout.write(`${JSON.stringify({ token }, null, 2)}\n`);
        return;
      }
      process.stderr.write(
        'new admin token (shown once; the old one and all dashboard sessions no longer work —\n' +
          'update SUTURE_ADMIN_TOKEN and <data>/admin-token, and drop any old --admin-token from the server unit):\n',
      );
      process.stdout.write(`${token}\n`);
    });
}
