/*
 * `suture token create --tier T [--note …] [--max-uses N] [--expires-in-hours H]`, `suture token list`
 * and `suture token revoke ID`. The token is printed once (stdout, alone on its line); the server keeps
 * only its hash. Without --max-uses / --expires-in-hours a token enrolls any number of machines and
 * never expires: `create` says so, since that is what an incident then has to revoke.
 */
import type { Command } from 'commander';
import { SutureError } from '../../diagnostic.js';
import { AdminClient, type AdminCliOptions, adminTarget, renderTable } from '../../server/admin-client.js';

const positive = (name: string) => (v: string) => {
  const n = Number(v);
  if (!(n > 0))
    throw new SutureError({ code: 'CLI-ARGUMENT', message: `${name} must be a positive number, got ${v}` });
  return n;
};

export function register(program: Command): void {
  const token = program
    .command('token')
    .description('enrollment tokens (each fixes the tier of the machines it enrolls)');
  const common = (c: Command) =>
    c
      .option('--server <url>', 'server URL [$SUTURE_SERVER]')
      .option('--admin-token <token>', 'admin token [$SUTURE_ADMIN_TOKEN]')
      .option('--json', 'JSON output');

  common(
    token
      .command('create')
      .description('create an enrollment token for a tier; printed once')
      .requiredOption('--tier <tier>', 'tier of the machines enrolled with it (e.g. canary, stable)')
      .option('--note <text>', 'what it is for', '')
      .option('--max-uses <n>', 'how many machines may enroll with it', positive('--max-uses'))
      .option('--expires-in-hours <h>', 'lifetime', positive('--expires-in-hours')),
  ).action(
    async (
      o: AdminCliOptions & { tier: string; note: string; maxUses?: number; expiresInHours?: number },
    ) => {
      const client = new AdminClient(adminTarget(o));
      const t = await client.createToken({
        tier: o.tier,
        note: o.note,
        ...(o.maxUses !== undefined ? { maxUses: Math.floor(o.maxUses) } : {}),
        ...(o.expiresInHours !== undefined ? { expiresInHours: o.expiresInHours } : {}),
      });
      if (o.json) {
        process.stdout.write(`${JSON.stringify(t, null, 2)}\n`);
        return;
      }
      const uses = t.maxUses ? `${t.maxUses} uses` : 'unlimited uses (default; --max-uses N)';
      const expiry = t.expiresAt ? `expires ${t.expiresAt}` : 'never expires (default; --expires-in-hours H)';
      process.stderr.write(
        `token ${t.id} for tier ${t.tier}: ${uses}, ${expiry}; revoke with \`suture token revoke ${t.id}\` (shown once):\n`,
      );
      process.stdout.write(`${t.token}\n`);
    },
  );

  common(
    token
      .command('revoke <id>')
      .description('revoke an enrollment token: it enrolls nobody from now on (audited)'),
  ).action(async (id: string, o: AdminCliOptions) => {
    const t = await new AdminClient(adminTarget(o)).revokeToken(id);
    if (o.json) {
      process.stdout.write(`${JSON.stringify(t, null, 2)}\n`);
      return;
    }
    process.stdout.write(
      `token ${t.id} (tier ${t.tier}) revoked at ${t.revokedAt ?? '?'}; ${t.uses} machines enrolled with it keep their credentials (suture machines ID --disable)\n`,
    );
  });

  common(token.command('list').description('list enrollment tokens (never the secrets)')).action(
    async (o: AdminCliOptions) => {
      const tokens = await new AdminClient(adminTarget(o)).listTokens();
      if (o.json) {
        process.stdout.write(`${JSON.stringify(tokens, null, 2)}\n`);
        return;
      }
      process.stdout.write(
        `${renderTable(
          ['id', 'tier', 'uses', 'expires', 'revoked', 'note'],
          tokens.map((t) => [
            t.id,
            t.tier,
            `${t.uses}${t.maxUses ? `/${t.maxUses}` : ''}`,
            t.expiresAt ?? 'never',
            t.revokedAt ?? '-',
            t.note,
          ]),
        )}\n`,
      );
    },
  );
}
