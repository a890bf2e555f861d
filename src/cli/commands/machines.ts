/*
 * `suture machines [ID] [--limit N] [--json]`: enrolled machines with kernel, tier, patch state and
 * last check-in; with an ID, that machine's patches, their state, failure reasons and CVEs.
 * `suture machines ID --set-tier T` moves the machine to tier T (audited): from its next check-in it
 * is offered T's patches. What it already applied stays until a newer cumulative patch replaces it
 * or the patch is revoked (moving a machine never reverts a patch behind the operator's back).
 * `suture machines ID --disable [--reason R]` refuses the machine's credential (its check-ins, reports
 * and downloads get 403 MACHINE-DISABLED) until `--enable`; both are audited.
 */
import type { Command } from 'commander';
import { SutureError } from '../../diagnostic.js';
import { AdminClient, type AdminCliOptions, adminTarget, renderTable } from '../../server/admin-client.js';

type MachinesOptions = AdminCliOptions & {
  limit: number;
  setTier?: string;
  disable?: boolean;
  enable?: boolean;
  reason: string;
};

export function register(program: Command): void {
  program
    .command('machines [id]')
    .description('list enrolled machines, or show one machine and its patches')
    .option('--limit <n>', 'at most this many machines', (v: string) => Number(v), 1000)
    .option('--set-tier <tier>', 'move the machine ID to this tier')
    .option('--disable', "refuse the machine ID's credential (check-in, report, download) until --enable")
    .option('--enable', "accept the machine ID's credential again")
    .option('--reason <text>', 'why (with --disable/--enable; kept in the audit log)', '')
    .option('--server <url>', 'server URL [$SUTURE_SERVER]')
    .option('--admin-token <token>', 'admin token [$SUTURE_ADMIN_TOKEN]')
    .option('--json', 'JSON output')
    .action(async (id: string | undefined, o: MachinesOptions) => {
      const client = new AdminClient(adminTarget(o));
      const change = [
        o.setTier !== undefined && '--set-tier',
        o.disable && '--disable',
        o.enable && '--enable',
      ].filter((x): x is string => typeof x === 'string');
      if ((change.length && !id) || change.length > 1) {
        throw new SutureError({
          code: 'CLI-USAGE',
          message: `${change.join(' and ')} ${change.length > 1 ? 'do not go together' : `needs the machine: suture machines <id> ${change[0]}`}`,
          hint: 'list the machines with `suture machines` to find its id; change one thing per call',
        });
      }
      if (id) {
        const m =
          o.setTier !== undefined
            ? await client.setMachineTier(id, o.setTier)
            : o.disable || o.enable
              ? await client.setMachineDisabled(id, Boolean(o.disable), o.reason)
              : await client.getMachine(id);
        if (o.json) {
          process.stdout.write(`${JSON.stringify(m, null, 2)}\n`);
          return;
        }
        process.stdout.write(
          `${m.hostname} (${m.id}) tier ${m.tier}, ${m.kernelRelease} build ${m.buildId}, agent ${m.agentVersion}\n` +
            `  state ${m.state}, last check-in ${m.lastCheckinAt ?? 'never'} (${m.checkins} check-ins)\n` +
            (m.disabledAt
              ? `  credential DISABLED since ${m.disabledAt} (suture machines ${m.id} --enable)\n`
              : ''),
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
