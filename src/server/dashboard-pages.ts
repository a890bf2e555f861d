/*
 * The dashboard's pages as HTML: the fleet overview (machines by kernel, with what the server knows of
 * each kernel: kernel-support.ts), one machine, one patch (with its promote and revoke forms), the
 * login form. Every value is escaped with `h`; every form carries the session's
 * CSRF token (session.ts).
 */
import {
  badge,
  csrfField,
  cves,
  h,
  page,
  patchStatus,
  rolloutBar,
  STATES,
  shortId,
  when,
} from './dashboard-html.js';
import { type HaltRow, haltSection, wavesSection } from './dashboard-rollout.js';
import { type KernelSupportAnswer, kernelSupportOf, patchedKernelsOf } from './kernel-support.js';
import type {
  AuditEntry,
  FailureRow,
  FleetRow,
  MachineDetail,
  MachineRecord,
  MachineState,
  PatchMachineRow,
  PatchRecord,
  RolloutRow,
  TierRollout,
} from './store.js';

export interface FleetData {
  fleet: FleetRow[];
  rollout: RolloutRow[];
  failures: FailureRow[];
  patches: PatchRecord[];
  machines: MachineRecord[];
  audit: AuditEntry[];
  halts: HaltRow[];
}

export function loginPage(failed: boolean): string {
  return page(
    'Log in',
    `<form class="login" method="post" action="/login"><h2>Admin token</h2>
${failed ? '<p class="reason">That token is not the admin token of this server.</p>' : ''}
<p class="muted">Printed at the server's first start and stored in <code>&lt;data&gt;/admin-token</code>.</p>
<input type="password" name="token" autocomplete="current-password" autofocus required><button type="submit">Log in</button></form>`,
  );
}

export function notFoundPage(what: string, csrf: string): string {
  return page('Not found', `<div class="empty">No ${h(what)}.</div>`, csrf);
}

type KernelRows = Map<
  string,
  Record<MachineState, number> & { release: string; buildId: string; tier: string }
>;

/** The kernel's support as a badge (existing badge colours: no new style, the CSP hash stays). */
function supportCell(s: KernelSupportAnswer): string {
  const cell = (inner: string) => `<td data-support="${h(s.kernelSupport)}">${inner}</td>`;
  if (s.kernelSupport === 'patched') return cell(badge('applied', 'patched'));
  if (s.kernelSupport === 'unsupported') return cell(badge('failed', 'unsupported'));
  const to = (s.patchedKernels ?? []).map((k) => k.release).join(', ');
  return cell(`${badge('transition', 'upgrade required')} <span class="muted mono">${h(to)}</span>`);
}

function kernelSection(kernels: KernelRows, patches: PatchRecord[]): string {
  const patched = patchedKernelsOf(patches);
  return `<h2>Machines by kernel and state</h2>
${
  kernels.size
    ? `<table id="fleet"><tr><th>kernel</th><th>build id</th><th>server</th><th>tier</th>${STATES.map((s) => `<th class="num">${s === 'none' ? 'no patch' : s}</th>`).join('')}</tr>
${[...kernels.values()]
  .map(
    (k) =>
      `<tr><td class="mono">${h(k.release)}</td><td>${shortId(k.buildId)}</td>${supportCell(kernelSupportOf(k, patched))}<td>${badge('tier', k.tier)}</td>${STATES.map((s) => `<td class="num" data-state="${s}">${k[s] ? badge(s, String(k[s])) : '<span class="muted">0</span>'}</td>`).join('')}</tr>`,
  )
  .join('\n')}</table>`
    : '<div class="empty">No machine has enrolled yet. Create a token with <code>suture token create --tier canary</code>.</div>'
}`;
}

function patchSection(patches: PatchRecord[], rollout: RolloutRow[]): string {
  return `<h2>Patches <small>newest first · rollout per tier</small></h2>
${
  patches.length
    ? `<table id="patches"><tr><th>patch</th><th>kernel</th><th>CVEs</th><th>status</th><th>rollout</th></tr>
${patches
  .map(
    (
      p,
    ) => `<tr data-patch="${h(p.id)}"><td><a href="/patches/${h(p.id)}"><b>${h(p.name)}</b></a> v${h(p.version)}<br><span class="mono muted">${h(p.id)}</span>${p.description ? `<br><span class="muted">${h(p.description)}</span>` : ''}</td>
<td class="mono">${h(p.kernelRelease)}<br>${shortId(p.buildId)}</td><td>${cves(p.cves)}</td><td>${patchStatus(p)}</td>
<td>${rollout
      .filter((r) => r.patchId === p.id)
      .map(rolloutBar)
      .join('')}</td></tr>`,
  )
  .join('\n')}</table>`
    : '<div class="empty">No patch published yet: <code>suture publish livepatch-NAME.ko --manifest manifest.json --tier canary</code></div>'
}`;
}

