/*
 * The fast path and commander read a command line the same way: for every spec a command file
 * exports as `fast`, command lines built from its own options (each option alone, `--x=v`, repeats,
 * all at once, options after the arguments) give the action the same arguments and options through
 * both; the lines the fast path must decline (help, unknown options, a missing or extra argument, a
 * missing value, `--`) fall back to commander, which refuses them itself. And `--version` prints
 * what commander's prints.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { VERSION } from '../version.js';
import { type CommandSpec, optionShape } from './command-spec.js';
import { selectFast } from './fast-path.js';
import { buildProgram, type CommandModule } from './main.js';

const FILES = ['status', 'list', 'apply', 'revert', 'host'];

async function specsOf(file: string): Promise<CommandSpec<never>[]> {
  const mod = (await import(`./commands/${file}.js`)) as CommandModule;
  return [...(mod.fast ?? [])];
}

/** What commander hands the spec's action for argv, or the error it throws. */
async function viaCommander(
  file: string,
  spec: CommandSpec<never>,
  argv: string[],
): Promise<{ args: string[]; options: unknown } | { error: string }> {
  const program = await buildProgram(file);
  let leaf: Command = program;
  for (const word of spec.path) {
    const next = leaf.commands.find((c) => c.name() === word);
    assert.ok(next, `${spec.path.join(' ')} is registered by ${file}.ts`);
    leaf = next;
  }
  for (let c: Command | null = leaf; c; c = c.parent)
    c.configureOutput({ writeOut: () => {}, writeErr: () => {} });
  let seen: { args: string[]; options: unknown } | undefined;
  const n = spec.args.length;
  leaf.action((...given: unknown[]) => {
    seen = { args: given.slice(0, n) as string[], options: { ...(given[n] as object) } };
  });
  try {
    await program.parseAsync(['node', 'suture', ...argv]);
  } catch (e) {
    return { error: (e as { code?: string }).code ?? String(e) };
  }
  assert.ok(seen, `commander ran the action for ${argv.join(' ')}`);
  return seen;
}

/** Command lines both must read alike, from the spec's own options. */
function agreeingLines(spec: CommandSpec<never>): string[][] {
  const args = spec.args.map((a) => `${a.name}-value.ko`);
  const lines: string[][] = [[...spec.path, ...args]];
  const all: string[] = [];
  for (const o of spec.options) {
    const { long, takesValue } = optionShape(o);
    if (takesValue) {
      lines.push([...spec.path, `--${long}`, '5s', ...args]);
      lines.push([...spec.path, ...args, `--${long}=json`]);
      lines.push([...spec.path, `--${long}`, 'a', ...args, `--${long}`, 'b']);
      all.push(`--${long}`, 'v');
    } else {
      lines.push([...spec.path, ...args, `--${long}`]);
      all.push(`--${long}`);
    }
  }
  lines.push([...spec.path, ...all, ...args]);
  if (args.length) lines.push([...spec.path, args[0] as string, ...all, ...args.slice(1)]);
  return lines;
}

/** Command lines the fast path must leave to commander. */
function decliningLines(spec: CommandSpec<never>): { argv: string[]; commanderRefuses: boolean }[] {
  const args = spec.args.map((a) => `${a.name}-value.ko`);
  const lines = [
    { argv: [...spec.path, ...args, '--help'], commanderRefuses: true },
    { argv: [...spec.path, '-h', ...args], commanderRefuses: true },
    { argv: [...spec.path, ...args, '--no-such-option'], commanderRefuses: true },
    { argv: [...spec.path, ...args, '-x'], commanderRefuses: true },
    { argv: [...spec.path, ...args, 'extra-argument'], commanderRefuses: true },
    { argv: [...spec.path, '--', ...args], commanderRefuses: false },
  ];
  if (args.length) lines.push({ argv: [...spec.path], commanderRefuses: true });
  for (const o of spec.options) {
    const { long, takesValue } = optionShape(o);
    if (takesValue) {
      lines.push({ argv: [...spec.path, ...args, `--${long}`], commanderRefuses: true });
      lines.push({ argv: [...spec.path, ...args, `--${long}=-1`], commanderRefuses: false });
    } else lines.push({ argv: [...spec.path, ...args, `--${long}=yes`], commanderRefuses: true });
  }
  return lines;
}

for (const file of FILES) {
  test(`${file}: the fast path reads each command line as commander does`, async () => {
    const specs = await specsOf(file);
    assert.ok(specs.length > 0, `${file}.ts exports fast specs`);
    for (const spec of specs) {
      for (const argv of agreeingLines(spec)) {
        const fast = selectFast(specs, ['node', 'suture', ...argv]);
        assert.ok(fast, `the fast path takes ${argv.join(' ')}`);
        assert.equal(fast.spec, spec);
        assert.deepEqual(fast.parse, await viaCommander(file, spec, argv), argv.join(' '));
      }
    }
  });

  test(`${file}: what the fast path declines, commander handles`, async () => {
    for (const spec of await specsOf(file)) {
      for (const { argv, commanderRefuses } of decliningLines(spec)) {
        assert.equal(
          selectFast([spec], ['node', 'suture', ...argv]),
          undefined,
          `declines ${argv.join(' ')}`,
        );
        const c = await viaCommander(file, spec, argv);
        if (commanderRefuses) assert.ok('error' in c, `commander refuses ${argv.join(' ')}`);
      }
    }
  });
}

test('host: only boot-apply is fast; the other host commands are commander’s', async () => {
  const specs = await specsOf('host');
  assert.deepEqual(
    specs.map((s) => s.path.join(' ')),
    ['host boot-apply'],
  );
  assert.equal(selectFast(specs, ['node', 'suture', 'host', 'install-service', '--print']), undefined);
});

test('--version on the fast path prints what commander prints', async () => {
  const program = await buildProgram('');
  let printed = '';
  program.configureOutput({ writeOut: (s) => (printed += s) });
  await assert.rejects(program.parseAsync(['node', 'suture', '--version']), { code: 'commander.version' });
  const bin = fileURLToPath(new URL('../../bin/suture.js', import.meta.url));
  const r = spawnSync(process.execPath, [bin, '--version'], { encoding: 'utf8' });
  assert.equal(r.status, 0);
  assert.equal(r.stdout, printed);
  assert.equal(printed, `${VERSION}\n`);
});
