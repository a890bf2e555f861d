/*
 * The fleet dashboard: server-rendered HTML pages, no build step and no script.
 *
 *   /            fleet overview: machines by kernel and state, patches with rollout per tier,
 *                failures with the agent's reason, machines, the last admin actions (audit log)
 *   /machines/ID one machine: its kernel, its patches, their state and the CVEs they fix
 *   /patches/ID  one patch: manifest, functions, CVEs, rollout per tier, machines that have it
 *   /login       the admin token, kept in an HttpOnly, SameSite=Strict cookie
 *
 * Every value is HTML-escaped; every page needs the admin token (cookie or Bearer).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { adminCookie, type ServerContext } from './context.js';
import { hashSecret } from './credentials.js';
import type { MachineState, PatchRecord, RolloutRow } from './store.js';

function h(v: unknown): string {
  return String(v ?? '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

const CSS = `
:root{--fg:#1d2330;--muted:#5d6677;--line:#e3e7ee;--bg:#f6f8fb;--card:#fff;--ok:#1f8a4c;--warn:#b7791f;--bad:#c53030;--info:#2b6cb0}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg)}
header{background:#141a26;color:#fff;padding:12px 28px;display:flex;align-items:center;gap:24px}
header h1{font-size:18px;margin:0;letter-spacing:.3px}header a{color:#cfd8e8;text-decoration:none}header nav{display:flex;gap:18px;flex:1}
main{max-width:1200px;margin:0 auto;padding:20px 28px 48px}
h2{font-size:16px;margin:28px 0 10px}h2 small{color:var(--muted);font-weight:normal}
.cards{display:grid;grid-template-columns:repeat(5,1fr);gap:12px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 16px}
.card b{display:block;font-size:26px}.card span{color:var(--muted)}
table{width:100%;border-collapse:collapse;background:var(--card);border:1px solid var(--line);border-radius:8px;overflow:hidden}
th,td{text-align:left;padding:8px 12px;border-bottom:1px solid var(--line);vertical-align:top}
th{background:#eef2f7;font-weight:600;font-size:12px;text-transform:uppercase;letter-spacing:.4px;color:var(--muted)}
tr:last-child td{border-bottom:0}td.num{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12.5px}
a{color:var(--info)}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;border:1px solid transparent}
.s-applied{background:#e6f4ea;color:var(--ok)}.s-failed{background:#fdecec;color:var(--bad)}
.s-transition{background:#fff4e0;color:var(--warn)}.s-none,.s-reverted{background:#eef1f5;color:var(--muted)}
.s-revoked{background:#fdecec;color:var(--bad)}.s-tier{background:#e8f0fb;color:var(--info)}
.bar{height:8px;background:#e9edf3;border-radius:4px;overflow:hidden;display:flex;min-width:140px}
.bar i{display:block;height:100%}.bar .a{background:var(--ok)}.bar .t{background:var(--warn)}.bar .f{background:var(--bad)}
.roll{display:grid;grid-template-columns:70px 1fr 170px;gap:8px;align-items:center;margin:2px 0;white-space:nowrap}
.failed-count{color:var(--bad);font-weight:600}
.muted{color:var(--muted)}.reason{color:var(--bad);font-family:ui-monospace,monospace;font-size:12.5px;white-space:pre-wrap}
.empty{padding:14px;color:var(--muted);background:var(--card);border:1px dashed var(--line);border-radius:8px}
dl{display:grid;grid-template-columns:160px 1fr;gap:4px 12px;background:var(--card);border:1px solid var(--line);border-radius:8px;padding:14px}
dt{color:var(--muted)}dd{margin:0}
form.login{max-width:420px;margin:80px auto;background:var(--card);border:1px solid var(--line);border-radius:8px;padding:24px}
form.login input{width:100%;padding:8px;margin:8px 0 14px;font:inherit}form.login button{padding:8px 16px;font:inherit}
`;

function page(title: string, body: string, nav = true): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${h(title)} · Suture</title><style>${CSS}</style></head><body>
<header><h1>Suture</h1>${nav ? '<nav><a href="/">Fleet</a><a href="/metrics">Metrics</a></nav><a href="/logout">Log out</a>' : ''}</header>
<main>${body}</main></body></html>`;
}

const badge = (state: string, text = state) => `<span class="badge s-${h(state)}">${h(text)}</span>`;
const shortId = (buildId: string) =>
  `<span class="mono" title="${h(buildId)}">${h(buildId.slice(0, 12))}…</span>`;
const when = (iso?: string) =>
  iso
    ? `<span title="${h(iso)}">${h(iso.replace('T', ' ').slice(0, 19))}</span>`
    : '<span class="muted">never</span>';

function rolloutBar(r: RolloutRow): string {
  const pct = (n: number) => (r.eligible ? (100 * n) / r.eligible : 0);
  return `<div class="roll" data-tier="${h(r.tier)}">${badge('tier', r.tier)}<div class="bar" title="${r.applied} applied, ${r.transition} in transition, ${r.failed} failed of ${r.eligible}">
<i class="a" style="width:${pct(r.applied)}%"></i><i class="t" style="width:${pct(r.transition)}%"></i><i class="f" style="width:${pct(r.failed)}%"></i></div>
<span class="rollout-count">${r.applied}/${r.eligible} applied${r.failed ? `, <span class="failed-count">${r.failed} failed</span>` : ''}</span></div>`;
}

function cves(list: string[]): string {
  return list.length
    ? list.map((c) => `<span class="mono">${h(c)}</span>`).join(', ')
    : '<span class="muted">—</span>';
}

function patchStatus(p: PatchRecord): string {
  return p.revokedAt ? badge('revoked', 'revoked') : p.tiers.map((t) => badge('tier', t)).join(' ');
}

const STATES: MachineState[] = ['applied', 'transition', 'failed', 'none'];

export function registerDashboard(app: FastifyInstance, ctx: ServerContext): void {
  const { store } = ctx;
  const html = (reply: FastifyReply, s: string) => reply.type('text/html; charset=utf-8').send(s);
  const gate = async (req: FastifyRequest, reply: FastifyReply): Promise<boolean> => {
    if (await ctx.isAdmin(req)) return true;
    await reply.redirect('/login');
    return false;
  };

  app.get('/login', async (req, reply) => {
    const q = req.query as { failed?: string };
    return html(
      reply,
      page(
        'Log in',
        `<form class="login" method="post" action="/login"><h2>Admin token</h2>
${q.failed ? '<p class="reason">That token is not the admin token of this server.</p>' : ''}
<p class="muted">Printed at the server's first start and stored in <code>&lt;data&gt;/admin-token</code>.</p>
<input type="password" name="token" autocomplete="current-password" autofocus required><button type="submit">Log in</button></form>`,
        false,
      ),
    );
  });

  app.post('/login', { config: { rateLimit: { max: 20, timeWindow: 60_000 } } }, async (req, reply) => {
    const token = (req.body as { token?: unknown } | undefined)?.token;
    const stored = await store.getSetting('admin_token_hash');
    if (typeof token !== 'string' || !stored || hashSecret(token) !== stored)
      return reply.redirect('/login?failed=1');
    return reply.header('set-cookie', adminCookie(token, req.protocol === 'https')).redirect('/');
  });

  app.get('/logout', async (_req, reply) =>
    reply
      .header('set-cookie', 'suture_admin=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0')
      .redirect('/login'),
  );

  app.get('/', async (req, reply) => {
    if (!(await gate(req, reply))) return reply;
    const [fleet, rollout, failures, patches, machines, audit] = await Promise.all([
      store.fleet(),
      store.rollout(),
      store.failures(50),
      store.listPatches(),
      store.listMachines(200),
      store.listAudit(20),
    ]);
    const total = fleet.reduce((a, f) => a + f.machines, 0);
    const count = (s: MachineState) => fleet.filter((f) => f.state === s).reduce((a, f) => a + f.machines, 0);
    const kernels = new Map<
      string,
      Record<MachineState, number> & { release: string; buildId: string; tier: string }
    >();
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
 <div class="card" id="card-failed"><b style="color:${count('failed') ? 'var(--bad)' : 'inherit'}">${count('failed')}</b><span>with a failed patch</span></div>
 <div class="card" id="card-kernels"><b>${new Set(fleet.map((f) => `${f.release} ${f.buildId}`)).size}</b><span>kernels</span></div>
 <div class="card" id="card-patches"><b>${active}</b><span>active patches</span></div>
</div>
<h2>Machines by kernel and state</h2>
${
  kernels.size
    ? `<table id="fleet"><tr><th>kernel</th><th>build id</th><th>tier</th>${STATES.map((s) => `<th class="num">${s === 'none' ? 'no patch' : s}</th>`).join('')}</tr>
${[...kernels.values()]
  .map(
    (k) =>
      `<tr><td class="mono">${h(k.release)}</td><td>${shortId(k.buildId)}</td><td>${badge('tier', k.tier)}</td>${STATES.map((s) => `<td class="num" data-state="${s}">${k[s] ? badge(s, String(k[s])) : '<span class="muted">0</span>'}</td>`).join('')}</tr>`,
  )
  .join('\n')}</table>`
    : '<div class="empty">No machine has enrolled yet. Create a token with <code>suture token create --tier canary</code>.</div>'
}
<h2>Patches <small>newest first · rollout per tier</small></h2>
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
}
<h2>Failures <small>as reported by the agents</small></h2>
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
}
<h2>Machines <small>${machines.length < total ? `first ${machines.length} of ${total}` : `${total}`}</small></h2>
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
}
<h2>Admin actions <small>the last ${audit.length} · <code>suture audit</code> for more</small></h2>
${
  audit.length
    ? `<table id="audit"><tr><th>when</th><th>action</th><th>target</th><th>detail</th><th>by</th></tr>
${audit
  .map(
    (a) =>
      `<tr><td style="white-space:nowrap">${when(a.at)}</td><td>${h(a.action)}</td><td class="mono">${h(a.target)}</td><td>${Object.entries(
        a.detail,
      )
        .filter(([, v]) => v !== null && v !== '')
        .map(([k, v]) => `${h(k)}: ${h(typeof v === 'string' ? v : JSON.stringify(v))}`)
        .join(', ')}</td><td class="mono muted">${h(a.actor)}</td></tr>`,
  )
  .join('\n')}</table>`
    : '<div class="empty" id="audit">No admin action yet.</div>'
}`;
    return html(reply, page('Fleet', body));
  });

  app.get<{ Params: { id: string } }>('/machines/:id', async (req, reply) => {
    if (!(await gate(req, reply))) return reply;
    const m = await store.getMachine(req.params.id);
    if (!m)
      return html(
        reply.code(404),
        page('Not found', `<div class="empty">No machine ${h(req.params.id)}.</div>`),
      );
    const fixed = [...new Set(m.patches.filter((p) => p.state === 'applied').flatMap((p) => p.cves))].sort();
    const body = `<h2>${h(m.hostname)} <small class="mono">${h(m.id)}</small></h2>
<dl><dt>state</dt><dd>${badge(m.state, m.state === 'none' ? 'no patch' : m.state)}</dd><dt>tier</dt><dd>${badge('tier', m.tier)}</dd>
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
    return html(reply, page(m.hostname, body));
  });

  app.get<{ Params: { id: string } }>('/patches/:id', async (req, reply) => {
    if (!(await gate(req, reply))) return reply;
    const p = /^[0-9a-f]{16}$/.test(req.params.id) ? await store.getPatch(req.params.id) : undefined;
    if (!p)
      return html(
        reply.code(404),
        page('Not found', `<div class="empty">No patch ${h(req.params.id)}.</div>`),
      );
    const rollout = (await store.rollout()).filter((r) => r.patchId === p.id);
    const machines = await store.patchMachines(p.id);
    const fns = p.manifest.objects.flatMap((o) =>
      o.functions.map((f) => `${o.name}:${f.name}${f.sympos ? `,${f.sympos}` : ''}`),
    );
    const body = `<h2>${h(p.name)} v${h(p.version)} <small class="mono">${h(p.id)}</small></h2>
<dl><dt>status</dt><dd>${patchStatus(p)}${p.revokeReason ? ` <span class="muted">${h(p.revokeReason)}</span>` : ''}</dd>
<dt>kernel</dt><dd class="mono">${h(p.kernelRelease)} · ${h(p.buildId)}</dd>
<dt>CVEs</dt><dd>${cves(p.cves)}</dd><dt>description</dt><dd>${h(p.description) || '<span class="muted">—</span>'}</dd>
<dt>functions</dt><dd class="mono">${fns.map(h).join('<br>')}</dd><dt>module</dt><dd class="mono">${h(p.manifest.module.file)} · ${h(p.size)} bytes · sha256 ${h(p.sha256)}</dd>
<dt>cumulative</dt><dd>${p.manifest.replace ? 'yes (replaces earlier livepatches)' : 'no'}</dd><dt>published</dt><dd>${when(p.publishedAt)}</dd></dl>
<h2>Rollout by tier</h2>
${rollout.length ? `<div class="card" id="rollout">${rollout.map(rolloutBar).join('')}</div>` : '<div class="empty">Not in any tier.</div>'}
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
    return html(reply, page(p.name, body));
  });
}
