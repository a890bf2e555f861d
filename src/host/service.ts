/*
 * The systemd unit that re-applies stored livepatches at boot.
 *
 * A oneshot service ordered after local file systems and module loading, before the network is
 * configured (network-pre.target), the agent and the multi-user target: it runs `suture host boot-apply`, which applies the stored patches whose build id matches
 * the running kernel (boot.ts). It does nothing when the store is empty (ConditionDirectoryNotEmpty).
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const UNIT_NAME = 'suture-livepatch.service';

export interface UnitOptions {
  /** absolute path to the node binary */
  node: string;
  /** absolute path to bin/suture.js */
  suture: string;
  /** Suture's host state directory (holds patches/) */
  state: string;
  /** per-patch transition timeout, seconds */
  timeoutSeconds?: number;
}

const quote = (s: string) => (/^[A-Za-z0-9_./:@+-]+$/.test(s) ? s : `"${s.replace(/(["\\])/g, '\\$1')}"`);

export function renderUnit(o: UnitOptions): string {
  const timeout = o.timeoutSeconds ?? 60;
  return `# Written by \`suture host install-service\`: re-applies, at boot, the stored livepatches
# whose vmlinux build id matches the running kernel, and nothing else.
[Unit]
Description=Suture: re-apply stored livepatches for the running kernel
After=local-fs.target systemd-modules-load.service
Before=multi-user.target network-pre.target suture-agent.service
Wants=network-pre.target
ConditionDirectoryNotEmpty=${join(o.state, 'patches')}

[Service]
Type=oneshot
RemainAfterExit=yes
Environment=SUTURE_HOST_STATE=${quote(o.state)}
ExecStart=${quote(o.node)} ${quote(o.suture)} host boot-apply --timeout ${timeout}s
TimeoutStartSec=15min

[Install]
WantedBy=multi-user.target
`;
}

/** Write the unit into `unitDir` (normally /etc/systemd/system); returns its path. */
export function installUnit(unitDir: string, o: UnitOptions): string {
  if (!existsSync(unitDir)) mkdirSync(unitDir, { recursive: true });
  const path = join(unitDir, UNIT_NAME);
  writeFileSync(path, renderUnit(o));
  return path;
}
