/*
 * `suture list [--json]`: every livepatch the kernel knows, one line each, plus loaded livepatch
 * modules it no longer uses (replaced or disabled).
 */
import type { Command } from 'commander';
import { attributesText } from '../../host/attributes.js';
// the modules list needs, not host/index.js: every import is start-up time, seconds under TCG
import { listLivepatches } from '../../host/status.js';
import { addCommand, type CommandSpec } from '../command-spec.js';

const list: CommandSpec<{ json?: boolean }> = {
  path: ['list'],
  description: 'list livepatches: state, version, what they patch',
  args: [],
  options: [{ flags: '--json', description: 'print as JSON' }],
  action(_args, o) {
    const patches = listLivepatches();
    if (o.json) {
      console.log(JSON.stringify(patches, null, 2));
      return;
    }
    if (!patches.length) {
      console.log('no livepatches loaded');
      return;
    }
    for (const p of patches) {
      const state =
        p.state === 'inactive' ? `inactive${p.replacedBy ? `, replaced by ${p.replacedBy}` : ''}` : p.state;
      const funcs = p.objects.flatMap((ob) => ob.funcs.map((f) => `${ob.name}:${f.name}`)).join(' ');
      // the kernel's own attributes last (replace, stack_order, patched: those it has)
      console.log(`${p.name}\t${state}\t${p.version ?? '-'}\t${funcs || '-'}\t${attributesText(p) ?? '-'}`);
    }
  },
};

export const fast = [list];

export function register(program: Command): void {
  addCommand(program, list);
}
