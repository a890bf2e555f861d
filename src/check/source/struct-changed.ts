/*
 * Rule KLP-STRUCT-CHANGED: a diff hunk that changes the definition of a struct or union.
 *
 * The running kernel has laid out every instance of a struct already: objects on the heap, in per-cpu
 * areas, embedded in other structs, and all the code that is not patched reads their fields at the old
 * offsets. A livepatch replaces functions, not memory, so a new, removed, resized or reordered field
 * means patched and unpatched code disagree about the same bytes. This rule works on the diff text and
 * the original source (a .c or a header): every changed line inside a `struct X { … };` or `union X
 * { … };` definition at file scope is a change of a data structure. Initializers (`static struct foo x =
 * { … };`) are data, not a definition, and are left to KLP-DATA-CHANGED; struct types local to a
 * function body only exist in that function and are fine, and so is deleting a whole definition from a
 * .c file (no other file sees it, and a remaining use would not compile).
 */
import type { Diagnostic } from '../../diagnostic.js';
import type { RuleInfo } from '../refusal.js';

/** A hunk as the diff parser gives it: where it starts in the original, and its body lines. */
export interface HunkText {
  oldStart: number;
  /** body lines, each starting with ' ', '-', '+' or '\' */
  lines: string[];
}

export interface ChangedSource {
  /** path relative to the kernel source root */
  path: string;
  /** the original file's text */
  original: string;
  hunks: HunkText[];
}

/** A struct or union definition of the original file: its name and the lines of `{` and `}`. */
export interface StructSpan {
  kind: 'struct' | 'union';
  name: string;
  open: number;
  close: number;
}

/** Blank out comments, string and character literals and preprocessor lines, keeping line structure. */
function codeOnly(text: string): string {
  let out = '';
  let i = 0;
  let lineStart = true;
  while (i < text.length) {
    const c = text[i]!;
    if (lineStart && /^[ \t]*#/.test(text.slice(i, i + 200))) {
      // a preprocessor line, with its continuations
      while (i < text.length && text[i] !== '\n') {
        if (text[i] === '\\' && text[i + 1] === '\n') {
          out += ' \n';
          i += 2;
        } else {
          out += ' ';
          i++;
        }
      }
      continue;
    }
    if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      const stop = end < 0 ? text.length : end + 2;
      out += text.slice(i, stop).replace(/[^\n]/g, ' ');
      i = stop;
      lineStart = false;
      continue;
    }
    if (c === '/' && text[i + 1] === '/') {
      while (i < text.length && text[i] !== '\n') {
        out += ' ';
        i++;
      }
      continue;
    }
    if (c === '"' || c === "'") {
      out += ' ';
      i++;
      while (i < text.length && text[i] !== c && text[i] !== '\n') {
        if (text[i] === '\\') {
          out += ' ';
          i++;
        }
        out += ' ';
        i++;
      }
      out += ' ';
      i++;
      lineStart = false;
      continue;
    }
    out += c;
    lineStart = c === '\n' ? true : lineStart && (c === ' ' || c === '\t');
    i++;
  }
  return out;
}

const DEFINITION_RE =
  /\b(struct|union)\s+((?:__attribute__\s*\(\(.*?\)\)\s*|__\w+\s+)*)([A-Za-z_]\w*)?\s*(?:__attribute__\s*\(\(.*?\)\)\s*|__\w+\s*)*$/s;

/** Every struct/union definition at file scope (nested ones belong to the outer one), with its lines. */
export function structSpans(text: string): StructSpan[] {
  const code = codeOnly(text);
  const spans: StructSpan[] = [];
  // each open brace: what it opens, and for a definition where it started
  const stack: { kind: 'def' | 'other'; span?: StructSpan }[] = [];
  let line = 1;
  let stmtStart = 0; // start of the text since the last ; { or }
  for (let i = 0; i < code.length; i++) {
    const c = code[i];
    if (c === '\n') line++;
    else if (c === '{') {
      const before = code.slice(stmtStart, i);
      const m = DEFINITION_RE.exec(before);
      const inBody = stack.some((s) => s.kind === 'other');
      if (m && !before.includes('=') && !inBody) {
        const span: StructSpan = {
          kind: m[1] as 'struct' | 'union',
          name: m[3] ?? '',
          open: line,
          close: line,
        };
        const outer = stack.find((s) => s.kind === 'def');
        stack.push({ kind: 'def', span: outer ? undefined : span });
      } else {
        stack.push({ kind: 'other' });
      }
      stmtStart = i + 1;
    } else if (c === '}') {
      const top = stack.pop();
      if (top?.span) {
        top.span.close = line;
        if (!top.span.name) {
          // typedef struct { … } name;
          const after = /^\s*(?:__\w+(?:\s*\(\(.*?\)\))?\s*)*([A-Za-z_]\w*)\s*;/s.exec(
            code.slice(i + 1, i + 300),
          );
          top.span.name = after?.[1] ?? '(anonymous)';
        }
        spans.push(top.span);
      }
      stmtStart = i + 1;
    } else if (c === ';') {
      stmtStart = i + 1;
    }
  }
  return spans;
}

