/*
 * Boot and service, for real: a Debian guest (systemd as PID 1, its own disk across reboots) with
 * Suture installed from the release tarball as the README tells an operator, enrolled against the
 * real server on the host (10.0.2.2 from the guest). The same scenario on each (suite, kernel) row:
 *
 *   Debian 12 (bookworm) on 6.1.0-53-cloud-amd64, the default kernel: always;
 *   Debian 13 (trixie) on 6.12.117+deb13-cloud-amd64, its patch built with the gcc-14 trixie build
 *   root: when that kernel is cached or SUTURE_FETCH_TESTS asks for it (scripts/test.sh does).
 *
 *   install: tarball → /opt/suture; `suture host install-service`, `suture agent enable`,
 *            `suture agent install-service` — systemd starts the agent
 *   deliver: the meminfo patch (`suture build`: the blog's diff on 6.1, the same change made on the
 *            6.12 source otherwise) published to the machine's tier; the agent applies it
 *            (VMALLOCCHUNK in /proc/meminfo) and stores it for boot
 *   reboot:  same disk; the boot unit re-applied it before network-pre.target and before the agent
 *            started (systemd's own timestamps and the journal's order), so before any check-in;
 *            a stored copy whose build id is not the booted kernel's is skipped, not loaded
 *
 * The release tarball is built once for every row.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type ServerBackend, startFleetBackend } from '../../agent/testing/fleet-backend.js';
import { ensureKernel } from '../../kernel/fetch.js';
import { isCached } from '../../kernel/releases.js';
import { defaultRelease, type KernelTarget } from '../../kernel/target.js';
import { manifestSchema } from '../../manifest/manifest.js';
import { buildTarball } from '../../package/tarball.js';
import { meminfoPatch } from '../../pipeline/testing/build-scenarios.js';
import type { VmSession } from '../session.js';
import { DebianGuest } from './debian.js';
import { MEDIA_MOUNT, MOUNT_MEDIA } from './media.js';
import { GUEST_SUITES, type GuestSuite } from './root.js';

const MEMINFO = resolve(process.cwd(), '..', 'shared', 'corpus', 'blog', 'meminfo-string.patch');
const TRIXIE_612 = '6.12.117+deb13-cloud-amd64';

interface GuestRow {
  suite: GuestSuite;
  release: string;
}

const ROWS: GuestRow[] = [
  { suite: 'bookworm', release: defaultRelease() },
  { suite: 'trixie', release: TRIXIE_612 },
];

const work = mkdtempSync(join(tmpdir(), 'suture-guest-vm-'));
after(() => rmSync(work, { recursive: true, force: true }));

let tarball: Promise<string> | undefined;
/** The release tarball (`npm run package`'s), made once for all rows. */
function releaseTarball(): Promise<string> {
  tarball ??= buildTarball(join(work, 'release')).then((r) => r.path);
  return tarball;
}

/** One row's guest, server and patch, shared by its tests. */
interface Run {
  row: GuestRow;
  kernel: KernelTarget;
  server: ServerBackend;
  guest: DebianGuest;
  vm: VmSession;
  tarball: string;
  ko: string;
  manifestPath: string;
}

async function sh(run: Run, cmd: string, timeoutMs = 180_000): Promise<string> {
  const r = await run.vm.exec(cmd, { timeoutMs });
  assert.equal(r.problems.length, 0, `kernel problem during ${cmd}: ${JSON.stringify(r.problems)}`);
  assert.equal(r.exitCode, 0, `${cmd} exited ${r.exitCode}:\n${r.output}`);
  return r.output.replaceAll('\r', '');
}

