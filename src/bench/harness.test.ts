import assert from 'node:assert/strict';
import { test } from 'node:test';
import { median, percentile, renderRow } from './harness.js';

test('median of odd and even samples', () => {
  assert.equal(median([5, 1, 3]), 3);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.ok(Number.isNaN(median([])));
});

test('percentile picks the nearest-rank sample', () => {
  const xs = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(percentile(xs, 99), 99);
  assert.equal(percentile(xs, 50), 50);
});

test('a row prints the ratio against its baseline and whether the goal is met', () => {
  const line = renderRow({
    name: 'x',
    ours: 50,
    baseline: { name: 'readelf', value: 100 },
    goal: { value: 60 },
  });
  assert.match(line, /ratio 0\.50/);
  assert.match(line, /met/);
  assert.doesNotMatch(line, /NOT met/);
  assert.match(renderRow({ name: 'y', ours: 7, goal: { value: 5 } }), /NOT met/);
});