/** A body line that changes code (not a blank or comment-only line). */
function isCode(body: string): boolean {
  const t = body
    .replace(/\/\*.*?\*\//g, '')
    .replace(/\/\/.*$/, '')
    .trim();
  return t !== '' && !t.startsWith('*') && !t.startsWith('/*');
}

/** Changed lines of the hunks inside the original's struct/union definitions, by definition. */
export function changedStructs(src: ChangedSource): { span: StructSpan; lines: number[] }[] {
  const spans = structSpans(src.original);
  const hits = new Map<StructSpan, Set<number>>();
  const removed = new Set<number>();
  const hit = (s: StructSpan, l: number) => {
    const set = hits.get(s) ?? new Set<number>();
    set.add(l);
    hits.set(s, set);
  };
  for (const h of src.hunks) {
    let old = h.oldStart;
    for (const l of h.lines) {
      const mark = l[0];
      if (mark === ' ') old++;
      else if (mark === '-') {
        removed.add(old);
        if (isCode(l.slice(1))) for (const s of spans) if (s.open <= old && old <= s.close) hit(s, old);
        old++;
      } else if (mark === '+') {
        // inserted before original line `old`: inside when both neighbours are within the braces
        if (isCode(l.slice(1))) for (const s of spans) if (s.open <= old - 1 && old <= s.close) hit(s, old);
      }
    }
  }
  // a type a .c file deletes: every line naming it is removed and no added line names it. Nothing can
  // use it any more and no other file could see it — e.g. a union only used for type punning in removed
  // code (diff may keep its `};` as context)
  const originalLines = src.original.split('\n');
  const added = src.hunks.flatMap((h) => h.lines.filter((l) => l[0] === '+'));
  const deletedWhole = (s: StructSpan) => {
    if (!src.path.endsWith('.c') || !s.name || s.name === '(anonymous)') return false;
    const re = new RegExp(`\\b${s.name}\\b`);
    if (!removed.has(s.open) || added.some((l) => re.test(l))) return false;
    return originalLines.every((l, i) => !re.test(l) || removed.has(i + 1));
  };
  return [...hits]
    .filter(([span]) => !deletedWhole(span))
    .map(([span, lines]) => ({ span, lines: [...lines].sort((a, b) => a - b) }));
}

export const STRUCT_CHANGED = 'KLP-STRUCT-CHANGED';

/** The refusals for every struct/union definition the diff changes in these files. */
export function structChanged(files: ChangedSource[]): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const f of files) {
    for (const { span, lines } of changedStructs(f)) {
      const what = `${span.kind} ${span.name}`;
      out.push({
        severity: 'error',
        code: STRUCT_CHANGED,
        message: `the diff changes the definition of \`${what}\``,
        location: { file: f.path, line: lines[0]! },
        detail: [
          `${f.path}:${span.open}-${span.close}: ${what} { … }`,
          `changed at original line${lines.length === 1 ? '' : 's'} ${lines.join(', ')}`,
        ],
        why: `the running kernel already has instances of ${what} laid out the old way, and the code the patch does not replace reads them at the old offsets`,
        hint: 'keep the data structure as it is: use an existing field, a shadow variable (klp_shadow_alloc/klp_shadow_get) for new per-object state, or ship the change in a kernel update',
      });
    }
  }
  return out;
}

export const structChangedRule = {
  id: STRUCT_CHANGED,
  title: 'a diff hunk changing a file-scope struct or union definition (.c or header)',
  check: structChanged,
} satisfies RuleInfo & Record<string, unknown>;
