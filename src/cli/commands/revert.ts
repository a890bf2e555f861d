/*
 * `suture revert <patch> [--timeout 60s] [--signal] [--force --i-understand-the-risk] [--keep-module]`
 *
 * Disables a livepatch (unpatching transition, same progress and stall report as apply), then
 * unloads its module. A patch already replaced by a cumulative one only has its module removed.
 */
import type { Command } from 'commander';
import { SutureError } from '../../diagnostic.js';
import { FORCE_RISK, revertLivepatch } from '../../host/index.js';
import { eventPrinter, parseDuration } from './apply.js';

export function register(program: Command): void {
  program
    .command('revert')
    .description('disable a livepatch (reverse transition) and unload its module')
    .argument('<patch>', 'patch name as in `suture list` (livepatch_x, livepatch-x or its .ko path)')
    .option('--timeout <duration>', 'wait this long for the transition before reporting stalled tasks', '60s')
    .option('--signal', 'at the timeout, SIGSTOP+SIGCONT the stalled user tasks and wait once more')
    .option('--force', 'at the timeout, force the transition; the module can then never be unloaded')
    .option('--i-understand-the-risk', 'confirm --force')
    .option('--keep-module', 'leave the module loaded after disabling the patch')
    .action(
      async (
        patch: string,
        o: {
          timeout: string;
          signal?: boolean;
          force?: boolean;
          iUnderstandTheRisk?: boolean;
          keepModule?: boolean;
        },
      ) => {
        if (o.force && !o.iUnderstandTheRisk) {
          throw new SutureError({
            code: 'HOST-FORCE-UNCONFIRMED',
            message: '--force needs --i-understand-the-risk',
            why: FORCE_RISK,
            hint: 'add --i-understand-the-risk if you accept that',
          });
        }
        const r = await revertLivepatch(patch, {
          timeoutMs: parseDuration('--timeout', o.timeout),
          signal: o.signal ?? false,
          force: o.force ?? false,
          forceConfirmed: o.iUnderstandTheRisk ?? false,
          keepModule: o.keepModule ?? false,
          onEvent: eventPrinter(),
        });
        console.log(
          `reverted ${r.patch}${r.transitioned ? `: transition took ${(r.transitionMs / 1000).toFixed(2)} s` : ''}${r.unloaded ? ', module unloaded' : ''}`,
        );
      },
    );
}
