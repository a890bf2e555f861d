/*
 * An object diff as plain JSON (`suture objdiff --json`): the records without their ELF objects.
 */
import { STB } from '../elf/constants.js';
import type { ObjectDiff } from './objdiff.js';

const binding = (bind: number): 'local' | 'global' | 'weak' =>
  bind === STB.LOCAL ? 'local' : bind === STB.WEAK ? 'weak' : 'global';

export function objectDiffJson(diff: ObjectDiff): Record<string, unknown> {
  return {
    functions: diff.functions.map((f) => ({
      name: f.name,
      change: f.change,
      ...(f.reason ? { reason: f.reason } : {}),
      ...(f.originalName ? { originalName: f.originalName } : {}),
      binding: binding((f.twin ?? f.symbol).bind),
      section: f.symbol.section?.name ?? '',
      ...(f.parent ? { parent: f.parent } : {}),
    })),
    data: diff.data.map((d) => ({
      name: d.name,
      change: d.change,
      writable: d.writable,
      ...(d.reason ? { reason: d.reason } : {}),
    })),
    removedFunctions: diff.removedFunctions,
    refusals: diff.refusals,
    warnings: diff.warnings,
    carried: {
      functions: diff.functions.filter((f) => f.included).map((f) => f.name),
      sections: [...diff.selection.sections].map((s) => s.name),
      tables: Object.fromEntries([...diff.selection.tables].map(([s, k]) => [s.name, k.length])),
      descriptors: Object.fromEntries(
        [...diff.selection.descriptors].map(([s, ds]) => [s.name, ds.map((d) => d.name)]),
      ),
      externals: [
        ...new Map(
          [...diff.references.values()].map((e) => [
            e.name,
            { name: e.name, local: e.local, definedHere: e.definedHere, type: e.type },
          ]),
        ).values(),
      ],
    },
  };
}
