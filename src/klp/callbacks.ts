/*
 * The callbacks of a livepatch, found in its patched objects: each unit's callback records
 * (author-records.ts) give a kind and the global trampoline the macro defined; the trampoline is a new
 * function of the unit's diff, carried like any other. They are gathered per klp object (the unit's
 * target: vmlinux or its module), and the rule KLP-CALLBACK-TWICE refuses a kind registered twice
 * for one object, naming both places.
 */
import { type CallbackPlace, callbackTwice } from '../check/module/callback-twice.js';
import { refuse } from '../check/refusal.js';
import { fail } from '../diagnostic.js';
import type { ObjectDiff } from '../objdiff/objdiff.js';
import { readAuthorRecords } from './author-records.js';
import { klpObjectName } from './references.js';
import type { ObjectCallbacks } from './registration-callbacks.js';

/** What callbacks need of a unit: its source, target and diff (with the patched object). */
export interface CallbackUnit {
  source: string;
  target: string;
  diff: ObjectDiff;
}

/** Every klp object's callbacks, refusing a kind registered twice for one object. */
export function livepatchCallbacks(units: readonly CallbackUnit[]): Map<string, ObjectCallbacks> {
  const places: (CallbackPlace & { symbol: string })[] = [];
  for (const u of units) {
    const object = klpObjectName(u.target);
    for (const r of readAuthorRecords(u.diff.patched, u.diff.patchedPath)) {
      if (r.kind !== 'callback') continue;
      const carried = u.diff.functions.some((f) => f.name === r.symbol && f.included);
      if (!carried)
        fail(
          'KLP-CALLBACK-NOT-CARRIED',
          `the ${r.callback} callback of ${u.source}:${r.line} is not in the patch`,
          {
            location: { file: u.source, line: r.line, symbol: r.symbol },
            why: `its trampoline \`${r.symbol}\` is not a new function the object diff carries`,
            hint: 'do not name the callback (or its section) in KPATCH_IGNORE_FUNCTION / KPATCH_IGNORE_SECTION',
          },
        );
      places.push({ object, callback: r.callback, file: u.source, line: r.line, symbol: r.symbol });
    }
  }
  const twice = callbackTwice.check(places);
  if (twice.length) refuse(twice[0]!);
  const out = new Map<string, ObjectCallbacks>();
  for (const p of places) {
    const cbs = out.get(p.object) ?? {};
    cbs[p.callback as keyof ObjectCallbacks] = p.symbol;
    out.set(p.object, cbs);
  }
  return out;
}
