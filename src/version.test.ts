// The one version string is the one package.json carries, as --version and the agent report it.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { AGENT_VERSION } from './agent/checkin.js';
import { buildProgram } from './cli/main.js';
import { VERSION } from './version.js';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

test("VERSION is package.json's version, and the CLI and the agent say the same", async () => {
  assert.equal(VERSION, pkg.version);
  assert.equal(AGENT_VERSION, pkg.version);
  const program = await buildProgram('');
  assert.equal(program.version(), pkg.version);
});
