/*
 * The layering, checked: CONTRIBUTING.md's import table holds for every product file, no file imports
 * itself back through others, no product file imports test support, and the package leaves test support
 * out. The checker (testing/layering.ts) is shown to fail on a small tree that breaks each rule.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  checkLayering,
  describeCycle,
  describeFinding,
  importCycles,
  importGraph,
  importSpecifiers,
  parseImportTable,
} from './testing/layering.js';

/** The repository: dist/layering.test.js and src/layering.test.ts both sit one level under it. */
const root = fileURLToPath(new URL('..', import.meta.url));

/*
 * Import cycles accepted on purpose, each listed once as its sorted files: none. A listed cycle that is
 * gone fails the test too, so the list cannot outlive the cycles.
 */
const KNOWN_CYCLES: string[][] = [];

test("every product file imports only what CONTRIBUTING.md's table allows, and no test support", () => {
  assert.deepEqual(checkLayering(root).map(describeFinding), []);
});

test('no import cycles between files', () => {
  const { graph } = importGraph(root);
  const cycles = importCycles(graph);
  const key = (c: string[]) => c.join(' ');
  const known = new Set(KNOWN_CYCLES.map(key));
  const found = new Set(cycles.map(key));
  assert.deepEqual(
    cycles.filter((c) => !known.has(key(c))).map((c) => describeCycle(graph, c)),
    [],
    'new import cycles',
  );
  assert.deepEqual(
    KNOWN_CYCLES.filter((c) => !found.has(key(c))).map((c) => `listed in KNOWN_CYCLES but gone: ${key(c)}`),
    [],
    'remove these entries from KNOWN_CYCLES',
  );
});

test('the package leaves tests, testing/ folders and the benchmarks out', () => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { files?: string[] };
  assert.ok(pkg.files, 'package.json has a files field');
  for (const out of ['!dist/**/testing/', '!dist/**/*.test.js', '!dist/bench/'])
    assert.ok(pkg.files.includes(out), `package.json files lacks ${out}`);
});

