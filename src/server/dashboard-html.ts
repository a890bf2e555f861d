/*
 * The dashboard's HTML parts: escaping, the one stylesheet (allowed by the CSP through its hash, see
 * security-headers.ts), the page frame with its logout form, and the small pieces pages are made of.
 * No script, no inline style attribute: rollout bars are SVG.
 */
import { createHash } from 'node:crypto';
import type { MachineState, PatchRecord, RolloutRow } from './store.js';

export function h(v: unknown): string {
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
.s-revoked,.s-bad{background:#fdecec;color:var(--bad)}.s-tier{background:#e8f0fb;color:var(--info)}
.bar{height:8px;background:#e9edf3;border-radius:4px;overflow:hidden;display:flex;min-width:140px}
.bar svg{display:block;width:100%;height:100%}.bar .a{fill:var(--ok)}.bar .t{fill:var(--warn)}.bar .f{fill:var(--bad)}
.roll{display:grid;grid-template-columns:70px 1fr 170px;gap:8px;align-items:center;margin:2px 0;white-space:nowrap}
.failed-count{color:var(--bad);font-weight:600}
.muted{color:var(--muted)}.reason{color:var(--bad);font-family:ui-monospace,monospace;font-size:12.5px;white-space:pre-wrap}
.empty{padding:14px;color:var(--muted);background:var(--card);border:1px dashed var(--line);border-radius:8px}
dl{display:grid;grid-template-columns:160px 1fr;gap:4px 12px;background:var(--card);border:1px solid var(--line);border-radius:8px;padding:14px}
dt{color:var(--muted)}dd{margin:0}
form.login{max-width:420px;margin:80px auto;background:var(--card);border:1px solid var(--line);border-radius:8px;padding:24px}
form.login input{width:100%;padding:8px;margin:8px 0 14px;font:inherit}form.login button{padding:8px 16px;font:inherit}
form.inline{display:inline;margin:0}button.link{background:none;border:0;color:#cfd8e8;font:inherit;cursor:pointer;padding:0}
form.action{display:inline-flex;gap:8px;align-items:center;margin:0 16px 8px 0}form.action input{font:inherit;padding:4px 6px}
.bad{color:var(--bad)}.nowrap{white-space:nowrap}
`;

/** the hash the Content-Security-Policy allows the one inline stylesheet by */
export const STYLE_HASH = `sha256-${createHash('sha256').update(CSS).digest('base64')}`;

/** A page; with a CSRF token (logged in) the header has the navigation and the logout form. */
export function page(title: string, body: string, csrf?: string): string {
  const nav =
    csrf === undefined
      ? ''
      : `<nav><a href="/">Fleet</a><a href="/metrics">Metrics</a></nav><form method="post" action="/logout" class="inline">${csrfField(csrf)}<button type="submit" class="link">Log out</button></form>`;
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${h(title)} · Suture</title><style>${CSS}</style></head><body>
<header><h1>Suture</h1>${nav}</header>
<main>${body}</main></body></html>`;
}

export const csrfField = (csrf: string) => `<input type="hidden" name="csrf" value="${h(csrf)}">`;

export const badge = (state: string, text = state) => `<span class="badge s-${h(state)}">${h(text)}</span>`;
export const shortId = (buildId: string) =>
  `<span class="mono" title="${h(buildId)}">${h(buildId.slice(0, 12))}…</span>`;
export const when = (iso?: string) =>
  iso
    ? `<span title="${h(iso)}">${h(iso.replace('T', ' ').slice(0, 19))}</span>`
    : '<span class="muted">never</span>';

export function rolloutBar(r: RolloutRow): string {
  const pct = (n: number) => (r.eligible ? (100 * n) / r.eligible : 0);
  return `<div class="roll" data-tier="${h(r.tier)}">${badge('tier', r.tier)}<div class="bar" title="${r.applied} applied, ${r.transition} in transition, ${r.failed} failed of ${r.eligible}">
<svg viewBox="0 0 100 8" preserveAspectRatio="none"><rect class="a" x="0" width="${pct(r.applied)}" height="8"/><rect class="t" x="${pct(r.applied)}" width="${pct(r.transition)}" height="8"/><rect class="f" x="${pct(r.applied) + pct(r.transition)}" width="${pct(r.failed)}" height="8"/></svg></div>
<span class="rollout-count">${r.applied}/${r.eligible} applied${r.failed ? `, <span class="failed-count">${r.failed} failed</span>` : ''}</span></div>`;
}

export function cves(list: string[]): string {
  return list.length
    ? list.map((c) => `<span class="mono">${h(c)}</span>`).join(', ')
    : '<span class="muted">—</span>';
}

export function patchStatus(p: PatchRecord): string {
  return p.revokedAt ? badge('revoked', 'revoked') : p.tiers.map((t) => badge('tier', t)).join(' ');
}

export const STATES: MachineState[] = ['applied', 'transition', 'failed', 'none'];
