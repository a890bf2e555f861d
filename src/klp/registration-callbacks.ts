/*
 * The callbacks part of the registration C: for each klp_object with callbacks, the trampolines the
 * author macros defined (carried in the diff objects, global) declared by asm label, and the
 * `.callbacks = { .pre_patch = …, … }` initializer of that klp_object. The kernel runs them in the
 * order Documentation/livepatch/callbacks.rst gives: pre_patch before the object is patched (a
 * non-zero return refuses it, and the module load fails with that error), post_patch after, pre_unpatch
 * before unpatching, post_unpatch after.
 */
import type { CallbackKind } from './author-records.js';

/** The callbacks of one klp object: each kind's trampoline symbol. */
export type ObjectCallbacks = Partial<Record<CallbackKind, string>>;

const SIGNATURE: Record<CallbackKind, string> = {
  pre_patch: 'int %s(struct klp_object *obj)',
  post_patch: 'void %s(struct klp_object *obj)',
  pre_unpatch: 'void %s(struct klp_object *obj)',
  post_unpatch: 'void %s(struct klp_object *obj)',
};

/** Declarations of object `i`'s trampolines and the initializer to put in its klp_object ('' if none). */
export function callbacksSource(
  i: number,
  callbacks: ObjectCallbacks | undefined,
): { decls: string[]; initializer: string } {
  const decls: string[] = [];
  const fields: string[] = [];
  for (const kind of Object.keys(SIGNATURE) as CallbackKind[]) {
    const symbol = callbacks?.[kind];
    if (!symbol) continue;
    const c = `suture_cb_${i}_${kind}`;
    decls.push(`extern ${SIGNATURE[kind].replace('%s', c)} __asm__(${JSON.stringify(symbol)});`);
    fields.push(`.${kind} = ${c}`);
  }
  return { decls, initializer: fields.length ? `, .callbacks = { ${fields.join(', ')} }` : '' };
}