function failureSection(failures: FailureRow[]): string {
  return `<h2>Failures <small>as reported by the agents</small></h2>
${
  failures.length
    ? `<table id="failures"><tr><th>machine</th><th>patch</th><th>reason</th><th>when</th></tr>
${failures
  .map(
    (
      f,
    ) => `<tr><td><a href="/machines/${h(f.machineId)}">${h(f.hostname)}</a> ${badge('tier', f.tier)}</td><td><a href="/patches/${h(f.patchId)}">${h(f.patchName)}</a></td>
<td><div class="reason">${h(f.reason)}</div>${f.transition?.blockingTasks.length ? `<div class="muted">blocking: ${f.transition.blockingTasks.map((t) => `${h(t.comm)} (${t.pid})`).join(', ')}</div>` : ''}</td><td>${when(f.updatedAt)}</td></tr>`,
  )
  .join('\n')}</table>`
    : '<div class="empty" id="failures">No failures reported.</div>'
}`;
}

function machineSection(machines: MachineRecord[], total: number): string {
  return `<h2>Machines <small>${machines.length < total ? `first ${machines.length} of ${total}` : `${total}`}</small></h2>
${
  machines.length
    ? `<table id="machines"><tr><th>host</th><th>tier</th><th>kernel</th><th>state</th><th>last check-in</th><th>agent</th></tr>
${machines
  .map(
    (
      m,
    ) => `<tr data-machine="${h(m.id)}"><td><a href="/machines/${h(m.id)}">${h(m.hostname)}</a></td><td>${badge('tier', m.tier)}</td>
<td class="mono">${h(m.kernelRelease)}</td><td>${badge(m.state, m.state === 'none' ? 'no patch' : m.state)}</td><td>${when(m.lastCheckinAt)}</td><td class="mono">${h(m.agentVersion)}</td></tr>`,
  )
  .join('\n')}</table>`
    : '<div class="empty">No machines.</div>'
}`;
}

function auditSection(audit: AuditEntry[]): string {
  return `<h2>Admin actions <small>the last ${audit.length} · <code>suture audit</code> for more</small></h2>
${
  audit.length
    ? `<table id="audit"><tr><th>when</th><th>action</th><th>target</th><th>detail</th><th>by</th></tr>
${audit
  .map(
    (a) =>
      `<tr><td class="nowrap">${when(a.at)}</td><td>${h(a.action)}</td><td class="mono">${h(a.target)}</td><td>${Object.entries(
        a.detail,
      )
        .filter(([, v]) => v !== null && v !== '')
        .map(([k, v]) => `${h(k)}: ${h(typeof v === 'string' ? v : JSON.stringify(v))}`)
        .join(', ')}</td><td class="mono muted">${h(a.actor)}</td></tr>`,
  )
  .join('\n')}</table>`
    : '<div class="empty" id="audit">No admin action yet.</div>'
}`;
}

export function fleetPage(d: FleetData, csrf: string): string {
  const { fleet, rollout, failures, patches, machines, audit, halts } = d;
  const total = fleet.reduce((a, f) => a + f.machines, 0);
  const count = (s: MachineState) => fleet.filter((f) => f.state === s).reduce((a, f) => a + f.machines, 0);
  const kernels: KernelRows = new Map();
  for (const f of fleet) {
    const k = `${f.release}\0${f.buildId}\0${f.tier}`;
    const row = kernels.get(k) ?? {
      release: f.release,
      buildId: f.buildId,
      tier: f.tier,
      applied: 0,
      transition: 0,
      failed: 0,
      none: 0,
    };
    row[f.state] += f.machines;
    kernels.set(k, row);
  }
  const active = patches.filter((p) => !p.revokedAt).length;
  const body = `
<div class="cards">
 <div class="card" id="card-machines"><b>${total}</b><span>machines</span></div>
 <div class="card" id="card-applied"><b>${count('applied')}</b><span>patched</span></div>
 <div class="card" id="card-failed"><b${count('failed') ? ' class="bad"' : ''}>${count('failed')}</b><span>with a failed patch</span></div>
 <div class="card" id="card-kernels"><b>${new Set(fleet.map((f) => `${f.release} ${f.buildId}`)).size}</b><span>kernels</span></div>
 <div class="card" id="card-patches"><b>${active}</b><span>active patches</span></div>
</div>
${kernelSection(kernels, patches)}
${haltSection(halts)}
${patchSection(patches, rollout)}
${failureSection(failures)}
${machineSection(machines, total)}
${auditSection(audit)}`;
  return page('Fleet', body, csrf);
}