async function eventually(run: Run, what: string, check: () => Promise<boolean>, ms = 240_000) {
  const t0 = Date.now();
  while (!(await check())) {
    if (Date.now() - t0 > ms) {
      const log = await run.vm.exec('journalctl -b -u suture-agent --no-pager | tail -n 40', {
        timeoutMs: 30_000,
      });
      assert.fail(`timed out after ${ms} ms waiting until ${what}\nagent journal:\n${log.output}`);
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
}

const patched = async (run: Run) =>
  (await sh(run, 'grep -c VMALLOCCHUNK /proc/meminfo || true')).trim() === '1';

/** systemd's monotonic timestamp (µs) of a unit property, 0 when it never happened this boot. */
async function stamp(run: Run, unit: string, prop: string): Promise<number> {
  return Number((await sh(run, `systemctl show -P ${prop} ${unit}`)).trim());
}

/** `suture build` of the meminfo change for the row's kernel (its own compiler): module, manifest. */
function buildMeminfo(kernel: KernelTarget, out: string): { ko: string; manifestPath: string } {
  mkdirSync(out, { recursive: true });
  const diff =
    kernel.release === defaultRelease() ? MEMINFO : meminfoPatch(kernel, join(out, 'meminfo.patch'));
  const cli = spawnSync(
    process.execPath,
    ['bin/suture.js', 'build', diff, '--kernel', kernel.release, '--name', 'meminfo', '-o', out],
    { encoding: 'utf8' },
  );
  assert.equal(cli.status, 0, cli.stderr);
  return {
    ko: join(out, 'livepatch-meminfo.ko'),
    manifestPath: join(out, 'livepatch-meminfo.manifest.json'),
  };
}

/** Start the row's pieces into `run` one by one (what started is stopped by the row's `after`). */
async function startRun(row: GuestRow, run: Partial<Run>): Promise<Run> {
  run.row = row;
  run.kernel = await ensureKernel(row.release);
  Object.assign(run, buildMeminfo(run.kernel, join(work, row.release, 'meminfo')));
  run.tarball = await releaseTarball();
  run.server = await startFleetBackend({ host: '127.0.0.1', checkinIntervalSeconds: 2 });
  run.guest = await DebianGuest.create({ kernel: run.kernel, suite: row.suite, media: [run.tarball] });
  run.vm = await run.guest.boot({ net: true });
  return run as Run;
}

async function installAndStart(run: Run): Promise<void> {
  assert.equal((await sh(run, 'cat /proc/1/comm')).trim(), 'systemd');
  const version = GUEST_SUITES[run.row.suite];
  assert.match(await sh(run, '. /etc/os-release; echo $VERSION_ID'), new RegExp(`^${version}$`, 'm'));
  assert.equal((await sh(run, 'uname -r')).trim(), run.kernel.release);
  const name = run.tarball.split('/').pop();
  await sh(run, `${MOUNT_MEDIA} && tar -xzf ${MEDIA_MOUNT}/${name} -C / && umount ${MEDIA_MOUNT}`);
  assert.equal((await sh(run, 'suture --version')).trim(), '0.1.0');
  // nothing from outside Debian but the tarball: the node it runs is its own
  assert.match(await sh(run, 'readlink -f /proc/self/exe; /opt/suture/node/bin/node --version'), /^v2\d\./m);
  assert.match(await sh(run, 'suture host install-service'), /enabled suture-livepatch\.service/);
  const token = await run.server.createToken('stable');
  const enrolled = await sh(run, `suture agent enable ${token} --server http://10.0.2.2:${run.server.port}`);
  assert.match(enrolled, /enrolled as m-[0-9a-f]{16}/);
  await sh(run, 'suture agent install-service');
  await eventually(
    run,
    'systemd runs the agent',
    async () => (await sh(run, 'systemctl is-active suture-agent.service || true')).trim() === 'active',
  );
  const unit = await sh(run, 'systemctl cat suture-livepatch.service');
  assert.match(
    unit,
    /^ExecStart=\/opt\/suture\/node\/bin\/node \/opt\/suture\/bin\/suture\.js host boot-apply/m,
  );
}

async function deliverAndStore(run: Run): Promise<void> {
  const manifest = manifestSchema.parse(JSON.parse(readFileSync(run.manifestPath, 'utf8')));
  await run.server.publish(run.ko, manifest, 'stable');
  await eventually(run, 'VMALLOCCHUNK shows in /proc/meminfo', () => patched(run));
  // stored once the transition has completed, a moment after the patch went live
  await eventually(run, 'the agent stored the patch for boot', async () =>
    (await sh(run, 'ls /var/lib/suture/patches 2>/dev/null || true')).includes('livepatch_meminfo'),
  );
  // a copy stored for another build of this kernel: boot-apply must skip it
  await sh(
    run,
    [
      'cd /var/lib/suture/patches',
      'src=$(ls | grep livepatch_meminfo | head -n 1)',
      'cp -a "$src" 900000-livepatch_meminfo_other',
      `sed -i 's/${run.kernel.buildId}/${'0'.repeat(40)}/' 900000-livepatch_meminfo_other/*.json`,
      'grep -l 0000000000000000000000000000000000000000 900000-livepatch_meminfo_other/*.json',
    ].join(' && '),
  );
}

async function rebootReapplies(run: Run): Promise<void> {
  await run.guest.shutdown(run.vm, 'reboot');
  run.vm = await run.guest.boot({ net: true });
  await sh(run, 'systemctl is-system-running --wait || true', 240_000);
  assert.ok(await patched(run), 'VMALLOCCHUNK is back after the reboot');
  const applied = await stamp(run, 'suture-livepatch.service', 'ActiveEnterTimestampMonotonic');
  const agent = await stamp(run, 'suture-agent.service', 'ExecMainStartTimestampMonotonic');
  const networkPre = await stamp(run, 'network-pre.target', 'ActiveEnterTimestampMonotonic');
  const online = await stamp(run, 'network-online.target', 'ActiveEnterTimestampMonotonic');
  assert.ok(applied > 0 && agent > 0 && online > 0, `${applied} ${agent} ${online}`);
  assert.ok(applied <= networkPre, `boot unit done at ${applied} µs, network-pre at ${networkPre} µs`);
  assert.ok(applied < online, `boot unit done at ${applied} µs, network-online at ${online} µs`);
  assert.ok(applied < agent, `boot unit done at ${applied} µs, the agent started at ${agent} µs`);
  // the journal tells the same order: boot-apply's outcome, then the agent's start
  const journal = await sh(
    run,
    'journalctl -b -o cat --no-pager -u suture-livepatch.service -u suture-agent.service',
  );
  const lines = journal.split('\n');
  const appliedLine = lines.findIndex((l) => /^livepatch_meminfo: applied/.test(l));
  const agentLine = lines.findIndex((l) =>
    /Started suture-agent\.service|Started .*[Ss]uture.*agent/.test(l),
  );
  assert.ok(appliedLine >= 0, journal);
  assert.ok(agentLine > appliedLine, journal);
  // the copy for another build: skipped with both build ids, never loaded
  const skipped = lines.find((l) => l.startsWith('livepatch_meminfo: skipped'));
  assert.ok(skipped?.includes(`(${'0'.repeat(12)})`), journal);
  assert.ok(skipped?.includes(`(${run.kernel.buildId.slice(0, 12)})`), journal);
  assert.equal((await sh(run, 'ls /sys/kernel/livepatch')).trim(), 'livepatch_meminfo');
}

function guestRow(row: GuestRow): void {
  const title = `Debian ${GUEST_SUITES[row.suite]} guest on ${row.release}: services, agent delivery, reboot re-applies before the agent`;
  if (row.release !== defaultRelease() && !isCached(row.release) && !process.env.SUTURE_FETCH_TESTS) {
    test(title, (t) =>
      t.skip(`${row.release} is not cached and SUTURE_FETCH_TESTS is unset (scripts/test.sh sets it)`),
    );
    return;
  }
  describe(title, { timeout: 1_800_000 }, () => {
    const parts: Partial<Run> = {};
    let run: Run | undefined;
    const the = (): Run => run ?? assert.fail('the guest did not start');
    before(async () => {
      run = await startRun(row, parts);
    });
    after(async () => {
      await parts.vm?.close();
      parts.guest?.dispose();
      await parts.server?.stop();
    });
    test('installed from the tarball, the units start under systemd', () => installAndStart(the()));
    test('the agent applies the published meminfo patch and stores it for boot', () =>
      deliverAndStore(the()));
    test('after a reboot on the same disk the patch is live before the agent and the network', () =>
      rebootReapplies(the()));
  });
}

for (const row of ROWS) guestRow(row);
