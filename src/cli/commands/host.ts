/*
 * `suture host install-service | boot-apply`: livepatches across reboots.
 *
 *   suture host install-service [--unit-dir /etc/systemd/system] [--no-enable] [--print]
 *   suture host boot-apply [--timeout 60s]      (what the unit runs at boot)
 *   suture host clear-bad <patch>                (let the crash-loop guard load a bad patch again)
 *
 * The store is $SUTURE_HOST_STATE/patches (default /var/lib/suture/patches), filled by
 * `suture apply --persist`; boot-apply re-applies only the stored patches whose build id matches the
 * running kernel.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { SutureError } from '../../diagnostic.js';
// the modules these commands need, not host/index.js: the boot unit runs one of them at every boot
import { bootApply } from '../../host/boot.js';
import { badMarkOf, clearBad } from '../../host/guard.js';
import { liveRoots } from '../../host/roots.js';
import { installUnit, renderUnit, UNIT_NAME } from '../../host/service.js';
import { addCommand, type CommandSpec } from '../command-spec.js';
import { eventPrinter, parseDuration } from './apply.js';

function sutureScript(): string {
  // dist/cli/commands/host.js → bin/suture.js
  return fileURLToPath(new URL('../../../bin/suture.js', import.meta.url));
}

/** what the boot unit runs: on the fast path (no commander), it is every boot's start-up time */
const bootApplyCommand: CommandSpec<{ timeout: string; settle: string }> = {
  path: ['host', 'boot-apply'],
  description: 'apply the stored patches whose build id matches the running kernel (run by the unit)',
  args: [],
  options: [
    { flags: '--timeout <duration>', description: 'transition timeout per patch', default: '60s' },
    {
      flags: '--settle <duration>',
      description: 'per patch, watch the kernel log this long for an oops/WARN',
      default: '200ms',
    },
  ],
  async action(_args, o) {
    const out = await bootApply({
      timeoutMs: parseDuration('--timeout', o.timeout),
      settleMs: parseDuration('--settle', o.settle),
      onEvent: eventPrinter(),
    });
    if (!out.length) console.log('no stored patches');
    for (const b of out) console.log(`${b.patch}: ${b.action}${b.reason ? ` (${b.reason})` : ''}`);
    if (out.some((b) => b.action === 'failed')) process.exitCode = 1;
  },
};

export const fast = [bootApplyCommand];

export function register(program: Command): void {
  const host = program
    .command('host')
    .description('livepatches across reboots: the boot service and its store');

  host
    .command('install-service')
    .description(`write the systemd unit ${UNIT_NAME} that re-applies stored patches at boot`)
    .option('--unit-dir <dir>', 'where to write the unit', '/etc/systemd/system')
    .option('--no-enable', 'only write the unit, do not run systemctl enable')
    .option('--print', 'print the unit instead of installing it')
    .action(async (o: { unitDir: string; enable: boolean; print?: boolean }) => {
      const roots = liveRoots();
      const unit = { node: process.execPath, suture: sutureScript(), state: roots.state };
      if (o.print) {
        process.stdout.write(renderUnit(unit));
        return;
      }
      if (roots.uid !== 0) {
        throw new SutureError({
          code: 'HOST-NOT-ROOT',
          message: `installing a systemd unit needs root (running as uid ${roots.uid})`,
          hint: 'run it again with sudo, or use --print to see the unit',
        });
      }
      const path = installUnit(o.unitDir, unit);
      console.log(`wrote ${path}`);
      if (o.enable) {
        if (!existsSync('/run/systemd/system')) {
          console.log(
            'systemd is not running here: enable it later with `systemctl enable suture-livepatch.service`',
          );
          return;
        }
        // loaded here: child_process is start-up time the boot unit's boot-apply does not need
        const { spawnSync } = await import('node:child_process');
        for (const args of [['daemon-reload'], ['enable', UNIT_NAME]]) {
          const r = spawnSync('systemctl', args, { encoding: 'utf8' });
          if (r.status !== 0) {
            throw new SutureError({
              code: 'HOST-SYSTEMCTL',
              message: `systemctl ${args.join(' ')} failed: ${(r.stderr || r.error?.message || '').trim()}`,
              hint: `the unit is written at ${path}; enable it by hand`,
            });
          }
        }
        console.log(`enabled ${UNIT_NAME}`);
      }
    });

  addCommand(host, bootApplyCommand);

  host
    .command('clear-bad <patch>')
    .description('forget that the crash-loop guard marked a patch bad, so it may be loaded again')
    .action((patch: string) => {
      const roots = liveRoots();
      const mark = badMarkOf(roots, patch);
      if (!clearBad(roots, patch)) {
        throw new SutureError({
          code: 'HOST-NOT-BAD',
          message: `${patch} is not marked bad`,
          hint: 'suture status lists the patches marked bad',
        });
      }
      console.log(`${patch}: bad mark (${mark?.reason ?? 'attempt'}) cleared; it may be loaded again`);
    });
}
