/*
 * The layering check (test support, not published): which folder may import which, as CONTRIBUTING.md's
 * table says, no import cycles between files, and no product file importing test support.
 *
 * The table is read from the markdown itself, so the page and the check cannot drift: each row names a
 * folder (`src/host/`) or a file (`src/diagnostic.ts`) and what it may import — backticked folders,
 * "all" / "all stages", "—" for nothing, "everyone may import it" for a leaf everybody uses, and
 * "(and `vm/` in `corpus.ts` only ...)" for an import one file of the folder may make. A file belongs to
 * the row with the longest matching path; a product file outside every row is a finding too (the table
 * must name every folder), and so is a row naming a path that does not exist.
 *
 * Imports are read with a careful regex over the source with comments removed: `import ... from`,
 * `export ... from`, side-effect `import '...'` and `import('...')` with a literal. Only relative
 * specifiers are ours; `type` imports count (they are still a dependency between folders and files).
 * Test support is a `*.test.ts` file, anything under a `testing/` folder, or a `*fixture*` file; it may
 * import anything and is not checked against the table, and `src/bench/` (not published) may import it.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative, sep } from 'node:path';

/** One row of the import table. `key` is `src/x/` (a folder) or `src/x.ts` (a file). */
export interface LayerRule {
  key: string;
  /** may import anything */
  all: boolean;
  /** every file may import this one ("everyone may import it") */
  open: boolean;
  /** keys of the rows it may import (folders end with `/`) */
  allowed: string[];
  /** imports only some files of the row may make: file path (from the repository root) → allowed keys */
  exceptions: { file: string; allowed: string[] }[];
}

export type Finding =
  | { kind: 'forbidden'; from: string; to: string; fromRow: string; toRow: string }
  | { kind: 'unlisted'; file: string }
  | { kind: 'missing-row-path'; row: string }
  | { kind: 'test-support'; from: string; to: string }
  | { kind: 'unresolved'; from: string; specifier: string };

/** A cycle: the files of one strongly connected component of the import graph, sorted. */
export type Cycle = string[];

const TABLE_HEADING = /^\|\s*folder\s*\|\s*owns\s*\|\s*may import\s*\|\s*$/i;

function backticked(text: string): string[] {
  return [...text.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
}

/** `kernel/` → `src/kernel/`, `diagnostic.ts` → `src/diagnostic.ts`. */
function keyOf(token: string): string {
  return token.startsWith('src/') ? token : `src/${token}`;
}

/** The import table of CONTRIBUTING.md (the table whose header is `folder | owns | may import`). */
export function parseImportTable(markdown: string): LayerRule[] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => TABLE_HEADING.test(l));
  if (start < 0) throw new Error('CONTRIBUTING.md has no `| folder | owns | may import |` table');
  const rules: LayerRule[] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break;
    const cells = line.split('|').slice(1, -1);
    if (cells.length !== 3) throw new Error(`import table row without three cells: ${line}`);
    const [folder, , mayImport] = cells.map((c) => c.trim()) as [string, string, string];
    const key = backticked(folder)[0];
    if (!key) throw new Error(`import table row names no folder: ${line}`);
    const exceptions: LayerRule['exceptions'] = [];
    const main = mayImport.replace(
      /\(and ([^)]*?) in ([^)]*?) only[^)]*\)/g,
      (_m, what: string, where: string) => {
        for (const file of backticked(where))
          exceptions.push({ file: join(key, file), allowed: backticked(what).map(keyOf) });
        return '';
      },
    );
    rules.push({
      key,
      all: /^all\b/i.test(main),
      open: /everyone may import it/i.test(main),
      allowed: backticked(main).map(keyOf),
      exceptions,
    });
  }
  if (!rules.length) throw new Error('the import table of CONTRIBUTING.md has no rows');
  return rules;
}

/** Test support: tests, `testing/` folders, fixtures. */
export function isTestSupport(file: string): boolean {
  const parts = file.split('/');
  const base = parts.at(-1) ?? '';
  return base.endsWith('.test.ts') || parts.includes('testing') || /fixture/.test(base);
}

/** Folders that are not published and may use test support (package.json leaves them out). */
const UNPUBLISHED = ['src/bench/'];

/** The row a file belongs to: the longest key that is the file or a folder holding it. */
export function rowOf(rules: LayerRule[], file: string): LayerRule | undefined {
  let best: LayerRule | undefined;
  for (const r of rules) {
    const holds = r.key.endsWith('/') ? file.startsWith(r.key) : file === r.key;
    if (holds && (!best || r.key.length > best.key.length)) best = r;
  }
  return best;
}

function sourceFiles(root: string, dir = 'src'): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(root, dir)).sort()) {
    const rel = `${dir}/${name}`;
    if (statSync(join(root, rel)).isDirectory()) out.push(...sourceFiles(root, rel));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(rel);
  }
  return out;
}

