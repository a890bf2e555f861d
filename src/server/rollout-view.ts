/*
 * A patch's rollout as the CLI prints it (`suture rollout status`, `suture resume`): one table row per
 * wave of each tier, and a line for a halt.
 */
import { renderTable } from './admin-client.js';
import type { TierRollout } from './store.js';

export function renderRollout(tiers: TierRollout[]): string {
  const rows = tiers.flatMap((t) =>
    t.waves.map((w) => [
      t.tier,
      `${w.wave}/${t.waves.length}`,
      `${w.percent}%`,
      w.wave <= t.wavesOpen ? 'open' : 'waiting',
      String(w.size),
      String(w.applied),
      String(w.healthy),
      String(w.failed),
      w.openedAt ?? '-',
    ]),
  );
  const table = renderTable(
    ['tier', 'wave', 'up to', 'state', 'size', 'applied', 'healthy', 'failed', 'opened at'],
    rows,
  );
  const halts = tiers
    .filter((t) => t.haltedAt)
    .map((t) => `HALTED in ${t.tier} at ${t.haltedAt}: ${t.haltReason ?? ''}\n`)
    .join('');
  const gates = tiers
    .filter((t) => t.plan)
    .map(
      (t) =>
        `${t.tier}: next wave after ${t.plan?.gateCheckins} healthy check-ins and ${t.plan?.soakSeconds}s\n`,
    )
    .join('');
  return `${table}\n${gates}${halts}`;
}
