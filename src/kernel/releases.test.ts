/*
 * Release and version resolution from apt's output (captured from Debian 12's mirror): which ABIs
 * exist, which Debian version a release is, which four packages make it, and the refusals — an
 * unknown release lists the known ones, a source of another version than the image is refused.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SutureError } from '../diagnostic.js';
import { parseMadison, parsePrintUris, parseSearchNames, parseShow } from './apt.js';
import { compilerFromDepends } from './compiler.js';
import {
  compareDebianVersions,
  imagePattern,
  packagesFor,
  parseRelease,
  releasesFromMadison,
  resolveFromMadison,
  upstreamOf,
} from './releases.js';

const MADISON = `linux-image-6.1.0-53-cloud-amd64-unsigned |  6.1.187-1 | http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
linux-image-6.1.0-54-cloud-amd64-unsigned |  6.1.190-1 | http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
linux-image-6.1.0-47-cloud-amd64-unsigned |  6.1.170-3 | http://deb.debian.org/debian bookworm/main amd64 Packages
linux-image-6.1.0-53-cloud-amd64-dbg |  6.1.187-1 | http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
linux-headers-6.1.0-53-cloud-amd64 |  6.1.187-1 | http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
linux-source-6.1 |  6.1.192-2 | http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
linux-source-6.1 |  6.1.187-1 | http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
linux-source-6.1 |  6.1.176-1 | http://deb.debian.org/debian bookworm/main amd64 Packages
     linux |  6.1.187-1 | http://deb.debian.org/debian-security bookworm-security/main Sources
N: Unable to locate package linux-image-foo`;

const URIS = `'http://deb.debian.org/debian-security/pool/updates/main/l/linux/linux-headers-6.1.0-53-cloud-amd64_6.1.187-1_amd64.deb' linux-headers-6.1.0-53-cloud-amd64_6.1.187-1_amd64.deb 1493172 SHA256:3c0dc49691c6481f60396b47effe165ac937579524865a2c7a69dc1e6c911828
'http://deb.debian.org/debian-security/pool/updates/main/l/linux/linux-source-6.1_6.1.187-1_all.deb' linux-source-6.1_6.1.187-1_all.deb 139246836 SHA256:76380ebac2fca37119a17be6affecaa90804959943a963af86be099ddffe5863
`;

const code = (c: string) => (e: unknown) => (e as SutureError).code === c;

test('apt-cache madison lines parse into package versions; source lines and noise are skipped', () => {
  const v = parseMadison(MADISON);
  assert.equal(v.length, 8);
  assert.deepEqual(v[0], {
    package: 'linux-image-6.1.0-53-cloud-amd64-unsigned',
    version: '6.1.187-1',
    origin: 'http://deb.debian.org/debian-security bookworm-security/main amd64 Packages',
  });
  assert.ok(!v.some((x) => x.package === 'linux'));
});

test('apt-get --print-uris lines parse into URI, size and SHA256', () => {
  const l = parsePrintUris(URIS);
  assert.equal(l.length, 2);
  assert.deepEqual(l[1], {
    package: 'linux-source-6.1',
    version: '6.1.187-1',
    uri: 'http://deb.debian.org/debian-security/pool/updates/main/l/linux/linux-source-6.1_6.1.187-1_all.deb',
    filename: 'linux-source-6.1_6.1.187-1_all.deb',
    size: 139246836,
    sha256: '76380ebac2fca37119a17be6affecaa90804959943a963af86be099ddffe5863',
  });
  assert.throws(
    () => parsePrintUris(`'http://x/a_1_all.deb' a_1_all.deb 10 MD5Sum:abc\n`),
    code('APT-NO-SHA256'),
  );
});

test('apt-cache search output gives package names', () => {
  assert.deepEqual(
    parseSearchNames(
      'linux-image-6.1.0-47-cloud-amd64-unsigned - Linux 6.1 for x86-64 cloud\nlinux-image-6.1.0-53-cloud-amd64-unsigned - Linux 6.1 for x86-64 cloud\n',
    ),
    ['linux-image-6.1.0-47-cloud-amd64-unsigned', 'linux-image-6.1.0-53-cloud-amd64-unsigned'],
  );
});

test('the four packages of a release: image, headers, dbg, and the source of its series', () => {
  assert.deepEqual(packagesFor('6.1.0-53-cloud-amd64'), {
    image: 'linux-image-6.1.0-53-cloud-amd64-unsigned',
    headers: 'linux-headers-6.1.0-53-cloud-amd64',
    dbg: 'linux-image-6.1.0-53-cloud-amd64-dbg',
    source: 'linux-source-6.1',
  });
  assert.deepEqual(packagesFor('6.12.117+deb13-amd64'), {
    image: 'linux-image-6.12.117+deb13-amd64-unsigned',
    headers: 'linux-headers-6.12.117+deb13-amd64',
    dbg: 'linux-image-6.12.117+deb13-amd64-dbg',
    source: 'linux-source-6.12',
  });
  assert.equal(parseRelease('6.1.0-53-cloud-amd64').abi, '53');
});

test('Debian versions order numerically and reduce to the upstream version', () => {
  assert.ok(compareDebianVersions('6.1.187-1', '6.1.192-2') < 0);
  assert.ok(compareDebianVersions('6.1.99-1', '6.1.187-1') < 0);
  assert.ok(compareDebianVersions('6.1.192-2', '6.1.192-1') > 0);
  assert.equal(compareDebianVersions('6.1.187-1', '6.1.187-1'), 0);
  assert.equal(upstreamOf('6.1.187-1'), '6.1.187');
  assert.equal(upstreamOf('1:6.1.187-1'), '6.1.187');
  assert.equal(upstreamOf('6.12.117-1~deb12u1'), '6.12.117');
  assert.ok(compareDebianVersions('6.12.115-1', '6.12.115-2') < 0);
});

test('the release list has each cloud ABI once with its Debian version, ordered by ABI', () => {
  const list = releasesFromMadison(parseMadison(MADISON));
  assert.deepEqual(
    list.map((r) => [r.release, r.debianVersion]),
    [
      ['6.1.0-47-cloud-amd64', '6.1.170-3'],
      ['6.1.0-53-cloud-amd64', '6.1.187-1'],
      ['6.1.0-54-cloud-amd64', '6.1.190-1'],
    ],
  );
});

test('a release resolves to four packages of one Debian version', () => {
  const lines = parseMadison(MADISON);
  const r = resolveFromMadison('6.1.0-53-cloud-amd64', lines, releasesFromMadison(lines));
  assert.equal(r.debianVersion, '6.1.187-1');
  assert.equal(r.upstreamVersion, '6.1.187');
  assert.equal(r.packages.source, 'linux-source-6.1');
});

test('an unknown release is refused with the list of known ones', () => {
  const lines = parseMadison(MADISON);
  assert.throws(
    () => resolveFromMadison('6.1.0-99-cloud-amd64', lines, releasesFromMadison(lines)),
    (e: unknown) => {
      const d = (e as SutureError).diagnostic;
      assert.equal(d.code, 'KERNEL-UNKNOWN-RELEASE');
      assert.ok(d.detail?.some((l) => l.includes('6.1.0-53-cloud-amd64') && l.includes('6.1.187-1')));
      return true;
    },
  );
});

test('a source whose version differs from the image is refused, never substituted', () => {
  // 6.1.0-54 is 6.1.190-1, but the mirror here only has linux-source-6.1 187, 192 and 176
  const lines = parseMadison(
    `${MADISON}\nlinux-image-6.1.0-54-cloud-amd64-dbg |  6.1.190-1 | http://x bookworm-security/main amd64 Packages\nlinux-headers-6.1.0-54-cloud-amd64 |  6.1.190-1 | http://x bookworm-security/main amd64 Packages`,
  );
  assert.throws(
    () => resolveFromMadison('6.1.0-54-cloud-amd64', lines, []),
    (e: unknown) => {
      const d = (e as SutureError).diagnostic;
      assert.equal(d.code, 'KERNEL-SOURCE-MISMATCH');
      assert.ok(d.detail?.some((l) => l.includes('6.1.190-1')));
      assert.ok(d.detail?.some((l) => l.includes('6.1.192-2')));
      return true;
    },
  );
});

test('a release whose debug symbols are missing is refused', () => {
  const lines = parseMadison(MADISON).filter((l) => !l.package.endsWith('-dbg'));
  assert.throws(() => resolveFromMadison('6.1.0-53-cloud-amd64', lines, []), code('KERNEL-PACKAGE-MISSING'));
});

// captured from bookworm-security (6.12 on Debian 12) and Suture's trixie index
const MADISON_612 = `linux-image-6.12.117+deb12-cloud-amd64-unsigned | 6.12.117-1~deb12u1 | http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
linux-image-6.12.115+deb12-cloud-amd64-unsigned | 6.12.115-2~deb12u1 | http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
linux-image-6.12.117+deb12-amd64-unsigned | 6.12.117-1~deb12u1 | http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
linux-image-6.12.117+deb12-rt-amd64-unsigned | 6.12.117-1~deb12u1 | http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
linux-headers-6.12.117+deb12-cloud-amd64 | 6.12.117-1~deb12u1 | http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
linux-image-6.12.117+deb12-cloud-amd64-dbg | 6.12.117-1~deb12u1 | http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
linux-source-6.12 | 6.12.117-1~deb12u1 | http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
linux-source-6.12 | 6.12.115-2~deb12u1 | http://deb.debian.org/debian-security bookworm-security/main amd64 Packages`;

const MADISON_TRIXIE = `linux-image-6.12.117+deb13-cloud-amd64-unsigned | 6.12.117-1 | http://deb.debian.org/debian trixie/main amd64 Packages
linux-image-6.12.117+deb13-cloud-amd64-unsigned | 6.12.117-1 | http://deb.debian.org/debian-security trixie-security/main amd64 Packages
linux-image-6.12.115+deb13.1-cloud-amd64-unsigned | 6.12.115-2 | http://deb.debian.org/debian-security trixie-security/main amd64 Packages
linux-image-6.12.115+deb13-cloud-amd64-unsigned | 6.12.115-1 | http://deb.debian.org/debian-security trixie-security/main amd64 Packages
linux-image-6.12.118+deb13-amd64-unsigned | 6.12.118-1 | http://deb.debian.org/debian-security trixie-security/main amd64 Packages`;

test('bookworm lists its 6.1 and 6.12 releases of both flavours, never rt', () => {
  const list = releasesFromMadison(parseMadison(`${MADISON}\n${MADISON_612}`), 'bookworm');
  assert.deepEqual(
    list.map((r) => [r.release, r.series, r.debianVersion]),
    [
      ['6.1.0-47-cloud-amd64', '6.1', '6.1.170-3'],
      ['6.1.0-53-cloud-amd64', '6.1', '6.1.187-1'],
      ['6.1.0-54-cloud-amd64', '6.1', '6.1.190-1'],
      ['6.12.115+deb12-cloud-amd64', '6.12', '6.12.115-2~deb12u1'],
      ['6.12.117+deb12-cloud-amd64', '6.12', '6.12.117-1~deb12u1'],
      ['6.12.117+deb12-amd64', '6.12', '6.12.117-1~deb12u1'],
    ],
  );
  assert.ok(list.every((r) => r.suite === 'bookworm'));
  // a trixie line in bookworm's answer is not a bookworm release
  assert.deepEqual(releasesFromMadison(parseMadison(MADISON_TRIXIE), 'bookworm'), []);
});

test('trixie lists its releases once each, the ABI bump .1 after the plain one', () => {
  const list = releasesFromMadison(parseMadison(MADISON_TRIXIE), 'trixie');
  assert.deepEqual(
    list.map((r) => [r.release, r.debianVersion, r.flavour]),
    [
      ['6.12.115+deb13-cloud-amd64', '6.12.115-1', 'cloud-amd64'],
      ['6.12.115+deb13.1-cloud-amd64', '6.12.115-2', 'cloud-amd64'],
      ['6.12.117+deb13-cloud-amd64', '6.12.117-1', 'cloud-amd64'],
      ['6.12.118+deb13-amd64', '6.12.118-1', 'amd64'],
    ],
  );
});

test('a 6.12 release resolves to its packages and the source of the same Debian version', () => {
  const lines = parseMadison(MADISON_612);
  const r = resolveFromMadison('6.12.117+deb12-cloud-amd64', lines, []);
  assert.deepEqual(r, {
    release: '6.12.117+deb12-cloud-amd64',
    suite: 'bookworm',
    debianVersion: '6.12.117-1~deb12u1',
    upstreamVersion: '6.12.117',
    packages: {
      image: 'linux-image-6.12.117+deb12-cloud-amd64-unsigned',
      headers: 'linux-headers-6.12.117+deb12-cloud-amd64',
      dbg: 'linux-image-6.12.117+deb12-cloud-amd64-dbg',
      source: 'linux-source-6.12',
    },
  });
});

test('a release the archive lacks is refused with the closest ones, nearest first', () => {
  const lines = parseMadison(`${MADISON}\n${MADISON_612}`);
  assert.throws(
    () => resolveFromMadison('6.12.116+deb12-cloud-amd64', lines, releasesFromMadison(lines, 'bookworm')),
    (e: unknown) => {
      const d = (e as SutureError).diagnostic;
      assert.equal(d.code, 'KERNEL-UNKNOWN-RELEASE');
      const listed = (d.detail ?? []).slice(1).map((l) => l.trim().split(/\s+/)[0]);
      assert.deepEqual(listed.slice(0, 2), ['6.12.117+deb12-cloud-amd64', '6.12.115+deb12-cloud-amd64']);
      assert.ok(d.detail?.some((l) => l.includes('6.12.117-1~deb12u1')));
      return true;
    },
  );
});

test('the search pattern of a suite matches its image packages and no other', () => {
  const re = (s: 'bookworm' | 'trixie') => new RegExp(imagePattern(s));
  for (const p of [
    'linux-image-6.1.0-53-cloud-amd64-unsigned',
    'linux-image-6.1.0-53-amd64-unsigned',
    'linux-image-6.12.117+deb12-cloud-amd64-unsigned',
  ])
    assert.ok(re('bookworm').test(p), p);
  for (const p of [
    'linux-image-6.12.117+deb13-amd64-unsigned',
    'linux-image-6.12.115+deb13.1-cloud-amd64-unsigned',
  ])
    assert.ok(re('trixie').test(p), p);
  for (const p of [
    'linux-image-6.12.117+deb12-rt-amd64-unsigned',
    'linux-image-6.12.117+deb13-cloud-amd64-unsigned',
    'linux-image-6.1.0-53-cloud-amd64-dbg',
  ])
    assert.ok(!re('bookworm').test(p), p);
});

test("a headers package's dependency names the compiler; apt-cache show parses into stanzas", () => {
  const show = parseShow(`Package: linux-headers-6.12.117+deb13-cloud-amd64
Version: 6.12.117-1
Depends: linux-base (>= 4.12~), linux-headers-6.12.117+deb13-common (= 6.12.117-1), linux-kbuild-6.12.117+deb13, gcc-14

Package: linux-headers-6.1.0-53-cloud-amd64
Version: 6.1.187-1
Depends: linux-headers-6.1.0-53-common (= 6.1.187-1), linux-kbuild-6.1 (>= 6.1.187-1), linux-compiler-gcc-12-x86
`);
  assert.equal(show.length, 2);
  assert.equal(compilerFromDepends(show[0]?.depends ?? ''), 'gcc-14');
  assert.equal(compilerFromDepends(show[1]?.depends ?? ''), 'gcc-12');
  assert.equal(compilerFromDepends('linux-base, kmod'), undefined);
});
