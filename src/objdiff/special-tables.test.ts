/* The special tables' entry sizes: from a kernel's structs, set by hand, bad settings refused. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SutureError } from '../diagnostic.js';
import { DEFAULT_TABLE_SIZES, tableSizesFromStructs, withTableEntries } from './special-tables.js';

describe('special table entry sizes', () => {
  test('a kernel`s struct sizes replace the defaults; a struct it lacks keeps the default', () => {
    const sizes = tableSizesFromStructs((s) => ({ alt_instr: 14, bug_entry: 16 })[s]);
    assert.equal(sizes['.altinstructions'], 14);
    assert.equal(sizes.__bug_table, 16);
    assert.equal(sizes.__jump_table, DEFAULT_TABLE_SIZES.__jump_table);
    assert.equal(sizes['.return_sites'], 4);
  });

  test('--table-entry SECTION=BYTES sets known tables; anything else is OBJDIFF-BAD-TABLE-ENTRY', () => {
    const s = withTableEntries(DEFAULT_TABLE_SIZES, ['.altinstructions=14', '__bug_table=16']);
    assert.equal(s['.altinstructions'], 14);
    assert.equal(s.__bug_table, 16);
    assert.equal(DEFAULT_TABLE_SIZES['.altinstructions'], 12, 'the base is not changed');
    for (const bad of [
      '.text=4',
      '.altinstructions=0',
      '.altinstructions',
      '__bug_table=x',
      '__bug_table=99999',
    ])
      assert.throws(
        () => withTableEntries(DEFAULT_TABLE_SIZES, [bad]),
        (e: unknown) => e instanceof SutureError && e.diagnostic.code === 'OBJDIFF-BAD-TABLE-ENTRY',
        bad,
      );
  });
});
