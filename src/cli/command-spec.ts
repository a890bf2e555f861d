/*
 * A command described once, as data: its path, required arguments and long options. Commander is
 * given it by `addCommand` (help, errors, `suture --help`), and the fast path (fast-path.ts) parses
 * the same definition with node:util's parseArgs, so the host commands can run without loading
 * commander — half a second of start-up under TCG. Only what both parse the same way fits here:
 * long options that are booleans or take one value, no short flags, no negations, no variadics.
 */
import type { Command } from 'commander';

/** The options object commander hands an action: camelCase keys, absent booleans left out. */
export type ParsedOptions = Record<string, string | boolean>;

export interface OptionSpec {
  /** commander's flags: `--name` (a boolean) or `--name <value>` */
  flags: string;
  description: string;
  /** only for options that take a value */
  default?: string;
}

export interface CommandSpec<O extends object = ParsedOptions> {
  /** the words that select it: ['status'], ['host', 'boot-apply'] */
  path: readonly string[];
  description: string;
  /** required positional arguments, in order */
  args: readonly { name: string; description: string }[];
  options: readonly OptionSpec[];
  /** method syntax on purpose: a spec for its own option type is still a CommandSpec<ParsedOptions> */
  action(args: string[], options: O): void | Promise<void>;
}

export interface OptionShape {
  /** the long name without dashes, as parseArgs knows it */
  long: string;
  /** the key commander gives it in the options object */
  key: string;
  takesValue: boolean;
}

const FLAGS = /^--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)(?: <[a-z-]+>)?$/;

/** What `flags` means; throws for a form outside the subset both parsers agree on. */
export function optionShape(o: OptionSpec): OptionShape {
  const m = FLAGS.exec(o.flags);
  const long = m?.[1];
  if (long === undefined || long.startsWith('no-')) {
    throw new Error(`command-spec: ${JSON.stringify(o.flags)} is not a plain long option`);
  }
  const takesValue = o.flags.includes('<');
  if (!takesValue && o.default !== undefined) {
    throw new Error(`command-spec: boolean ${o.flags} cannot have a default`);
  }
  // commander's camelCase: each part after a dash capitalised
  const key = long.replace(/-([a-z0-9])/g, (_s, c: string) => c.toUpperCase());
  return { long, key, takesValue };
}

/** Registers the spec's last path word under `parent` (the program, or `host` for a sub-command). */
export function addCommand<O extends object>(parent: Command, spec: CommandSpec<O>): Command {
  const name = spec.path[spec.path.length - 1] as string;
  const cmd = parent.command(name).description(spec.description);
  for (const a of spec.args) cmd.argument(`<${a.name}>`, a.description);
  for (const o of spec.options) {
    optionShape(o);
    if (o.default === undefined) cmd.option(o.flags, o.description);
    else cmd.option(o.flags, o.description, o.default);
  }
  const n = spec.args.length;
  cmd.action((...given: unknown[]) => spec.action(given.slice(0, n) as string[], given[n] as O));
  return cmd;
}
