/*
 * `suture explain [RULE]` — the long text of a rule: what it protects against, a minimal patch that
 * triggers it, and how to rewrite the patch (shadow variable, callback, patching the callers,
 * `noinline`, ...). Without RULE, every rule with its severity and one line about it. An unknown id is
 * an EXPLAIN-UNKNOWN-RULE error listing the known ones. Texts live next to the rules (check/explain.ts).
 */
import type { Command } from 'commander';
import { loadRuleTexts, ruleText } from '../../check/explain.js';
import { ALL_RULES } from '../../check/rules.js';

/** `suture explain` without an argument: one line per rule of the book. */
export function ruleList(): string {
  const texts = loadRuleTexts();
  const width = Math.max(...ALL_RULES.map((r) => r.id.length));
  return ALL_RULES.map((r) => {
    const severity = texts.get(r.id)?.severity ?? '?';
    return `${r.id.padEnd(width)}  ${severity.padEnd(16)}  ${r.title}`;
  }).join('\n');
}

export function register(program: Command): void {
  program
    .command('explain')
    .description('explain a rule: what it protects against, a patch that triggers it, how to rewrite it')
    .argument('[rule]', 'rule id, e.g. KLP-DATA-CHANGED (default: list every rule)')
    .action((rule: string | undefined) => {
      if (rule === undefined) {
        process.stdout.write(`${ruleList()}\n\nsuture explain RULE tells more about one.\n`);
        return;
      }
      process.stdout.write(`${ruleText(rule).text}\n`);
    });
}
