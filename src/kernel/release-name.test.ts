/*
 * Release names as `uname -r` prints them on Debian 12 and 13: the three naming schemes parse into
 * series, suite, flavour and ABI; other flavours and non-releases are refused; the closest known
 * releases to a missing one come nearest first.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SutureError } from '../diagnostic.js';
import { closestReleases, compareReleases, parseRelease } from './release-name.js';

const bad = (e: unknown) => (e as SutureError).code === 'KERNEL-BAD-RELEASE';

test("Debian 12's 6.1 names: series, ABI, flavour, suite bookworm", () => {
  assert.deepEqual(parseRelease('6.1.0-53-cloud-amd64'), {
    release: '6.1.0-53-cloud-amd64',
    series: '6.1',
    suite: 'bookworm',
    flavour: 'cloud-amd64',
    abi: '53',
    order: [53],
  });
  assert.equal(parseRelease('6.1.0-53-amd64').flavour, 'amd64');
});

test('6.12 names carry the upstream version and the Debian release they were built for', () => {
  assert.deepEqual(parseRelease('6.12.117+deb12-cloud-amd64'), {
    release: '6.12.117+deb12-cloud-amd64',
    series: '6.12',
    suite: 'bookworm',
    flavour: 'cloud-amd64',
    abi: '117+deb12',
    upstream: '6.12.117',
    order: [117, 0],
  });
  const t = parseRelease('6.12.115+deb13.1-amd64');
  assert.equal(t.suite, 'trixie');
  assert.equal(t.flavour, 'amd64');
  assert.equal(t.abi, '115+deb13.1');
  assert.equal(t.upstream, '6.12.115');
  assert.deepEqual(t.order, [115, 1]);
});

test('other flavours, unknown Debian releases and non-releases are refused with an example', () => {
  for (const r of [
    '',
    'foo',
    '6.1.187',
    '6.1.0-53',
    '6.1.0-53-cloud-amd64; rm -rf /',
    '../6.1.0-53-cloud-amd64',
    '6.12.117+deb12-rt-amd64',
    '6.1.0-53-rt-amd64',
    '6.12.117+deb11-amd64',
    '6.12.117+deb13-',
    '6.12.117-deb13-amd64',
  ]) {
    assert.throws(() => parseRelease(r), bad, r);
  }
  assert.throws(
    () => parseRelease('6.12.117+deb13-rt-amd64'),
    (e: unknown) => /rt/.test((e as SutureError).diagnostic.why ?? '') && bad(e),
  );
});

test('releases order by suite, series, flavour, then ABI (the .1 bump after the plain one)', () => {
  const sorted = [
    '6.12.115+deb13.1-cloud-amd64',
    '6.12.117+deb12-cloud-amd64',
    '6.1.0-9-cloud-amd64',
    '6.12.115+deb13-cloud-amd64',
    '6.1.0-53-cloud-amd64',
    '6.1.0-53-amd64',
  ].sort(compareReleases);
  assert.deepEqual(sorted, [
    '6.1.0-9-cloud-amd64',
    '6.1.0-53-cloud-amd64',
    '6.1.0-53-amd64',
    '6.12.117+deb12-cloud-amd64',
    '6.12.115+deb13-cloud-amd64',
    '6.12.115+deb13.1-cloud-amd64',
  ]);
});

test('the closest releases: same flavour, suite and series first, nearest ABI first', () => {
  const known = [
    '6.1.0-53-cloud-amd64',
    '6.1.0-47-cloud-amd64',
    '6.12.107+deb12-cloud-amd64',
    '6.12.117+deb12-cloud-amd64',
    '6.12.117+deb12-amd64',
    '6.12.117+deb13-cloud-amd64',
  ];
  assert.deepEqual(closestReleases('6.12.116+deb12-cloud-amd64', known, 3), [
    '6.12.117+deb12-cloud-amd64',
    '6.12.107+deb12-cloud-amd64',
    '6.1.0-53-cloud-amd64',
  ]);
  assert.deepEqual(closestReleases('6.1.0-52-cloud-amd64', known, 2), [
    '6.1.0-53-cloud-amd64',
    '6.1.0-47-cloud-amd64',
  ]);
  assert.equal(closestReleases('6.12.120+deb12-amd64', known, 1)[0], '6.12.117+deb12-amd64');
});
