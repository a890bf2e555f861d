/*
 * The `suture` command line.
 *
 * Owns argument parsing, progress display and output formats; every real decision is made by a stage
 * (kernel/, vm/, source/, objdiff/, klp/, pipeline/, host/, agent/, server/). Each sub-command lives in `commands/<name>.ts` and
 * exports `register(program)`; this file discovers them, so adding a command never touches another.
 * Errors thrown as SutureError are rendered as diagnostics on stderr and exit with status 1 (or the
 * status a command sets); anything else is an internal error (exit 70).
 */
import { existsSync, readdirSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { isSutureError, renderDiagnostic, toDiagnostic } from '../diagnostic.js';
import { VERSION } from '../version.js';

export interface CommandModule {
  register(program: Command): void;
}

/**
 * Build the program. With `only`, just that sub-command's file is imported (files are named after the
 * top-level command they register): every `suture X` then starts without loading the server, the ELF
 * engine and the rest — it matters inside a TCG VM, where each import costs real seconds.
 */
export async function buildProgram(only?: string): Promise<Command> {
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
    const mod = (await import(new URL(f, dir).href)) as Partial<CommandModule>;
    if (typeof mod.register === 'function') mod.register(program);
  }
  return program;
}

/** The sub-command file to load for this command line, or undefined to load them all (help, typos). */
function commandToLoad(argv: string[]): string | undefined {
  const first = argv[2];
  if (first === '--version' || first === '-V') return '';
  if (first === undefined || !/^[a-z][a-z-]*$/.test(first)) return undefined;
  const known = existsSync(new URL(`./commands/${first}.js`, import.meta.url));
  return known ? first : undefined;
}

export async function main(argv: string[]): Promise<number> {
  const program = await buildProgram(commandToLoad(argv));
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    const color = process.stderr.isTTY === true;
    console.error(renderDiagnostic(toDiagnostic(e), color));
    return isSutureError(e) ? 1 : 70;
  }
}
