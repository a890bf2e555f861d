/*
 * What a livepatch-safety rule looks at: the verdict of comparing one original object with its
 * patched twin.
 *
 * objdiff/ correlates the two objects and classifies every function and data object as same,
 * changed or new; the rules in this folder read those verdicts (and the ELF objects behind them) and
 * answer with diagnostics for what a livepatch cannot carry. Rules never change anything: they only
 * look, so they can run in any order and all of them run, so the user sees every problem at once.
 */
import type { Diagnostic } from '../diagnostic.js';
import type { ElfObject, ElfSection, ElfSymbol } from '../elf/model.js';
import type { Prototype } from './object/prototypes.js';
import type { RuleInfo } from './refusal.js';

export type Change = 'same' | 'changed' | 'new';

/** One function of the patched object (or of the original, for functions the patch removed). */
export interface FunctionVerdict {
  /** name in the patched object */
  name: string;
  /** name in the original object (and so in the running kernel); equal to `name` unless the compiler renamed it */
  originalName?: string;
  change: Change;
  /** why it is changed, in plain words (first difference found) */
  reason?: string;
  /** the patched symbol */
  symbol: ElfSymbol;
  /** the original symbol, when correlated */
  original?: ElfSymbol;
  /** whether the patched function starts with an ftrace hook (`__fentry__` call, or an `__mcount_loc` / `__patchable_function_entries` entry) */
  traceable: boolean;
  /** whether the original function had that hook */
  originalTraceable: boolean;
  /** functions of the patched object that call or reference this one */
  callers: string[];
  /** a `.cold` part of `parent` (selected and compared with it, never on its own) */
  parent?: string;
}

/** One data object (STT_OBJECT) of the patched object. */
export interface DataVerdict {
  name: string;
  originalName?: string;
  change: Change;
  reason?: string;
  symbol: ElfSymbol;
  original?: ElfSymbol;
  /** lives in a writable section: the running kernel holds its own copy of the state */
  writable: boolean;
  /** functions of the patched object that reference it */
  users: string[];
}

/** A special-section entry that references a selected function but that the diff object cannot carry. */
export interface UncarriedEntry {
  section: string;
  offset: number;
  /** the selected function the entry belongs to */
  function: string;
}

export interface ObjectFacts {
  /** path of the original object, for locations */
  originalPath: string;
  patchedPath: string;
  original: ElfObject;
  patched: ElfObject;
  functions: FunctionVerdict[];
  /** functions of the original object that are gone from the patched one */
  removedFunctions: string[];
  data: DataVerdict[];
  /** entries of special sections that point into selected functions but cannot be carried */
  uncarried: UncarriedEntry[];
  /** section of a symbol, by name, for messages */
  sectionOf(symbol: ElfSymbol): ElfSection | null;
  /** function prototypes of both units (gcc `-aux-info`), when the compile produced them */
  prototypes?: { original: Map<string, Prototype>; patched: Map<string, Prototype> };
}

/** An object rule: a stable id, a title, and a check that returns its diagnostics. */
export interface Rule extends RuleInfo {
  check(facts: ObjectFacts): Diagnostic[];
}
