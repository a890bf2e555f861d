/*
 * The release tarball: built from this checkout, unpacked into an empty directory, its own node runs
 * Suture (no node from PATH), everything is owned by root, and the wrapper points at /opt/suture.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { VERSION } from '../version.js';
import { buildTarball, NODE_PATH, tarballName, WRAPPER_PATH } from './tarball.js';

test('the tarball unpacks to /opt/suture with its own node and a wrapper', { timeout: 180_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'suture-package-test-'));
  try {
    const r = await buildTarball(join(dir, 'out'));
    assert.equal(r.path, join(dir, 'out', tarballName()));
    const list = spawnSync('tar', ['-tvzf', r.path], { encoding: 'utf8', maxBuffer: 64 << 20 });
    assert.equal(list.status, 0, list.stderr);
    const lines = list.stdout.trim().split('\n');
    assert.ok(
      lines.every((l) => / 0\/0 /.test(l)),
      'every entry is owned by root',
    );
    const root = join(dir, 'root');
    mkdirSync(root);
    assert.equal(spawnSync('tar', ['-xzf', r.path, '-C', root]).status, 0);
    const wrapper = readFileSync(join(root, WRAPPER_PATH), 'utf8');
    assert.equal(wrapper, `#!/bin/sh\nexec ${NODE_PATH} /opt/suture/bin/suture.js "$@"\n`);
    const v = spawnSync(join(root, NODE_PATH), [join(root, 'opt/suture/bin/suture.js'), '--version'], {
      encoding: 'utf8',
      env: { PATH: '/nonexistent' },
    });
    assert.equal(v.status, 0, v.stderr);
    assert.equal(v.stdout.trim(), VERSION);
    const rules = spawnSync(join(root, NODE_PATH), [join(root, 'opt/suture/bin/suture.js'), 'explain'], {
      encoding: 'utf8',
    });
    assert.equal(rules.status, 0, `suture explain works from the tarball: ${rules.stderr}`);
    assert.match(rules.stdout, /KLP-DATA-CHANGED/);
    const dist = lines.filter((l) => l.includes(' opt/suture/dist/'));
    assert.ok(
      dist.some((l) => l.endsWith('opt/suture/dist/cli/main.js')),
      'the CLI is shipped',
    );
    assert.ok(
      !dist.some((l) => /\.test\.js$|\/testing\/|\/bench\//.test(l)),
      'no tests, test support or benchmarks',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
