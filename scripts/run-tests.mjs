#!/usr/bin/env node
// Runs the compiled tests with node's test runner.
//   node scripts/run-tests.mjs            all tests (unit first, then the VM tests, one at a time)
//   node scripts/run-tests.mjs --unit     only tests that need no VM and no kernel artifacts
//   node scripts/run-tests.mjs --vm       only VM tests (*.vm.test.js)
//   node scripts/run-tests.mjs FILTER...  only test files whose path contains one of the FILTERs
// Unit tests are *.test.ts; tests that boot QEMU are *.vm.test.ts.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const args = process.argv.slice(2);
const flags = new Set(args.filter((a) => a.startsWith('--')));
const filters = args.filter((a) => !a.startsWith('--'));
let files = walk('dist').sort();
if (filters.length) files = files.filter((f) => filters.some((x) => f.includes(x)));
const unit = files.filter((f) => !f.endsWith('.vm.test.js'));
const vm = files.filter((f) => f.endsWith('.vm.test.js'));
const groups = [];
if (!flags.has('--vm') && unit.length) groups.push({ name: 'unit', files: unit, concurrency: 2 });
if (!flags.has('--unit') && vm.length) groups.push({ name: 'vm', files: vm, concurrency: 1 });

let status = 0;
for (const g of groups) {
  console.log(`\n=== ${g.name} tests (${g.files.length} files) ===`);
  const r = spawnSync(
    process.execPath,
    ['--test', `--test-concurrency=${g.concurrency}`, '--test-reporter=spec', ...g.files],
    { stdio: 'inherit' },
  );
  if (r.status !== 0) status = 1;
}
process.exit(status);
