/*
 * `suture machines [ID] [--limit N] [--json]`: enrolled machines with kernel, tier, patch state and
 * last check-in; with an ID, that machine's patches, their state, failure reasons and CVEs.
 */
import type { Command } from 'commander';
import { AdminClient, type AdminCliOptions, adminTarget, renderTable } from '../../server/admin-client.js';

export function register(program: Command): void {
  program
    .command('machines [id]')
    .description('list enrolled machines, or show one machine and its patches')
    .option('--limit <n>', 'at most this many machines', (v: string) => Number(v), 1000)
    .option('--server <url>', 'server URL [$SUTURE_SERVER]')
    .option('--admin-token <token>', 'admin token [$SUTURE_ADMIN_TOKEN]')
    .option('--json', 'JSON output')
    .action(async (id: string | undefined, o: AdminCliOptions & { limit: number }) => {
      const client = new AdminClient(adminTarget(o));
      if (id) {
        const m = await client.getMachine(id);
        if (o.json) {
          process.stdout.write(`${JSON.stringify(m, null, 2)}\n`);
          return;
        }
        process.stdout.write(
          `${m.hostname} (${m.id}) tier ${m.tier}, ${m.kernelRelease} build ${m.buildId}, agent ${m.agentVersion}\n` +
            `  state ${m.state}, last check-in ${m.lastCheckinAt ?? 'never'} (${m.checkins} check-ins)\n`,
        );
        if (m.patches.length) {
          process.stdout.write(
            `${renderTable(
              ['patch', 'name', 'state', 'CVEs', 'reason'],
              m.patches.map((p) => [
                p.patchId,
                `${p.name} v${p.version}${p.revoked ? ' (revoked)' : ''}`,
                p.state,
                p.cves.join(',') || '-',
                p.reason ?? '',
              ]),
            )}\n`,
          );
        }
        return;
      }
      const ms = await client.listMachines(o.limit);
      if (o.json) {
        process.stdout.write(`${JSON.stringify(ms, null, 2)}\n`);
        return;
      }
      process.stdout.write(
        `${renderTable(
          ['id', 'host', 'tier', 'kernel', 'build id', 'state', 'last check-in'],
          ms.map((m) => [
            m.id,
            m.hostname,
            m.tier,
            m.kernelRelease,
            m.buildId.slice(0, 12),
            m.state,
            m.lastCheckinAt ?? 'never',
          ]),
        )}\n`,
      );
    });
}
