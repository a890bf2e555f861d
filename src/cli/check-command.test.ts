/*
 * `suture check` against `suture build` on a handful of real stable fixes of the corpus (real kernel,
 * both through the CLI): the same verdict — built or refused, with the same rule ids and exit status —
 * and check writes no module; and the module stage's rules (a tracepoint of kyber in a patched module
 * function: left inert with a warning, refused by KLP-MODULE-KEY under --strict), which check reaches
 * without linking. The
 * times of both are printed, never asserted (check skips the kbuild
 * link and the manifest; the compile cache makes the first run of a fix the slow one, so check runs
 * after build here, which favours it: the numbers are shown for what they are).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { createTwoFilesPatch } from 'diff';
import { ensureKernel } from '../kernel/fetch.js';
import type { KernelTarget } from '../kernel/target.js';
import { CORPUS_DIR, CORPUS_RELEASE } from '../pipeline/corpus.js';

const FIXES = [
  'fs_pipe.patch',
  'block_bfq-cgroup.patch',
  'kernel_entry_common.patch',
  'kernel_fork.patch',
  'kernel_sys.patch',
];
const BIN = resolve(process.cwd(), 'bin', 'suture.js');
const dir = mkdtempSync(join(tmpdir(), 'suture-check-cli-'));
let target: KernelTarget;
before(async () => {
  target = await ensureKernel(CORPUS_RELEASE);
});
after(() => rmSync(dir, { recursive: true, force: true }));

interface Run {
  status: number | null;
  verdict: string;
  ms: number;
}

function suture(
  args: string[],
  cwd: string,
): { status: number | null; json: Record<string, unknown>; ms: number } {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [BIN, ...args, '--kernel', CORPUS_RELEASE, '--json'], {
    cwd,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  const ms = performance.now() - t0;
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(r.stdout) as Record<string, unknown>;
  } catch {
    assert.fail(`suture ${args.join(' ')} printed no JSON (status ${r.status}): ${r.stderr.slice(-2000)}`);
  }
  return { status: r.status, json, ms };
}

const codes = (list: unknown) =>
  [...new Set((list as { code: string }[]).map((d) => d.code))].sort().join(',');

/** `ok` or `refused RULE,…`, with ` warned RULE,…` when the run warned */
function warned(json: Record<string, unknown>): string {
  const w = codes(json.warnings ?? []);
  return w ? ` warned ${w}` : '';
}

function buildRun(patch: string, out: string, extra: string[] = []): Run {
  const { status, json, ms } = suture(['build', resolve(CORPUS_DIR, patch), '-o', out, ...extra], dir);
  if (json.error) return { status, verdict: `error ${(json.error as { code: string }).code}`, ms };
  if (json.refused) return { status, verdict: `refused ${codes(json.refusals)}${warned(json)}`, ms };
  assert.ok(typeof json.module === 'string', `build of ${patch} names its module`);
  return { status, verdict: `ok${warned(json)}`, ms };
}

function checkRun(patch: string, cwd: string, extra: string[] = []): Run {
  const { status, json, ms } = suture(['check', resolve(CORPUS_DIR, patch), ...extra], cwd);
  if (json.error) return { status, verdict: `error ${(json.error as { code: string }).code}`, ms };
  if (json.verdict === 'refused')
    return { status, verdict: `refused ${codes(json.refusals)}${warned(json)}`, ms };
  assert.equal(json.verdict, 'ok');
  return { status, verdict: `ok${warned(json)}`, ms };
}

test('suture check gives the verdict of suture build on corpus fixes, and writes no module', () => {
  const rows: string[] = [];
  const verdicts: string[] = [];
  for (const patch of FIXES) {
    const built = buildRun(patch, join(dir, 'out'));
    const cwd = mkdtempSync(join(dir, 'check-'));
    const checked = checkRun(patch, cwd);
    assert.equal(checked.verdict, built.verdict, `${patch}: check and build agree`);
    assert.equal(checked.status, built.status, `${patch}: same exit status`);
    assert.deepEqual(readdirSync(cwd), [], `${patch}: check writes nothing`);
    verdicts.push(built.verdict);
    rows.push(
      `${patch.padEnd(28)} ${built.verdict.padEnd(40)} build ${(built.ms / 1000).toFixed(1).padStart(6)} s   check ${(checked.ms / 1000).toFixed(1).padStart(6)} s`,
    );
  }
  console.log(`suture check vs suture build:\n${rows.join('\n')}`);
  assert.ok(
    verdicts.some((v) => v.startsWith('ok')),
    'the handful has a fix that builds',
  );
  assert.ok(
    verdicts.some((v) => v.startsWith('refused')),
    'the handful has a fix that is refused',
  );
});

test("the module stage's rules (kyber's tracepoint, in a module) give check build's verdict too, --strict or not", () => {
  const file = 'block/kyber-iosched.c';
  const text = readFileSync(join(target.sourceTree, file), 'utf8');
  const changed = text.replace(
    'depth = clamp(depth, 1U, kyber_depth[sched_domain]);',
    'depth = clamp(depth, 2U, kyber_depth[sched_domain]);',
  );
  assert.notEqual(changed, text, 'the edit applies');
  const patch = join(dir, 'kyber-clamp.patch');
  writeFileSync(patch, createTwoFilesPatch(`a/${file}`, `b/${file}`, text, changed));
  const expected = {
    '': { verdict: 'ok warned KLP-MODULE-TRACEPOINT-INERT', status: 0 },
    '--strict': { verdict: 'refused KLP-MODULE-KEY', status: 2 },
  };
  for (const [flag, want] of Object.entries(expected)) {
    const extra = flag ? [flag] : [];
    const built = buildRun(patch, join(dir, 'out'), extra);
    const cwd = mkdtempSync(join(dir, 'check-'));
    const checked = checkRun(patch, cwd, extra);
    console.log(
      `kyber-clamp.patch ${flag}: build ${built.verdict} in ${(built.ms / 1000).toFixed(1)} s, check ${checked.verdict} in ${(checked.ms / 1000).toFixed(1)} s`,
    );
    assert.deepEqual({ verdict: built.verdict, status: built.status }, want, `build ${flag}`);
    assert.equal(checked.verdict, built.verdict);
    assert.equal(checked.status, built.status);
    assert.deepEqual(readdirSync(cwd), []);
  }
});
