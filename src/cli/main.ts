/*
 * The `suture` command line.
 *
 * Owns argument parsing, progress display and output formats; every real decision is made by a stage
 * (kernel/, vm/, build/, host/, agent/, server/). Each sub-command lives in `commands/<name>.ts` and
 * exports `register(program)`; this file discovers them, so adding a command never touches another.
 * Errors thrown as SutureError are rendered as diagnostics on stderr and exit with status 1 (or the
 * status a command sets); anything else is an internal error (exit 70).
 */
import { readdirSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { isSutureError, renderDiagnostic, toDiagnostic } from '../diagnostic.js';

export const VERSION = '0.1.0';

export interface CommandModule {
  register(program: Command): void;
}

export async function buildProgram(): Promise<Command> {
  const program = new Command('suture')
    .description('Build, check, test, apply and deliver Linux kernel livepatches')
    .version(VERSION)
    .showHelpAfterError()
    .exitOverride();
  const dir = new URL('./commands/', import.meta.url);
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.js') && !f.endsWith('.test.js'))
    .sort();
  for (const f of files) {
    const mod = (await import(new URL(f, dir).href)) as Partial<CommandModule>;
    if (typeof mod.register === 'function') mod.register(program);
  }
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = await buildProgram();
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
