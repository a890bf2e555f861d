/*
 * A build the safety rules stopped: `BuildRefused` carries every refusal diagnostic (its rule id as
 * the code) and the warnings known then, so the CLI and the corpus runner can show each rule.
 */
import { type Diagnostic, SutureError } from '../diagnostic.js';

/** A build stopped by safety rules: each refusal is a diagnostic with its rule id as code. */
export class BuildRefused extends SutureError {
  readonly refusals: Diagnostic[];
  /** warnings of the checks known when the build was refused */
  readonly warnings: Diagnostic[];
  constructor(refusals: Diagnostic[], partial: { summary: string[]; warnings?: Diagnostic[] }) {
    super({
      code: 'BUILD-REFUSED',
      message: `the patch cannot be livepatched safely (${refusals.length} refusal${refusals.length === 1 ? '' : 's'}: ${[...new Set(refusals.map((r) => r.code))].join(', ')})`,
      detail: partial.summary,
      hint: 'see each refusal above for why and what to do',
    });
    this.refusals = refusals;
    this.warnings = partial.warnings ?? [];
  }
}