const IMPORT_PATTERNS = [
  /\b(?:import|export)\s+(?:type\s+)?[^'";]*?\bfrom\s*['"]([^'"]+)['"]/g,
  /\bimport\s*['"]([^'"]+)['"]/g,
  /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
];

/** The relative specifiers a TypeScript source imports (comments removed first). */
export function importSpecifiers(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const found = new Set<string>();
  for (const re of IMPORT_PATTERNS) for (const m of code.matchAll(re)) found.add(m[1]!);
  return [...found].filter((s) => s.startsWith('./') || s.startsWith('../'));
}

/** Every source file's imports of our files, as repository-relative `.ts` paths. */
export function importGraph(root: string): { graph: Map<string, string[]>; unresolved: Finding[] } {
  const graph = new Map<string, string[]>();
  const unresolved: Finding[] = [];
  for (const file of sourceFiles(root)) {
    const targets: string[] = [];
    for (const spec of importSpecifiers(readFileSync(join(root, file), 'utf8'))) {
      const target = normalize(join(dirname(file), spec.replace(/\.js$/, '.ts')))
        .split(sep)
        .join('/');
      if (existsSync(join(root, target))) targets.push(target);
      else unresolved.push({ kind: 'unresolved', from: file, specifier: spec });
    }
    graph.set(file, targets);
  }
  return { graph, unresolved };
}

function allowedBy(rule: LayerRule, file: string, target: LayerRule): boolean {
  const covers = (k: string) => target.key === k || (k.endsWith('/') && target.key.startsWith(k));
  if (rule.all || target.open || rule.key === target.key || rule.allowed.some(covers)) return true;
  return rule.exceptions.some((e) => e.file === file && e.allowed.some(covers));
}

/** The table and test-support findings of a repository at `root` (its CONTRIBUTING.md and src/). */
export function checkLayering(root: string): Finding[] {
  const rules = parseImportTable(readFileSync(join(root, 'CONTRIBUTING.md'), 'utf8'));
  const { graph, unresolved } = importGraph(root);
  // a test may hold import-like text in its strings (synthetic trees): only product files' imports must resolve
  const findings: Finding[] = unresolved.filter((f) => f.kind === 'unresolved' && !isTestSupport(f.from));
  for (const r of rules)
    if (!existsSync(join(root, r.key))) findings.push({ kind: 'missing-row-path', row: r.key });
  for (const [file, targets] of graph) {
    if (isTestSupport(file)) continue;
    const row = rowOf(rules, file);
    if (!row) {
      findings.push({ kind: 'unlisted', file });
      continue;
    }
    for (const to of targets) {
      if (isTestSupport(to)) {
        if (!UNPUBLISHED.some((u) => file.startsWith(u)))
          findings.push({ kind: 'test-support', from: file, to });
        continue;
      }
      const toRow = rowOf(rules, to);
      if (!toRow) continue; // reported as unlisted on its own
      if (!allowedBy(row, file, toRow))
        findings.push({ kind: 'forbidden', from: file, to, fromRow: row.key, toRow: toRow.key });
    }
  }
  return findings;
}

/** Import cycles between files (Tarjan's strongly connected components of more than one file, or a self-import). */
export function importCycles(graph: Map<string, string[]>): Cycle[] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: Cycle[] = [];
  let next = 0;
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    for (let w = stack.pop()!; ; w = stack.pop()!) {
      onStack.delete(w);
      component.push(w);
      if (w === v) break;
    }
    if (component.length > 1 || (graph.get(v) ?? []).includes(v)) cycles.push(component.sort());
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return cycles.sort((a, b) => a[0]!.localeCompare(b[0]!));
}

/** A finding as one line a person can act on. */
export function describeFinding(f: Finding): string {
  switch (f.kind) {
    case 'forbidden':
      return `${f.from} imports ${f.to}: ${f.fromRow} may not import ${f.toRow} (CONTRIBUTING.md's import table)`;
    case 'unlisted':
      return `${f.file} is in no row of CONTRIBUTING.md's import table: add its folder`;
    case 'missing-row-path':
      return `CONTRIBUTING.md's import table names ${f.row}, which does not exist`;
    case 'test-support':
      return `${f.from} (product) imports test support ${f.to}`;
    case 'unresolved':
      return `${f.from} imports ${f.specifier}, which is not a file`;
  }
}

/** A cycle as one line: the files, and one import path around it. */
export function describeCycle(graph: Map<string, string[]>, cycle: Cycle): string {
  const members = new Set(cycle);
  const path = [cycle[0]!];
  const seen = new Set(path);
  for (;;) {
    const here = path.at(-1)!;
    const step = (graph.get(here) ?? []).find((t) => members.has(t) && (!seen.has(t) || t === cycle[0]));
    if (!step) break;
    path.push(step);
    if (step === cycle[0]) break;
    seen.add(step);
  }
  return `cycle of ${cycle.length} files: ${path.map((p) => relative('src', p)).join(' → ')} (all: ${cycle.join(', ')})`;
}
