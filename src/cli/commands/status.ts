/*
 * `suture status [--json|--yaml]`: one screen on the machine's livepatch state — kernel release and
 * build id, livepatch support, taint, transition, every patch with its state, version and functions.
 */
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { hostStatus, statusText } from '../../host/index.js';

export function register(program: Command): void {
  program
    .command('status')
    .description('kernel, livepatch support, taint, and every patch with its state')
    .option('--json', 'print as JSON')
    .option('--yaml', 'print as YAML')
    .action((o: { json?: boolean; yaml?: boolean }) => {
      const s = hostStatus();
      if (o.json) console.log(JSON.stringify(s, null, 2));
      else if (o.yaml) process.stdout.write(stringify(s));
      else console.log(statusText(s));
    });
}
