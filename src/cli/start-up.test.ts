/*
 * The host commands' import graph stays small: each loads its own command file, the parts of host/
 * it uses and the CLI's own few files — not commander (the fast path parses their argv), not zod,
 * not host/index.js, no other stage, and not node:child_process or node:crypto (loaded when a module
 * is loaded or a manifest's sha256 checked, not at start). Every import is start-up time, seconds in a TCG VM (see
 * src/bench/host.bench.ts for the numbers). The command lines fail on a bad --timeout before touching
 * the kernel, after every static import has loaded.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const bin = join(root, 'bin', 'suture.js');
const loader = new URL('./testing/module-log.js', import.meta.url).href;
const work = mkdtempSync(join(tmpdir(), 'suture-start-up-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** The files of ours and the packages `suture ARGS` loads, relative to the checkout. */
function loaded(args: string[]): {
  ours: string[];
  packages: string[];
  builtins: string[];
  status: number | null;
} {
  const log = join(work, `${args.join('_').replace(/[^a-z0-9_]/gi, '')}.log`);
  const r = spawnSync(process.execPath, ['--no-warnings', '--experimental-loader', loader, bin, ...args], {
    encoding: 'utf8',
    env: { ...process.env, SUTURE_MODULE_LOG: log, SUTURE_HOST_STATE: join(work, 'state') },
  });
  const urls = readFileSync(log, 'utf8').split('\n');
  const builtins = urls.filter((u) => u.startsWith('node:'));
  const files = urls.filter((u) => u.startsWith('file:')).map((u) => fileURLToPath(u));
  const packages = files
    .filter((f) => f.includes('/node_modules/'))
    .map((f) => f.replace(/^.*\/node_modules\//, ''));
  const ours = files.filter((f) => !f.includes('/node_modules/')).map((f) => f.slice(root.length + 1));
  return { ours, packages, builtins, status: r.status };
}

const CLI = new Set([
  'bin/suture.js',
  'dist/cli/main.js',
  'dist/cli/fast-path.js',
  'dist/cli/command-spec.js',
]);
const SHARED = new Set(['dist/diagnostic.js', 'dist/version.js', 'dist/manifest/manifest-input.js']);

const LINES: Array<{ args: string[]; command: string; exits?: number }> = [
  { args: ['status', '--format', 'json'], command: 'status' },
  { args: ['list', '--json'], command: 'list' },
  { args: ['apply', '/nonexistent.ko', '--timeout', '0'], command: 'apply', exits: 1 },
  { args: ['revert', 'livepatch_nothing', '--timeout', '0'], command: 'revert', exits: 1 },
  { args: ['host', 'boot-apply', '--timeout', '0'], command: 'host', exits: 1 },
];

for (const { args, command, exits } of LINES) {
  test(`suture ${args.join(' ')} loads no package and only host/ of the stages`, () => {
    const { ours, packages, builtins, status } = loaded(args);
    if (exits !== undefined) assert.equal(status, exits, 'the bad --timeout ends it before the kernel');
    assert.deepEqual(packages, [], 'no npm package: commander, zod, yaml… stay unloaded');
    assert.ok(ours.includes(`dist/cli/commands/${command}.js`), `${command}'s own file is loaded`);
    assert.ok(builtins.includes('node:fs'), 'the log sees built-ins');
    for (const lazy of ['node:child_process', 'node:crypto'])
      assert.ok(!builtins.includes(lazy), `${lazy} waits`);
    const stray = ours.filter(
      (f) =>
        !CLI.has(f) &&
        !SHARED.has(f) &&
        !(f.startsWith('dist/host/') && f !== 'dist/host/index.js') &&
        !/^dist\/cli\/commands\/(apply|host|list|revert|status)\.js$/.test(f),
    );
    assert.deepEqual(stray, [], 'nothing but the CLI core, the host modules it uses, diagnostic and version');
  });
}

test('a command line the fast path declines (help) still goes through commander', () => {
  const { packages } = loaded(['status', '--help']);
  assert.ok(packages.some((p) => p.startsWith('commander/')));
});
