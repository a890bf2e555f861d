/*
 * The systemd unit that keeps the agent running on a machine.
 *
 * `suture agent enable` enrolls the machine; this unit makes the enrolled agent a daemon that starts
 * at boot once the network is up, runs `suture agent run` against the agent's state directory, and is
 * restarted by systemd if it dies (the daemon itself backs off while the server is down, so a restart
 * is only for crashes). Crash safety is the agent's own (intent journal, atomic state): a kill by
 * systemd at any point converges on the next start. The unit refuses to start for a machine that was
 * never enrolled (ConditionPathExists on state.json), so installing it early does no harm.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const AGENT_UNIT_NAME = 'suture-agent.service';

export interface AgentUnitOptions {
  /** absolute path to the node binary */
  node: string;
  /** absolute path to bin/suture.js */
  suture: string;
  /** the agent's state directory (holds state.json after `suture agent enable`) */
  stateDir: string;
  /** PEM file of the CA that signed the server's certificate, when it is not a system CA */
  caFile?: string;
}

const quote = (s: string) => (/^[A-Za-z0-9_./:@+-]+$/.test(s) ? s : `"${s.replace(/(["\\])/g, '\\$1')}"`);

export function renderAgentUnit(o: AgentUnitOptions): string {
  return `# Written by \`suture agent install-service\`: the Suture agent checks in with its server,
# verifies and applies the livepatches offered for this exact kernel, and reports.
[Unit]
Description=Suture livepatch agent
Wants=network-online.target
After=network-online.target suture-livepatch.service
ConditionPathExists=${join(o.stateDir, 'state.json')}

[Service]
Type=simple
Environment=SUTURE_AGENT_STATE=${quote(o.stateDir)}
${o.caFile ? `Environment=NODE_EXTRA_CA_CERTS=${quote(o.caFile)}\n` : ''}ExecStart=${quote(o.node)} ${quote(o.suture)} agent run --state-dir ${quote(o.stateDir)}
Restart=on-failure
RestartSec=10s
KillMode=mixed
TimeoutStopSec=90s

[Install]
WantedBy=multi-user.target
`;
}

/** Write the unit into `unitDir` (normally /etc/systemd/system); returns its path. */
export function installAgentUnit(unitDir: string, o: AgentUnitOptions): string {
  if (!existsSync(unitDir)) mkdirSync(unitDir, { recursive: true });
  const path = join(unitDir, AGENT_UNIT_NAME);
  writeFileSync(path, renderAgentUnit(o));
  return path;
}
