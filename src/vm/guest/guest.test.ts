/*
 * The Debian guest's pure parts: content addresses of the root and the image (per suite), the
 * channel script's protocol markers, the qemu command line for a disk boot. Booting it is
 * reboot.vm.test.ts's job.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import type { KernelTarget } from '../../kernel/target.js';
import { qemuArgs } from '../qemu.js';
import { CTL_SCRIPT, CTL_UNIT_TEXT } from './channel.js';
import { guestImageEntryName } from './image.js';
import { GUEST_PACKAGES, GUEST_SUITES, guestRootEntryName, guestRootSpec } from './root.js';

test('the guest root is addressed by suite, packages and mirror; the image also by kernel build id', () => {
  const spec = guestRootSpec();
  assert.deepEqual(spec.packages, GUEST_PACKAGES);
  const name = guestRootEntryName(spec);
  assert.match(name, /^guest-root-bookworm-[0-9a-f]{24}$/);
  assert.equal(guestRootEntryName({ ...spec, packages: [...spec.packages].reverse() }), name);
  assert.notEqual(guestRootEntryName({ ...spec, packages: [...spec.packages, 'curl'] }), name);
  assert.notEqual(guestRootEntryName({ ...spec, mirror: 'http://mirror.example/debian' }), name);
  const k = { release: '6.1.0-53-cloud-amd64', buildId: 'a'.repeat(40) } as KernelTarget;
  const img = guestImageEntryName(k, spec);
  assert.match(img, /^guest-image-bookworm-[0-9a-f]{24}$/);
  assert.notEqual(guestImageEntryName({ ...k, buildId: 'b'.repeat(40) } as KernelTarget, spec), img);
});

test('a Debian 13 root has its own address, the same packages, and its own image per kernel', () => {
  assert.deepEqual(GUEST_SUITES, { bookworm: '12', trixie: '13' });
  const trixie = guestRootSpec('trixie');
  assert.equal(trixie.suite, 'trixie');
  assert.deepEqual(trixie.packages, GUEST_PACKAGES);
  assert.equal(trixie.mirror, guestRootSpec().mirror);
  const name = guestRootEntryName(trixie);
  assert.match(name, /^guest-root-trixie-[0-9a-f]{24}$/);
  assert.notEqual(name.slice(-24), guestRootEntryName(guestRootSpec()).slice(-24));
  const k = { release: '6.12.117+deb13-cloud-amd64', buildId: 'c'.repeat(40) } as KernelTarget;
  const img = guestImageEntryName(k, trixie);
  assert.match(img, /^guest-image-trixie-[0-9a-f]{24}$/);
  assert.notEqual(img.slice(-24), guestImageEntryName(k, guestRootSpec()).slice(-24));
});

test('the channel script is valid bash and speaks the harness protocol with the cmdline nonce', () => {
  const r = spawnSync('bash', ['-n'], { input: CTL_SCRIPT, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(CTL_SCRIPT, /suture\\\.nonce=/);
  for (const m of ['SUTURE-READY', 'SUTURE-BEGIN', 'SUTURE-END']) assert.ok(CTL_SCRIPT.includes(m), m);
  assert.match(CTL_UNIT_TEXT, /^ExecStart=\/usr\/local\/sbin\/suture-vm-ctl$/m);
  assert.match(CTL_UNIT_TEXT, /^DefaultDependencies=no$/m);
});

test('a disk boot puts the disk on virtio-blk before the media, and both after the kernel args', () => {
  const a = qemuArgs({
    vmlinuz: '/k',
    initrd: '/i',
    memoryMb: 1024,
    net: true,
    interactive: false,
    disk: '/d.qcow2',
    media: '/m.img',
    append: 'root=/dev/vda',
  });
  const drives = a.flatMap((x, i) => (x === '-drive' ? [a[i + 1]] : []));
  assert.deepEqual(drives, [
    'file=/d.qcow2,if=virtio,format=qcow2,cache=unsafe',
    'file=/m.img,if=virtio,format=raw,readonly=on',
  ]);
  assert.match(a[a.indexOf('-append') + 1] ?? '', /root=\/dev\/vda/);
});
