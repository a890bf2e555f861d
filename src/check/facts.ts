/*
 * The diff model: one record per symbol of the patched object, and what the rules look at.
 *
 * objdiff/ correlates an original object with its patched twin and gives every function and data object
 * of the patched side one record: its twin in the original (when correlated), its change (same / changed /
 * new, with the reason), whether the diff object carries it, and how the livepatch module reaches it when
 * it is not carried. This is the fate kpatch keeps on each symbol (`twin`, `status`, `include`) and upstream
 * objtool's klp-diff keeps too (`twin`, `changed`, `included`): comparison, selection, the diff object
 * writer and the module builder all read and extend these records; nothing copies them into a table of its
 * own. The model lives here, below objdiff/, because the rules of this folder read it: they only look,
 * so they can run in any order and all of them run, and the user sees every problem at once.
 */
import type { Diagnostic } from '../diagnostic.js';
import type { ElfObject, ElfSymbol } from '../elf/model.js';
import type { Prototype } from './object/prototypes.js';
import type { RuleInfo } from './refusal.js';

export type Change = 'same' | 'changed' | 'new';

/** How the diff object reaches a symbol it does not carry: by name, in the running kernel. */
export interface Reference {
  /** name in the running kernel (the original object's name) */
  name: string;
  /** defined in the original object as a local symbol: resolved by file and sympos, never by export */
  local: boolean;
  /** defined (local or global) in the patched object, i.e. in the same translation unit */
  definedHere: boolean;
  /** defined in the patched object but with no twin in the original: the running kernel has no such symbol */
  twinless: boolean;
  type: 'func' | 'object' | 'other';
  /** the name the livepatch module gives it (exported name or `.klp.sym.…`), once klp/ has resolved it */
  moduleName?: string;
}

/** One symbol of the patched object and its fate. */
export interface SymbolDiff {
  /** name in the patched object */
  name: string;
  /** the patched symbol */
  symbol: ElfSymbol;
  /** its twin in the original object, when correlated */
  twin?: ElfSymbol;
  /** the twin's name (and so the running kernel's), when the compiler renamed it */
  originalName?: string;
  change: Change;
  /** why it is changed or new, in plain words (first difference found) */
  reason?: string;
  /** carried by the diff object (kpatch `include`, objtool `included`) */
  included: boolean;
  /** how carried code reaches it when it is not carried (set by the selection) */
  reference?: Reference;
  /** symbols it shares its section with, which the diff object cannot carry with it (set by the selection) */
  sharesSectionWith?: string[];
}

/** One function (STT_FUNC) of the patched object. */
export interface FunctionDiff extends SymbolDiff {
  /** whether the patched function starts with an ftrace hook (`__fentry__` call, or an `__mcount_loc` / `__patchable_function_entries` entry) */
  traceable: boolean;
  /** whether the original function had that hook */
  originalTraceable: boolean;
  /** functions of the patched object that call or reference this one */
  callers: string[];
  /** a part of `parent`: its `.cold` part or its `__pfx_` prefix (selected and compared with it, never on its own) */
  parent?: string;
  /** position among same-named symbols of its object in the running kernel (klp_func.old_sympos), set by klp/ */
  sympos?: number;
  /** a changed compiler clone (`.isra`/`.constprop`/`.part`, either side): whether its callers prove its calling convention (objdiff/clones.ts) */
  clone?: CloneProof;
}

/** Why a changed clone may replace the running kernel's: every caller unchanged or carried, or the one that is not. */
export interface CloneProof {
  /** the clone kinds of its name (`isra`, `constprop.isra`) */
  kind: string;
  /** the caller (or data section) that breaks the proof; absent when the proof holds */
  breaker?: string;
  /** why the breaker breaks it */
  why?: string;
}

/** One data object (STT_OBJECT) of the patched object. */
export interface DataDiff extends SymbolDiff {
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

/** A special table whose layout is not the one Suture knows, so it cannot be split per entry. */
export type TableLayoutProblem =
  | { kind: 'entry-size'; table: string; size: number; entrySize: number }
  | { kind: 'orc-pairs'; orcSize: number; orcIpSize: number };

/** What the target kernel's code must look like (from its config), for the rules that check carried code. */
export interface TargetCode {
  /** X86_KERNEL_IBT: indirect branches must land on `endbr64` */
  ibt: boolean;
  /** MITIGATION_RETHUNK: every return goes through the kernel's return thunk */
  rethunk: boolean;
  /** the return thunk's name (`__x86_return_thunk`) */
  returnThunk: string;
}

export interface ObjectFacts {
  /** path of the original object, for locations */
  originalPath: string;
  patchedPath: string;
  original: ElfObject;
  patched: ElfObject;
  functions: FunctionDiff[];
  /** functions of the original object that are gone from the patched one */
  removedFunctions: string[];
  data: DataDiff[];
  /** every reference carried code leaves to the running kernel, by the patched symbol (defined or not) */
  references: Map<ElfSymbol, Reference>;
  /** entries of special sections that point into selected functions but cannot be carried */
  uncarried: UncarriedEntry[];
  /** special tables that cannot be split */
  tableLayouts: TableLayoutProblem[];
  /** the target kernel's code requirements, when the target is known */
  target?: TargetCode;
  /** whether the running kernel's object (vmlinux or the module) defines a global of that name, when known */
  kernelGlobal?: (name: string) => boolean;
  /** function prototypes of both units (gcc `-aux-info`), when the compile produced them */
  prototypes?: { original: Map<string, Prototype>; patched: Map<string, Prototype> };
}

/** An object rule: a stable id, a title, and a check that returns its diagnostics. */
export interface Rule extends RuleInfo {
  check(facts: ObjectFacts): Diagnostic[];
}
