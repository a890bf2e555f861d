/*
 * The `suture` command line.
 *
 * Owns argument parsing, progress display and output formats; every real decision is made by a stage
 * (kernel/, vm/, source/, objdiff/, klp/, pipeline/, host/, agent/, server/). Each sub-command lives in `commands/<name>.ts` and
 * exports `register(program)`; this file discovers them, so adding a command never touches another.
 * Errors thrown as SutureError are rendered as diagnostics on stderr and exit with status 1 (or the
 * status a command sets); anything else is an internal error (exit 70).
 *
 * The host commands (status, list, apply, revert, host boot-apply) and `--version` take a fast path:
 * their file also exports `fast` specs, parsed with node:util (fast-path.ts), and commander is only
 * imported when the command line needs it (help, errors, every other command).
 */
import { existsSync, readdirSync } from 'node:fs';
import type { Command } from 'commander';
import { isSutureError, renderDiagnostic, toDiagnostic } from '../diagnostic.js';
import type { CommandSpec } from './command-spec.js';
import { selectFast } from './fast-path.js';

export interface CommandModule {
  register(program: Command): void;
  /** the commands of this file that may run without commander (see fast-path.ts) */
  fast?: readonly CommandSpec<never>[];
}

/**
 * Build the program. With `only`, just that sub-command's file is imported (files are named after the
 * top-level command they register): every `suture X` then starts without loading the server, the ELF
 * engine and the rest — it matters inside a TCG VM, where each import costs real seconds.
 */
export async function buildProgram(only?: string): Promise<Command> {
  const [{ Command }, { VERSION }] = await Promise.all([import('commander'), import('../version.js')]);
  const program = new Command('suture')
    .description('Build, check, test, apply and deliver Linux kernel livepatches')
    .version(VERSION)
    .showHelpAfterError()
    .exitOverride();
  const dir = new URL('./commands/', import.meta.url);
  const all = readdirSync(dir)
    .filter((f) => f.endsWith('.js') && !f.endsWith('.test.js'))
    .sort();
  const files = only === undefined ? all : all.filter((f) => f === `${only}.js`);
  for (const f of files) {
    const mod = await commandModule(new URL(f, dir));
    if (typeof mod.register === 'function') mod.register(program);
  }
  return program;
}

function commandModule(file: URL): Promise<Partial<CommandModule>> {
  return import(file.href) as Promise<Partial<CommandModule>>;
}

/** The sub-command file to load for this command line, or undefined to load them all (help, typos). */
function commandToLoad(argv: string[]): string | undefined {
  const first = argv[2];
  if (first === '--version' || first === '-V') return '';
  if (first === undefined || !/^[a-z][a-z-]*$/.test(first)) return undefined;
  const known = existsSync(new URL(`./commands/${first}.js`, import.meta.url));
  return known ? first : undefined;
}

/** Runs argv's command without commander when it can; false when commander must parse argv. */
async function runFast(argv: string[], only: string | undefined): Promise<boolean> {
  if (only === '') {
    if (argv.length !== 3) return false;
    const { VERSION } = await import('../version.js'); // it reads package.json: only when asked
    process.stdout.write(`${VERSION}\n`); // what commander's .version() prints
    return true;
  }
  if (only === undefined) return false;
  const mod = await commandModule(new URL(`./commands/${only}.js`, import.meta.url));
  const hit = selectFast(mod.fast ?? [], argv);
  if (!hit) return false;
  await hit.spec.action(hit.parse.args, hit.parse.options as never);
  return true;
}

export async function main(argv: string[]): Promise<number> {
  const only = commandToLoad(argv);
  let viaCommander = false;
  try {
    if (!(await runFast(argv, only))) {
      viaCommander = true;
      await (await buildProgram(only)).parseAsync(argv);
    }
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (viaCommander) {
      const { CommanderError } = await import('commander'); // loaded already: no cost
      if (e instanceof CommanderError) return e.exitCode;
    }
    const color = process.stderr.isTTY === true;
    console.error(renderDiagnostic(toDiagnostic(e), color));
    return isSutureError(e) ? 1 : 70;
  }
}
