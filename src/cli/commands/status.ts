/*
 * `suture status [--format text|json|yaml] [--json] [--yaml]`: one screen on the machine's livepatch
 * state — the kill-switch mode, kernel release and build id, livepatch support, taint, transition,
 * every patch with its state, version and functions, and the patches the crash-loop guard marked bad.
 * The exit status is the verdict for scripts (host/exit-code.ts): 0 applied, 1 none, 2 available but
 * not applied, 3 unsupported or upgrade required, 4 a patch marked bad.
 */
import type { Command } from 'commander';
import { SutureError } from '../../diagnostic.js';
// the modules status needs, not host/index.js: every import is start-up time, seconds under TCG
import { statusExitCode, statusVerdict } from '../../host/exit-code.js';
import { statusText } from '../../host/report.js';
import { hostStatus } from '../../host/status.js';
import { addCommand, type CommandSpec } from '../command-spec.js';

const FORMATS = ['text', 'json', 'yaml'] as const;

function formatOf(o: StatusOptions): (typeof FORMATS)[number] {
  const f = o.format ?? (o.json ? 'json' : o.yaml ? 'yaml' : 'text');
  if (!(FORMATS as readonly string[]).includes(f)) {
    throw new SutureError({
      code: 'CLI-BAD-FORMAT',
      message: `--format ${JSON.stringify(f)} is not one of ${FORMATS.join(', ')}`,
      hint: 'use --format json or --format yaml for scripts',
    });
  }
  return f as (typeof FORMATS)[number];
}

interface StatusOptions {
  json?: boolean;
  yaml?: boolean;
  format?: string;
}

const status: CommandSpec<StatusOptions> = {
  path: ['status'],
  description: 'mode, kernel, livepatch support, taint, every patch with its state; exit code for scripts',
  args: [],
  options: [
    { flags: '--format <format>', description: 'text, json or yaml' },
    { flags: '--json', description: 'print as JSON (same as --format json)' },
    { flags: '--yaml', description: 'print as YAML (same as --format yaml)' },
  ],
  async action(_args, o) {
    const format = formatOf(o);
    const s = hostStatus();
    const out = { ...s, verdict: statusVerdict(s), exitCode: statusExitCode(s) };
    if (format === 'json') console.log(JSON.stringify(out, null, 2));
    else if (format === 'yaml') {
      const { stringify } = await import('yaml');
      process.stdout.write(stringify(out));
    } else console.log(`${statusText(s)}\nverdict: ${out.verdict} (exit ${out.exitCode})`);
    process.exitCode = out.exitCode;
  },
};

export const fast = [status];

export function register(program: Command): void {
  addCommand(program, status);
}
