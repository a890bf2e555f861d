/*
 * A refusal: a rule of this folder saying that a change cannot be carried by a livepatch.
 *
 * Object rules look at a finished object comparison and return their diagnostics, so every problem of
 * a pair is shown at once (rules.ts). Source and module rules decide inside a stage that cannot go on
 * (a diff adding an assembly file has no units to compile), so the stage throws the rule's diagnostic as
 * a Refusal: a SutureError whose code is the rule id. The pipeline gathers refusals into its BuildRefused
 * by their type; no other error ever becomes one.
 */
import { type Diagnostic, SutureError } from '../diagnostic.js';

/** What every rule of check/ declares: its stable id (the diagnostic code) and what it refuses. */
export interface RuleInfo {
  id: string;
  title: string;
}

/** The diagnostic of a rule, thrown by the stage that found it. */
export class Refusal extends SutureError {
  constructor(diagnostic: Diagnostic) {
    super({ ...diagnostic, severity: 'error' });
    this.name = 'Refusal';
  }
}

/** Throw a rule's diagnostic as a refusal. */
export function refuse(diagnostic: Diagnostic): never {
  throw new Refusal(diagnostic);
}

export function isRefusal(e: unknown): e is Refusal {
  return e instanceof Refusal;
}
