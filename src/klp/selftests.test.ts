/*
 * The selftest build (selftests.ts) against the cached default kernel: the tree's sources found, every
 * test module built with the kernel's own kbuild, and a module that does not compile reported with the
 * compiler's words instead of being skipped.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isSutureError } from '../diagnostic.js';
import { openCachedKernel } from '../kernel/fetch.js';
import { isCached } from '../kernel/releases.js';
import { defaultRelease } from '../kernel/target.js';
import { moduleVermagic } from './kbuild.js';
import { buildSelftests, guestScript, SELFTEST_SCRIPTS, selftestSources } from './selftests.js';

const work = mkdtempSync(join(tmpdir(), 'suture-selftests-'));
after(() => rmSync(work, { recursive: true, force: true }));
const release = defaultRelease();
const skip = isCached(release) ? false : `${release} is not cached: run \`suture kernel fetch ${release}\``;

test('the sources of the default kernel: modules and the six scripts', { skip }, () => {
  const s = selftestSources(openCachedKernel(release).sourceTree);
  for (const m of [
    'test_klp_livepatch',
    'test_klp_callbacks_busy',
    'test_klp_state3',
    'test_klp_shadow_vars',
  ])
    assert.ok(s.modules.includes(m), `${m} in ${s.modules}`);
  assert.deepEqual(s.scripts, [...SELFTEST_SCRIPTS]);
  assert.deepEqual(s.missing, []);
  assert.equal(s.loader, release.startsWith('6.1.') ? 'modprobe' : 'insmod');
});

test('a tree without selftests is SELFTEST-SOURCES-MISSING', () => {
  assert.throws(
    () => selftestSources(work),
    (e) => isSutureError(e) && e.diagnostic.code === 'SELFTEST-SOURCES-MISSING',
  );
});

test('a module that does not build comes back with its compiler output; the others build', {
  skip,
}, async () => {
  const kernel = openCachedKernel(release);
  const real = selftestSources(kernel.sourceTree);
  const src = join(work, 'src');
  mkdirSync(src, { recursive: true });
  writeFileSync(
    join(src, 'test_klp_broken.c'),
    '#include <linux/module.h>\nstatic int __init b_init(void) { return undeclared_here; }\nmodule_init(b_init);\nMODULE_LICENSE("GPL");\n',
  );
  const sources = { ...real, modulesDir: src, modules: ['test_klp_broken', 'test_klp_fine'] };
  writeFileSync(
    join(src, 'test_klp_fine.c'),
    '#include <linux/module.h>\nstatic int __init f_init(void) { return 0; }\nmodule_init(f_init);\nMODULE_LICENSE("GPL");\n',
  );
  const b = await buildSelftests(kernel, join(work, 'out'), { sources });
  const broken = b.modules.find((m) => m.name === 'test_klp_broken');
  const fine = b.modules.find((m) => m.name === 'test_klp_fine');
  assert.equal(broken?.ko, undefined);
  assert.match(
    broken?.errors.join('\n') ?? '',
    /test_klp_broken\.c:2:\d+: error: .undeclared_here. undeclared/,
  );
  assert.ok(fine?.ko && existsSync(fine.ko), 'make -k built the other module');
  assert.equal(moduleVermagic(fine.ko).split(' ')[0], release);
  assert.ok(existsSync(join(b.dir, 'functions.sh')) && existsSync(join(b.dir, 'test-state.sh')));
  assert.equal(guestScript('/x', 'test-state'), 'cd /x && KDIR=/x/test_modules bash ./test-state.sh');
});

test('`suture selftest build` builds every test module of the default kernel', { skip }, () => {
  const out = join(work, 'cli');
  const r = spawnSync(process.execPath, ['bin/suture.js', 'selftest', 'build', '--json', '-o', out], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr + r.stdout);
  const j = JSON.parse(r.stdout) as { release: string; modules: Array<{ name: string; ko?: string }> };
  assert.equal(j.release, release);
  assert.ok(j.modules.length >= 10, r.stdout);
  for (const m of j.modules) assert.ok(m.ko && existsSync(m.ko), `${m.name} built`);
});
