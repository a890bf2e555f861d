import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AGENT_UNIT_NAME, installAgentUnit, renderAgentUnit } from './service.js';

const opts = {
  node: '/usr/bin/node',
  suture: '/opt/suture/bin/suture.js',
  stateDir: '/var/lib/suture/agent',
};

/** `[Section]` → key → values, as systemd reads a unit file (comments and blank lines skipped). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const header = /^\[(\w+)\]$/.exec(line);
    if (header) {
      current = new Map();
      sections.set(header[1]!, current);
      continue;
    }
    const kv = /^(\w+)=(.*)$/.exec(line);
    assert.ok(kv && current, `not a unit line: ${line}`);
    current.set(kv[1]!, [...(current.get(kv[1]!) ?? []), kv[2]!]);
  }
  return sections;
}

test('the agent unit runs `suture agent run` on the enrolled state, after the network, restarted on failure', () => {
  const unit = parseUnit(renderAgentUnit(opts));
  assert.deepEqual([...unit.keys()], ['Unit', 'Service', 'Install']);
  assert.deepEqual(unit.get('Service')?.get('ExecStart'), [
    '/usr/bin/node /opt/suture/bin/suture.js agent run --state-dir /var/lib/suture/agent',
  ]);
  assert.deepEqual(unit.get('Service')?.get('Restart'), ['on-failure']);
  assert.deepEqual(unit.get('Unit')?.get('ConditionPathExists'), ['/var/lib/suture/agent/state.json']);
  assert.match(unit.get('Unit')?.get('After')?.[0] ?? '', /network-online\.target/);
  assert.deepEqual(unit.get('Install')?.get('WantedBy'), ['multi-user.target']);
});

test('paths with spaces are quoted in ExecStart', () => {
  const unit = parseUnit(renderAgentUnit({ ...opts, stateDir: '/srv/suture agent' }));
  assert.equal(
    unit.get('Service')?.get('ExecStart')?.[0],
    '/usr/bin/node /opt/suture/bin/suture.js agent run --state-dir "/srv/suture agent"',
  );
});

test('installAgentUnit writes the unit file into the unit directory, creating it', () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'suture-unit-')), 'system');
  const path = installAgentUnit(dir, opts);
  assert.equal(path, join(dir, AGENT_UNIT_NAME));
  assert.equal(readFileSync(path, 'utf8'), renderAgentUnit(opts));
});

test('--ca puts the CA in the environment of the agent (Node reads NODE_EXTRA_CA_CERTS at start)', () => {
  const plain = parseUnit(renderAgentUnit(opts));
  assert.ok(
    !(plain.get('Service')?.get('Environment') ?? []).some((e) => e.startsWith('NODE_EXTRA_CA_CERTS')),
  );
  const unit = parseUnit(renderAgentUnit({ ...opts, caFile: '/etc/suture/ca.pem' }));
  assert.deepEqual(unit.get('Service')?.get('Environment'), [
    'SUTURE_AGENT_STATE=/var/lib/suture/agent',
    'NODE_EXTRA_CA_CERTS=/etc/suture/ca.pem',
  ]);
});
