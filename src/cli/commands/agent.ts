/*
 * `suture agent enable|run|status`: the fleet agent on a machine.
 *
 *   suture agent enable <TOKEN> --server URL   enroll this machine, pin the server's key
 *   suture agent run [--interval S] [--once]   check in, verify, apply, report — forever
 *   suture agent status [--format text|json|yaml]
 *
 * All three take --state-dir (default SUTURE_AGENT_STATE or /var/lib/suture/agent). The decisions are
 * made in src/agent/; the kernel is reached only through src/host/ (agent/host-binding.ts).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { runDaemon } from '../../agent/daemon.js';
import { enroll } from '../../agent/enroll.js';
import { hostKernel } from '../../agent/host-binding.js';
import type { LoadedLivepatch, RunningKernel } from '../../agent/kernel-port.js';
import { AGENT_UNIT_NAME, installAgentUnit, renderAgentUnit } from '../../agent/service.js';
import { loadState, resolveStateDir } from '../../agent/state.js';
import { computeStatus, renderStatus } from '../../agent/status.js';
import { SutureError } from '../../diagnostic.js';
import { isCleartextRemote } from '../../manifest/transport.js';

function parseSeconds(flag: string, value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(value.trim());
  if (!m) {
    throw new SutureError({
      code: 'CLI-BAD-DURATION',
      message: `${flag} ${JSON.stringify(value)} is not a duration`,
      hint: 'write seconds (30, 30s), minutes (5m) or milliseconds (500ms)',
    });
  }
  const n = Number(m[1]);
  const seconds = m[2] === 'ms' ? n / 1000 : m[2] === 'm' ? n * 60 : n;
  if (!(seconds > 0)) {
    throw new SutureError({
      code: 'CLI-BAD-DURATION',
      message: `${flag} must be positive`,
      hint: 'e.g. 30s',
    });
  }
  return seconds;
}

export function register(program: Command): void {
  const agent = program
    .command('agent')
    .description('the fleet agent: enroll with a server, check in, verify and apply patches, report');

  agent
    .command('enable')
    .description('enroll this machine with a Suture server using an enrollment token')
    .argument('<token>', 'enrollment token from `suture token create`')
    .requiredOption('--server <url>', 'server URL, e.g. http://livepatch.example:8080')
    .option(
      '--state-dir <dir>',
      'agent state directory (default $SUTURE_AGENT_STATE or /var/lib/suture/agent)',
    )
    .action(async (token: string, o: { server: string; stateDir?: string }) => {
      const stateDir = resolveStateDir(o.stateDir);
      if (isCleartextRemote(o.server)) {
        process.stderr.write(
          `warning: ${o.server} is plain HTTP to another machine: the enrollment token and this machine's ` +
            'credential cross the network in clear; serve it over HTTPS (suture server --tls-cert/--tls-key, or a TLS proxy)\n',
        );
      }
      const e = await enroll({
        stateDir,
        token,
        server: o.server,
        hostname: hostname(),
        kernel: hostKernel(),
      });
      console.log(`enrolled as ${e.machineId} (tier ${e.tier}) with ${e.server}`);
      console.log(`server key pinned; state in ${stateDir}`);
      console.log('start the agent with `suture agent run`');
    });

  agent
    .command('run')
    .description('check in periodically; download, verify, apply and report patches')
    .option(
      '--state-dir <dir>',
      'agent state directory (default $SUTURE_AGENT_STATE or /var/lib/suture/agent)',
    )
    .option('--interval <duration>', "check-in interval, overriding the server's (e.g. 2s, 10m)")
    .option('--max-backoff <duration>', 'longest wait between attempts while the server is down')
    .option('--apply-timeout <duration>', 'how long to wait for a livepatch transition', '60s')
    .option('--once', 'check in once, converge, and exit')
    .action(
      async (o: {
        stateDir?: string;
        interval?: string;
        maxBackoff?: string;
        applyTimeout: string;
        once?: boolean;
      }) => {
        const stateDir = resolveStateDir(o.stateDir);
        const ac = new AbortController();
        const stop = () => ac.abort();
        process.on('SIGTERM', stop);
        process.on('SIGINT', stop);
        try {
          await runDaemon({
            stateDir,
            kernel: hostKernel(),
            hostname: hostname(),
            applyTimeoutMs: parseSeconds('--apply-timeout', o.applyTimeout) * 1000,
            log: (line) => console.log(`${new Date().toISOString()} ${line}`),
            ...(o.interval ? { intervalSeconds: parseSeconds('--interval', o.interval) } : {}),
            ...(o.maxBackoff ? { backoffCapSeconds: parseSeconds('--max-backoff', o.maxBackoff) } : {}),
            ...(o.once ? { maxCheckins: 1 } : {}),
            signal: ac.signal,
          });
        } finally {
          process.off('SIGTERM', stop);
          process.off('SIGINT', stop);
        }
      },
    );

  agent
    .command('status')
    .description('last check-in, kernel, patch state and version (like canonical-livepatch status)')
    .option(
      '--state-dir <dir>',
      'agent state directory (default $SUTURE_AGENT_STATE or /var/lib/suture/agent)',
    )
    .option('--format <format>', 'text, json or yaml', 'text')
    .action(async (o: { stateDir?: string; format: string }) => {
      if (!['text', 'json', 'yaml'].includes(o.format)) {
        throw new SutureError({
          code: 'CLI-BAD-FORMAT',
          message: `--format ${o.format} is not one of text, json, yaml`,
          hint: 'use --format json for scripts',
        });
      }
      const state = loadState(resolveStateDir(o.stateDir));
      const kernel = hostKernel();
      let running: RunningKernel | null = null;
      let loaded: LoadedLivepatch[] | null = null;
      try {
        const r = await kernel.runningKernel();
        running = r;
        loaded = r.livepatchSupported ? await kernel.listLivepatches() : [];
      } catch {
        // not readable here (not Linux, no /sys): report from the persisted state alone
      }
      const s = computeStatus(state, running, loaded);
      if (o.format === 'json') console.log(JSON.stringify(s, null, 2));
      else if (o.format === 'yaml') process.stdout.write(stringify(s));
      else console.log(renderStatus(s));
    });

  agent
    .command('install-service')
    .description(`write the systemd unit ${AGENT_UNIT_NAME} that runs the agent at boot`)
    .option(
      '--state-dir <dir>',
      'agent state directory (default $SUTURE_AGENT_STATE or /var/lib/suture/agent)',
    )
    .option('--unit-dir <dir>', 'where to write the unit', '/etc/systemd/system')
    .option('--no-enable', 'only write the unit, do not run systemctl enable --now')
    .option('--print', 'print the unit instead of installing it')
    .option('--ca <file>', "PEM file of the CA that signed the server's certificate (a private CA)")
    .action((o: { stateDir?: string; unitDir: string; enable: boolean; print?: boolean; ca?: string }) => {
      const unit = {
        node: process.execPath,
        // dist/cli/commands/agent.js → bin/suture.js
        suture: fileURLToPath(new URL('../../../bin/suture.js', import.meta.url)),
        stateDir: resolveStateDir(o.stateDir),
        ...(o.ca ? { caFile: resolve(o.ca) } : {}),
      };
      if (o.ca && !existsSync(o.ca)) {
        throw new SutureError({
          code: 'AGENT-CA-MISSING',
          message: `no CA file ${o.ca}`,
          hint: "give the PEM file of the CA that signed the server's certificate",
        });
      }
      if (o.print) {
        process.stdout.write(renderAgentUnit(unit));
        return;
      }
      if (process.getuid?.() !== 0) {
        throw new SutureError({
          code: 'AGENT-NOT-ROOT',
          message: 'installing a systemd unit needs root',
          hint: 'run it again with sudo, or use --print to see the unit',
        });
      }
      const path = installAgentUnit(o.unitDir, unit);
      console.log(`wrote ${path}`);
      if (!o.enable) return;
      const r = spawnSync('systemctl', ['enable', '--now', AGENT_UNIT_NAME], { stdio: 'inherit' });
      if (r.error || r.status !== 0) {
        throw new SutureError({
          code: 'AGENT-SYSTEMCTL-FAILED',
          message: `systemctl enable --now ${AGENT_UNIT_NAME} failed`,
          why: r.error ? r.error.message : `systemctl exited with status ${r.status}`,
          hint: `the unit is written at ${path}; enable it by hand once systemd runs`,
        });
      }
    });
}
