/*
 * The callbacks part of the registration: each kind's trampoline declared with the type struct
 * klp_callbacks wants, bound by asm label, and set in its klp_object; an object without callbacks
 * gets none, and the whole registration compiles the way registration.ts lays it out.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { registrationSource } from './registration.js';
import { callbacksSource } from './registration-callbacks.js';

test('each kind is declared with its type and set in the klp_object', () => {
  const c = callbacksSource(2, { pre_patch: '__suture_pre_patch_kmod_x_on_line_9', post_unpatch: 'tramp_b' });
  assert.deepEqual(c.decls, [
    'extern int suture_cb_2_pre_patch(struct klp_object *obj) __asm__("__suture_pre_patch_kmod_x_on_line_9");',
    'extern void suture_cb_2_post_unpatch(struct klp_object *obj) __asm__("tramp_b");',
  ]);
  assert.equal(
    c.initializer,
    ', .callbacks = { .pre_patch = suture_cb_2_pre_patch, .post_unpatch = suture_cb_2_post_unpatch }',
  );
  assert.deepEqual(callbacksSource(0, undefined), { decls: [], initializer: '' });
});

test('the registration puts callbacks in the object they belong to, also one without functions', () => {
  const src = registrationSource('p', false, [
    { object: 'vmlinux', functions: [{ oldName: 'f', newSymbol: 'f', sympos: 0 }] },
    { object: 'binfmt_misc', functions: [], callbacks: { post_patch: 'tramp' } },
  ]);
  assert.match(src, /\{ \.name = NULL, \.funcs = suture_klp_funcs_0 \},/);
  assert.match(
    src,
    /\{ \.name = "binfmt_misc", \.funcs = suture_klp_funcs_1, \.callbacks = \{ \.post_patch = suture_cb_1_post_patch \} \},/,
  );
  assert.match(src, /static struct klp_func suture_klp_funcs_1\[\] = \{\n\t\{ \}\n\};/);
});