export function machinePage(m: MachineDetail, csrf: string): string {
  const fixed = [...new Set(m.patches.filter((p) => p.state === 'applied').flatMap((p) => p.cves))].sort();
  const body = `<h2>${h(m.hostname)} <small class="mono">${h(m.id)}</small></h2>
<dl><dt>state</dt><dd>${badge(m.state, m.state === 'none' ? 'no patch' : m.state)}${m.disabledAt ? ` ${badge('revoked', 'credential disabled')}` : ''}</dd><dt>tier</dt><dd>${badge('tier', m.tier)}</dd>
<dt>kernel</dt><dd class="mono">${h(m.kernelRelease)}</dd><dt>build id</dt><dd class="mono">${h(m.buildId)}</dd>
<dt>agent</dt><dd class="mono">${h(m.agentVersion)}</dd><dt>enrolled</dt><dd>${when(m.enrolledAt)}</dd>
<dt>last check-in</dt><dd>${when(m.lastCheckinAt)} <span class="muted">(${m.checkins} check-in${m.checkins === 1 ? '' : 's'})</span></dd>
<dt>CVEs fixed live</dt><dd id="cves-fixed">${cves(fixed)}</dd></dl>
<h2>Patches</h2>
${
  m.patches.length
    ? `<table id="machine-patches"><tr><th>patch</th><th>state</th><th>CVEs</th><th>detail</th><th>updated</th></tr>
${m.patches
  .map(
    (
      p,
    ) => `<tr><td><a href="/patches/${h(p.patchId)}">${h(p.name)}</a> v${h(p.version)}${p.revoked ? ` ${badge('revoked')}` : ''}</td><td>${badge(p.state)}</td><td>${cves(p.cves)}</td>
<td>${p.reason ? `<div class="reason">${h(p.reason)}</div>` : ''}${p.transition ? `<div class="muted">transition ${p.transition.stalled ? 'stalled' : 'running'} for ${h(p.transition.seconds)} s${p.transition.blockingTasks.length ? `; blocking: ${p.transition.blockingTasks.map((t) => `${h(t.comm)} (${t.pid})`).join(', ')}` : ''}</div>` : ''}</td><td>${when(p.updatedAt)}</td></tr>`,
  )
  .join('\n')}</table>`
    : '<div class="empty">This machine reports no Suture livepatch.</div>'
}`;
  return page(m.hostname, body, csrf);
}

export function patchPage(
  p: PatchRecord,
  rollout: RolloutRow[],
  machines: PatchMachineRow[],
  csrf: string,
  waves: TierRollout[] = [],
): string {
  const fns = p.manifest.objects.flatMap((o) =>
    o.functions.map((f) => `${o.name}:${f.name}${f.sympos ? `,${f.sympos}` : ''}`),
  );
  const body = `<h2>${h(p.name)} v${h(p.version)} <small class="mono">${h(p.id)}</small></h2>
<dl><dt>status</dt><dd>${patchStatus(p)}${p.revokeReason ? ` <span class="muted">${h(p.revokeReason)}</span>` : ''}</dd>
<dt>kernel</dt><dd class="mono">${h(p.kernelRelease)} · ${h(p.buildId)}</dd>
<dt>CVEs</dt><dd>${cves(p.cves)}</dd><dt>description</dt><dd>${h(p.description) || '<span class="muted">—</span>'}</dd>
<dt>functions</dt><dd class="mono">${fns.map(h).join('<br>')}</dd><dt>module</dt><dd class="mono">${h(p.manifest.module.file)} · ${h(p.size)} bytes · sha256 ${h(p.sha256)}</dd>
<dt>cumulative</dt><dd>${p.manifest.replace ? 'yes (replaces earlier livepatches)' : 'no'}</dd><dt>published</dt><dd>${when(p.publishedAt)}</dd></dl>
${
  p.revokedAt
    ? ''
    : `<h2>Actions</h2><form class="action" id="promote" method="post" action="/patches/${h(p.id)}/promote">${csrfField(csrf)}<input name="tier" placeholder="tier, e.g. stable" required pattern="[a-z][a-z0-9_-]{0,31}"><button type="submit">Promote</button></form>
<form class="action" id="revoke" method="post" action="/patches/${h(p.id)}/revoke">${csrfField(csrf)}<input name="reason" placeholder="reason"><button type="submit">Revoke</button></form>`
}
<h2>Rollout by tier</h2>
${rollout.length ? `<div class="card" id="rollout">${rollout.map(rolloutBar).join('')}</div>` : '<div class="empty">Not in any tier.</div>'}
${wavesSection(waves)}
<h2>Machines <small>as they reported this patch</small></h2>
${
  machines.length
    ? `<table id="patch-machines"><tr><th>host</th><th>tier</th><th>state</th><th>reason</th><th>updated</th></tr>
${machines
  .map(
    (
      m,
    ) => `<tr><td><a href="/machines/${h(m.machineId)}">${h(m.hostname)}</a></td><td>${badge('tier', m.tier)}</td><td>${badge(m.state)}</td>
<td>${m.reason ? `<div class="reason">${h(m.reason)}</div>` : ''}</td><td>${when(m.updatedAt)}</td></tr>`,
  )
  .join('\n')}</table>`
    : '<div class="empty">No machine has reported this patch yet.</div>'
}`;
  return page(p.name, body, csrf);
}