const tmp = mkdtempSync(join(tmpdir(), 'suture-layering-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const TABLE = `# Working on it

| folder | owns | may import |
|---|---|---|
| \`src/cli/\` | the command | all stages |
| \`src/build/\` | builds | \`elf/\` (and \`vm/\` in \`corpus.ts\` only: it proves builds in a VM) |
| \`src/vm/\` | the VM | — |
| \`src/elf/\` | ELF | — |
| \`src/diagnostic.ts\` | errors | — (everyone may import it) |

Each folder has a README.
`;

/** A small repository: CONTRIBUTING.md with TABLE and the given source files. */
function tree(name: string, files: Record<string, string>, table = TABLE): string {
  const dir = join(tmp, name);
  for (const [path, text] of Object.entries({ 'CONTRIBUTING.md': table, ...files })) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return dir;
}

const LEGAL: Record<string, string> = {
  'src/diagnostic.ts': 'export const x = 1;\n',
  'src/elf/reader.ts': "import { x } from '../diagnostic.js';\nexport const y = x;\n",
  'src/elf/testing/tiny.ts': "import { y } from '../reader.js';\nexport const t = y;\n",
  'src/elf/reader.test.ts': "import { t } from './testing/tiny.js';\nvoid t;\n",
  'src/vm/run.ts': '// imports nothing\nexport const run = 1;\n',
  'src/build/pipeline.ts': [
    '/* a comment that mentions',
    " import { run } from '../vm/run.js'; */",
    "// import { run } from '../vm/run.js';",
    "import type { y } from '../elf/reader.js';",
    'export type Y = typeof y;',
  ].join('\n'),
  'src/build/corpus.ts': "import {\n  run,\n} from '../vm/run.js';\nexport const c = run;\n",
  'src/cli/main.ts':
    "export { c } from '../build/corpus.js';\nexport const load = () => import('../vm/run.js');\n",
};

test('the checker accepts a tree that keeps the table (exceptions, type imports, comments, tests)', () => {
  assert.deepEqual(checkLayering(tree('legal', LEGAL)).map(describeFinding), []);
  assert.deepEqual(importCycles(importGraph(tree('legal', LEGAL)).graph), []);
});

test('the checker fails on a forbidden import, and says which row forbids it', () => {
  const dir = tree('forbidden', {
    ...LEGAL,
    'src/build/pipeline.ts': "import { run } from '../vm/run.js';\nexport const p = run;\n",
    'src/elf/writer.ts': "export * from '../build/corpus.js';\n",
  });
  assert.deepEqual(checkLayering(dir).map(describeFinding), [
    "src/build/pipeline.ts imports src/vm/run.ts: src/build/ may not import src/vm/ (CONTRIBUTING.md's import table)",
    "src/elf/writer.ts imports src/build/corpus.ts: src/elf/ may not import src/build/ (CONTRIBUTING.md's import table)",
  ]);
});

test('the checker fails on product code importing test support, an unlisted folder, a stale row', () => {
  const dir = tree(
    'support',
    {
      ...LEGAL,
      'src/elf/writer.ts': "import { t } from './testing/tiny.js';\nexport const w = t;\n",
      'src/server/app.ts': "import { x } from '../diagnostic.js';\nexport const a = x;\n",
      'src/vm/missing.ts': "import { gone } from './gone.js';\nexport const m = gone;\n",
    },
    TABLE.replace('| `src/elf/` | ELF | — |', '| `src/elf/` | ELF | — |\n| `src/check/` | rules | `elf/` |'),
  );
  assert.deepEqual(checkLayering(dir).map(describeFinding).sort(), [
    "CONTRIBUTING.md's import table names src/check/, which does not exist",
    'src/elf/writer.ts (product) imports test support src/elf/testing/tiny.ts',
    "src/server/app.ts is in no row of CONTRIBUTING.md's import table: add its folder",
    'src/vm/missing.ts imports ./gone.js, which is not a file',
  ]);
});

test('the checker finds import cycles, type imports included, and names a path around each', () => {
  const dir = tree('cycles', {
    ...LEGAL,
    'src/elf/a.ts': "import type { B } from './b.js';\nexport type A = B;\n",
    'src/elf/b.ts': "import { c } from './c.js';\nexport type B = typeof c;\n",
    'src/elf/c.ts': "import type { A } from './a.js';\nexport const c: A | 1 = 1;\n",
    'src/vm/self.ts': "export * from './self.js';\n",
  });
  const { graph } = importGraph(dir);
  const cycles = importCycles(graph);
  assert.deepEqual(cycles, [['src/elf/a.ts', 'src/elf/b.ts', 'src/elf/c.ts'], ['src/vm/self.ts']]);
  assert.match(describeCycle(graph, cycles[0]!), /elf\/a\.ts → elf\/b\.ts → elf\/c\.ts → elf\/a\.ts/);
});

test('the import table is read from the markdown: rows, "all", "—", open leaves, file exceptions', () => {
  const rules = parseImportTable(TABLE);
  const row = (k: string) => rules.find((r) => r.key === k);
  assert.deepEqual(
    rules.map((r) => r.key),
    ['src/cli/', 'src/build/', 'src/vm/', 'src/elf/', 'src/diagnostic.ts'],
  );
  assert.equal(row('src/cli/')?.all, true);
  assert.deepEqual(row('src/build/')?.allowed, ['src/elf/']);
  assert.deepEqual(row('src/build/')?.exceptions, [{ file: 'src/build/corpus.ts', allowed: ['src/vm/'] }]);
  assert.deepEqual(row('src/vm/')?.allowed, []);
  assert.equal(row('src/diagnostic.ts')?.open, true);
  assert.throws(() => parseImportTable('# no table here\n'), /no `\| folder \| owns \| may import \|` table/);
  assert.deepEqual(
    importSpecifiers("import a from 'node:fs';\nimport b from 'zod';\nimport './side.js';\n"),
    ['./side.js'],
  );
});
