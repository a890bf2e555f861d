/*
 * `suture revert <patch> [--timeout 60s] [--signal] [--force --i-understand-the-risk] [--keep-module]`
 *
 * Disables a livepatch (unpatching transition, same progress and stall report as apply), then
 * unloads its module. A patch already replaced by a cumulative one only has its module removed.
 */
import type { Command } from 'commander';
import { SutureError } from '../../diagnostic.js';
// the modules revert needs, not host/index.js: every import is start-up time, seconds under TCG
import { FORCE_RISK } from '../../host/events.js';
import { revertLivepatch } from '../../host/revert.js';
import { addCommand, type CommandSpec } from '../command-spec.js';
import { eventPrinter, parseDuration, RISK_OPTION, SIGNAL_OPTION, TIMEOUT_OPTION } from './apply.js';

interface RevertOptions {
  timeout: string;
  signal?: boolean;
  force?: boolean;
  iUnderstandTheRisk?: boolean;
  keepModule?: boolean;
}

const revert: CommandSpec<RevertOptions> = {
  path: ['revert'],
  description: 'disable a livepatch (reverse transition) and unload its module',
  args: [
    {
      name: 'patch',
      description: 'patch name as in `suture list` (livepatch_x, livepatch-x or its .ko path)',
    },
  ],
  options: [
    TIMEOUT_OPTION,
    SIGNAL_OPTION,
    {
      flags: '--force',
      description: 'at the timeout, force the transition; the module can then never be unloaded',
    },
    RISK_OPTION,
    { flags: '--keep-module', description: 'leave the module loaded after disabling the patch' },
  ],
  async action([patch], o) {
    if (o.force && !o.iUnderstandTheRisk) {
      throw new SutureError({
        code: 'HOST-FORCE-UNCONFIRMED',
        message: '--force needs --i-understand-the-risk',
        why: FORCE_RISK,
        hint: 'add --i-understand-the-risk if you accept that',
      });
    }
    const r = await revertLivepatch(patch as string, {
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
};

export const fast = [revert];

export function register(program: Command): void {
  addCommand(program, revert);
}
