/*
 * Function prototypes as gcc saw them, read from its `-aux-info` file.
 *
 * With `-aux-info FILE`, gcc writes one line per function declared or defined in the unit, after
 * preprocessing, with types spelled out (`unsigned` → `unsigned int`, typedefs kept as written):
 *
 *   /* fs/proc/meminfo.c:35:NF *\/ static int meminfo_proc_show (struct seq_file *m, void *v); /* (m, v) ... *\/
 *
 * `F` marks a definition, `C` a declaration. The prototype is compared without parameter names, without
 * `static`/`extern`/`inline` and without top-level qualifiers of parameters (`int *const p`), so renaming
 * a parameter is not a signature change while changing a parameter's or the return type is.
 */

export interface Prototype {
  name: string;
  /** return type and parameter types, names removed: `int (struct seq_file *, void *)` */
  signature: string;
  /** the line as gcc wrote it, without the location comment */
  text: string;
  /** where gcc saw it (file as the compiler named it, line) */
  file: string;
  line: number;
  /** a definition (`F`), not only a declaration */
  defined: boolean;
}

const LINE_RE = /^\/\* (.+):(\d+):[NOI]([FC]) \*\/ (.*?);(?: \/\* \((.*?)\).*\*\/)?\s*$/;

/** Split at commas outside parentheses and brackets. */
function splitTopLevel(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const c of s) {
    if (c === '(' || c === '[') depth++;
    else if (c === ')' || c === ']') depth--;
    if (c === ',' && depth === 0) {
      out.push(cur.trim());
      cur = '';
    } else cur += c;
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}

/**
 * A parameter's type without its top-level qualifiers: `const int` → `int`, `char *const` → `char *`
 * (`const char *` keeps its const: it qualifies what is pointed to). Top-level qualifiers do not change
 * how the argument is passed, so adding one is not a signature change.
 */
function topLevelUnqualified(type: string): string {
  if (type.includes('(')) return type; // a function pointer: left as written
  const star = type.lastIndexOf('*');
  const head = type.slice(0, star + 1);
  const tail = type.slice(star + 1);
  const strip = (t: string) =>
    t
      .replace(/\b(const|volatile)\b/g, '')
      .replace(/\s+/g, ' ')
      .trim();
  return star < 0 ? strip(type) : `${head}${strip(tail) ? ` ${strip(tail)}` : ''}`.trim();
}

/** `int meminfo_proc_show (struct seq_file *m, void *v)` + names → `int (struct seq_file *, void *)`. */
export function normalise(decl: string, name: string, paramNames: string[]): string {
  const at = decl.search(new RegExp(`\\b${name} \\(`));
  if (at < 0) return decl.replace(/\s+/g, ' ').trim();
  const ret = decl
    .slice(0, at)
    .replace(/\b(static|extern|inline|__inline__|__inline)\b/g, '')
    .replace(/\s+/g, ' ')
    .trim();
  const open = at + name.length + 1;
  // the parameter list: up to the matching parenthesis
  let depth = 0;
  let close = open;
  for (let i = open; i < decl.length; i++) {
    if (decl[i] === '(') depth++;
    else if (decl[i] === ')' && --depth === 0) {
      close = i;
      break;
    }
  }
  const params = splitTopLevel(decl.slice(open + 1, close)).map((p, i) => {
    const n = paramNames[i];
    if (!n) return p.replace(/\s+/g, ' ');
    // the parameter's name is its last occurrence as a word (`int (*fn)(int)` keeps `fn` inside)
    const re = new RegExp(`\\b${n}\\b(?!.*\\b${n}\\b)`);
    return topLevelUnqualified(
      p
        .replace(re, '')
        .replace(/\s+/g, ' ')
        .replace(/\s*([*()[\]])\s*/g, '$1')
        .trim(),
    );
  });
  return `${ret} (${params.join(', ')})${decl.slice(close + 1).replace(/\s+/g, ' ')}`.trim();
}

/** Every prototype of an `-aux-info` file, by function name (a definition wins over a declaration). */
export function parseAuxInfo(text: string): Map<string, Prototype> {
  const out = new Map<string, Prototype>();
  for (const line of text.split('\n')) {
    const m = LINE_RE.exec(line);
    if (!m) continue;
    const decl = m[4]!;
    const name = /(\w+) \(/.exec(decl)?.[1];
    if (!name) continue;
    const defined = m[3] === 'F';
    const prev = out.get(name);
    if (prev?.defined && !defined) continue;
    const paramNames = (m[5] ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    out.set(name, {
      name,
      signature: normalise(decl, name, paramNames),
      text: decl,
      file: m[1]!,
      line: Number(m[2]),
      defined,
    });
  }
  return out;
}
