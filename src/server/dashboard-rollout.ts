/*
 * The dashboard's rollout parts: a patch's waves per tier (size, applied, healthy, failed, opened at)
 * with its halt, and the fleet page's list of halted patches. Escaped with `h` like every page.
 */
import { badge, h, when } from './dashboard-html.js';
import type { TierRollout } from './store.js';

export interface HaltRow {
  patchId: string;
  tier: string;
  haltedAt: string;
  reason: string;
}

function tierWaves(t: TierRollout): string {
  const halt = t.haltedAt
    ? `<div class="reason" data-halted="${h(t.tier)}">${badge('failed', 'halted')} ${when(t.haltedAt)} ${h(t.haltReason ?? '')}${t.haltExcerpt ? `<br><span class="mono">${h(t.haltExcerpt)}</span>` : ''}</div>`
    : '';
  const gate = t.plan
    ? `<div class="muted">next wave after ${h(t.plan.gateCheckins)} healthy check-ins and ${h(t.plan.soakSeconds)} s</div>`
    : '';
  const rows = t.waves
    .map(
      (w) =>
        `<tr data-wave="${w.wave}"><td>${badge('tier', t.tier)}</td><td class="num">${w.wave}</td><td class="num">${w.percent} %</td><td>${badge(w.wave <= t.wavesOpen ? 'applied' : 'none', w.wave <= t.wavesOpen ? 'open' : 'waiting')}</td><td class="num">${w.size}</td><td class="num">${w.applied}</td><td class="num">${w.healthy}</td><td class="num">${w.failed}</td><td>${when(w.openedAt)}</td></tr>`,
    )
    .join('\n');
  return `${halt}${gate}${rows ? `<table class="waves" data-tier="${h(t.tier)}"><tr><th>tier</th><th>wave</th><th>up to</th><th>state</th><th>size</th><th>applied</th><th>healthy</th><th>failed</th><th>opened</th></tr>\n${rows}</table>` : ''}`;
}

export function wavesSection(tiers: TierRollout[]): string {
  return `<h2>Waves <small>per tier · <code>suture rollout status</code></small></h2>
${tiers.length ? `<div id="waves">${tiers.map(tierWaves).join('\n')}</div>` : '<div class="empty">Not in any tier.</div>'}`;
}

export function haltSection(halts: HaltRow[]): string {
  if (!halts.length) return '';
  return `<h2>Halted <small>no further machine of the tier is offered these · <code>suture resume PATCH --tier T</code> or <code>suture revoke</code></small></h2>
<table id="halts"><tr><th>patch</th><th>tier</th><th>why</th><th>when</th></tr>
${halts.map((x) => `<tr><td><a href="/patches/${h(x.patchId)}" class="mono">${h(x.patchId)}</a></td><td>${badge('tier', x.tier)}</td><td><div class="reason">${h(x.reason)}</div></td><td>${when(x.haltedAt)}</td></tr>`).join('\n')}</table>`;
}
