/*
 * `suture list [--json]`: every livepatch the kernel knows, one line each, plus loaded livepatch
 * modules it no longer uses (replaced or disabled).
 */
import type { Command } from 'commander';
import { attributesText } from '../../host/attributes.js';
import { listLivepatches } from '../../host/index.js';

export function register(program: Command): void {
  program
    .command('list')
    .description('list livepatches: state, version, what they patch')
    .option('--json', 'print as JSON')
    .action((o: { json?: boolean }) => {
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
    });
}
