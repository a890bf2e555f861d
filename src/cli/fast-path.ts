/*
 * The host commands without commander. A command file may export `fast: CommandSpec[]` (the same
 * specs it registers with commander through addCommand); when the command line selects one of them
 * and parses cleanly with node:util's parseArgs, its action runs directly and commander is never
 * loaded. Anything this parser is not sure of — help, an unknown or malformed option, `--`, the
 * wrong number of arguments — answers `undefined`, and main.ts hands the command line to commander,
 * so every message and exit status stays commander's. fast-path.test.ts holds the two parsers to the
 * same result on each spec.
 */
import { parseArgs } from 'node:util';
import { type CommandSpec, optionShape, type ParsedOptions } from './command-spec.js';

export interface FastParse {
  args: string[];
  options: ParsedOptions;
}

/** `tokens` (what follows the command's path) as commander would hand them to the action, or undefined. */
export function parseFast(spec: CommandSpec<never>, tokens: readonly string[]): FastParse | undefined {
  if (tokens.some((t) => t === '--' || t === '-h' || t === '--help' || t.startsWith('-h'))) return undefined;
  const shapes = spec.options.map((o) => ({ ...optionShape(o), default: o.default }));
  const config: Record<string, { type: 'string' | 'boolean' }> = {};
  for (const s of shapes) config[s.long] = { type: s.takesValue ? 'string' : 'boolean' };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: [...tokens], options: config, strict: true, allowPositionals: true });
  } catch {
    return undefined;
  }
  if (parsed.positionals.length !== spec.args.length) return undefined;
  // a value that looks like an option (`--timeout --json`): commander takes it as the value, parseArgs
  // may not; let commander decide
  const values = parsed.values as Record<string, string | boolean | undefined>;
  const options: ParsedOptions = {};
  for (const s of shapes) {
    const v = values[s.long];
    if (typeof v === 'string' && v.startsWith('-')) return undefined;
    if (v !== undefined) options[s.key] = v;
    else if (s.default !== undefined) options[s.key] = s.default;
  }
  return { args: parsed.positionals, options };
}

/** The spec among `specs` that argv (node, script, words…) selects and its parse, or undefined. */
export function selectFast(
  specs: readonly CommandSpec<never>[],
  argv: readonly string[],
): { spec: CommandSpec<never>; parse: FastParse } | undefined {
  const words = argv.slice(2);
  for (const spec of specs) {
    if (!spec.path.every((w, i) => words[i] === w)) continue;
    const parse = parseFast(spec, words.slice(spec.path.length));
    return parse ? { spec, parse } : undefined;
  }
  return undefined;
}
