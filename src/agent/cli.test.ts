/*
 * `suture agent enable|run|status` as an operator runs them (child processes of bin/suture.js) against
 * the real server, on this machine's real kernel identity. No patch is published, so nothing touches
 * the kernel: this is about enrollment, the check-in, the state directory and the three output formats.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { type ServerBackend, startFleetBackend } from './testing/fleet-backend.js';

const BIN = fileURLToPath(new URL('../../bin/suture.js', import.meta.url));
const haveNotes = (() => {
  try {
    return readFileSync('/sys/kernel/notes').length > 0 && existsSync('/proc/sys/kernel/osrelease');
  } catch {
    return false;
  }
})();

async function suture(args: string[], env: Record<string, string> = {}) {
  // async spawn: the server runs in this process and must keep answering
  return await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    const c = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
    });
    c.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    c.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

describe('suture agent CLI', {
  skip: haveNotes ? false : 'this machine exposes no /sys/kernel/notes (no build id)',
}, () => {
  let server: ServerBackend;
  before(async () => {
    server = await startFleetBackend();
  });
  after(async () => {
    await server?.stop();
  });

  test('status before enrollment says so; a bad --format is a clear error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'suture-agent-cli-'));
    const r = await suture(['agent', 'status', '--state-dir', dir]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^patch state: not enrolled/m);
    const bad = await suture(['agent', 'status', '--state-dir', dir, '--format', 'xml']);
    assert.equal(bad.status, 1, bad.stderr);
    assert.match(bad.stderr, /error\[CLI-BAD-FORMAT\]: --format xml is not one of text, json, yaml/);
    const run = await suture(['agent', 'run', '--once'], { SUTURE_AGENT_STATE: dir });
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stderr, /error\[AGENT-NOT-ENROLLED\]/);
    assert.match(run.stderr, /hint: run `suture agent enable <TOKEN> --server URL` first/);
  });

  test('a wrong token is refused by the server and changes nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'suture-agent-cli-'));
    const r = await suture(['agent', 'enable', 'not-a-token', '--server', server.url, '--state-dir', dir]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /enrollment failed: POST \/v1\/enroll: 4\d\d/);
    assert.equal(existsSync(join(dir, 'state.json')), false);
  });

  test('enable → run --once → status in text, json and yaml', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'suture-agent-cli-'));
    const token = await server.createToken('canary');
    const e = await suture(['agent', 'enable', token, '--server', server.url], { SUTURE_AGENT_STATE: dir });
    assert.equal(e.status, 0, e.stderr);
    assert.match(e.stdout, /^enrolled as m-[0-9a-f]{16} \(tier canary\)/);
    const run = await suture(['agent', 'run', '--once', '--state-dir', dir]);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /check-in ok/);

    const text = await suture(['agent', 'status', '--state-dir', dir]);
    const release = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
    assert.match(text.stdout, /^last check: \d+ seconds? ago$/m);
    assert.match(text.stdout, new RegExp(`^kernel: ${release.replace(/[.+]/g, '\\$&')}$`, 'm'));
    assert.match(text.stdout, /^server check-in: succeeded$/m);
    assert.match(text.stdout, /^patch state: (nothing to apply|kernel not supported)$/m);
    assert.match(text.stdout, /^patch version: none$/m);

    const json = JSON.parse(
      (await suture(['agent', 'status', '--state-dir', dir, '--format', 'json'])).stdout,
    );
    const yaml = parse((await suture(['agent', 'status', '--state-dir', dir, '--format', 'yaml'])).stdout);
    for (const s of [json, yaml]) {
      assert.equal(s.enrolled, true);
      assert.equal(s.tier, 'canary');
      assert.equal(s.kernel.release, release);
      assert.match(s.kernel.buildId, /^[0-9a-f]{40}$/);
      assert.equal(s.serverCheckin.state, 'succeeded');
    }
    assert.equal(yaml.machineId, json.machineId);

    // the server is gone: the check-in fails, the status says why, the exit status is still 0 (daemon)
    await server.stop();
    const down = await suture(['agent', 'run', '--once', '--state-dir', dir]);
    assert.equal(down.status, 0, down.stderr);
    const after = await suture(['agent', 'status', '--state-dir', dir]);
    assert.match(
      after.stdout,
      /^server check-in: failed: cannot reach http:\/\/127\.0\.0\.1:\d+: connection refused/m,
    );
    server = await startFleetBackend();
  });
});
