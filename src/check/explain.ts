/*
 * The long text of every rule, for `suture explain RULE`: what the rule protects against, a minimal
 * patch that triggers it, and how to rewrite the patch so that it can be livepatched.
 *
 * Each rule's text is a Markdown file next to the rule's own file (`object/data-changed.md` beside
 * `object/data-changed.ts`), so the rule files keep only their code and the texts read well on their
 * own. A text starts with `# RULE-ID`, a `Severity:` line, then three sections: `## What it protects
 * against`, `## A patch that triggers it` (a ```diff block), `## How to rewrite the patch`. They are
 * read at run time from the source tree (`dist/check/` → `src/check/`), or from beside this file when
 * they were copied there.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fail } from '../diagnostic.js';

export const SECTIONS = [
  'What it protects against',
  'A patch that triggers it',
  'How to rewrite the patch',
] as const;

export interface RuleText {
  id: string;
  /** `error` (a refusal), `warning`, or `error or warning` for a rule an option relaxes */
  severity: string;
  /** the three sections by heading, without their headings */
  sections: Record<(typeof SECTIONS)[number], string>;
  /** the whole Markdown text */
  text: string;
  /** the .md file, relative to check/ */
  file: string;
}

/** Where the texts are: `src/check/` next to `dist/check/`, else this file's own directory. */
export function textsDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const src = join(here, '..', '..', 'src', 'check');
  return existsSync(src) ? src : here;
}

/** Parse one rule text (see the file comment); `file` names it in errors. */
export function parseRuleText(text: string, file: string): RuleText {
  const bad = (why: string): never =>
    fail('EXPLAIN-BAD-TEXT', `${file}: ${why}`, {
      location: { file },
      hint: 'start with `# RULE-ID`, a `Severity:` line, then the three `## ` sections',
    });
  const id =
    /^# ([A-Z]+(?:-[A-Z]+)+)\s*$/m.exec(text.split('\n')[0] ?? '')?.[1] ?? bad('no `# RULE-ID` first line');
  const severity = /^Severity: (.+)$/m.exec(text)?.[1]?.trim() ?? bad('no `Severity:` line');
  const parts = text.split(/^## /m).slice(1);
  const sections = {} as RuleText['sections'];
  for (const name of SECTIONS) {
    const part = parts.find((p) => p.startsWith(`${name}\n`));
    if (!part) bad(`no \`## ${name}\` section`);
    sections[name] = part!.slice(name.length + 1).trim();
  }
  return { id, severity, sections, text: text.trimEnd(), file };
}

/** Every rule text under `dir` (its source/, object/ and module/ groups), by rule id. */
export function loadRuleTexts(dir = textsDir()): Map<string, RuleText> {
  const out = new Map<string, RuleText>();
  for (const group of ['source', 'object', 'module']) {
    const d = join(dir, group);
    if (!existsSync(d)) continue;
    for (const name of readdirSync(d)
      .filter((f) => f.endsWith('.md'))
      .sort()) {
      const t = parseRuleText(readFileSync(join(d, name), 'utf8'), `${group}/${name}`);
      const other = out.get(t.id);
      if (other) fail('EXPLAIN-BAD-TEXT', `${t.id} is explained twice: ${other.file} and ${t.file}`);
      out.set(t.id, t);
    }
  }
  if (out.size === 0) {
    fail('EXPLAIN-NO-TEXTS', `no rule texts under ${dir}`, {
      why: 'the texts are the .md files beside the rules in src/check/{source,object,module}/, read at run time',
      hint: 'run suture from a checkout that has src/ next to dist/, or copy src/check/*/*.md beside dist/check/',
    });
  }
  return out;
}

/** The text of `id` (any case), or EXPLAIN-UNKNOWN-RULE listing every known id. */
export function ruleText(id: string, texts = loadRuleTexts()): RuleText {
  const t = texts.get(id.toUpperCase());
  if (t) return t;
  const known = [...texts.keys()].sort();
  return fail('EXPLAIN-UNKNOWN-RULE', `\`${id}\` is not a rule Suture knows`, {
    detail: [`known rules: ${known.join(', ')}`],
    hint: 'run `suture explain` for the list with a line about each',
  });
}
