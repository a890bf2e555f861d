/*
 * The agent's module cache: `modules/<sha256>.ko` under the state directory, verified bytes only.
 *
 * A module is kept while the agent may still need it: it is offered by the last accepted answer (and
 * not revoked), or it is a patch this agent has applied (so an upgrade that fails can put the previous
 * version back). Everything else — revoked patches, superseded versions, refused downloads, `.part`
 * files of interrupted downloads — is deleted after each check-in, so a revoked module cannot be
 * loaded from the cache by anyone replaying an old answer, and the directory does not grow forever.
 */
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { CheckinResponse } from '../manifest/protocol.js';
import type { AgentState } from './state.js';

export function modulesDir(stateDir: string): string {
  return join(stateDir, 'modules');
}

export function moduleStorePath(stateDir: string, sha256: string): string {
  return join(modulesDir(stateDir), `${sha256}.ko`);
}

/** The sha256s the agent may still need after this answer. */
export function neededModules(state: AgentState, answer: CheckinResponse): Set<string> {
  const revoked = new Set(answer.revoked.map((r) => r.patchId));
  const keep = new Set(answer.offered.filter((o) => !revoked.has(o.patchId)).map((o) => o.sha256));
  for (const r of Object.values(state.patches)) {
    if ((r.outcome === 'applied' || r.outcome === 'transition') && !revoked.has(r.patchId))
      keep.add(r.sha256);
  }
  if (state.intent) keep.add(state.intent.sha256);
  return keep;
}

/** Delete every cached file not in `keep`; returns the names deleted. */
export function pruneModules(stateDir: string, keep: Set<string>): string[] {
  let names: string[];
  try {
    names = readdirSync(modulesDir(stateDir));
  } catch {
    return [];
  }
  const gone: string[] = [];
  for (const name of names) {
    const sha = /^([0-9a-f]{64})\.ko$/.exec(name)?.[1];
    if (sha && keep.has(sha)) continue;
    rmSync(join(modulesDir(stateDir), name), { force: true, recursive: true });
    gone.push(name);
  }
  return gone;
}
