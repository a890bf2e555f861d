/*
 * Host status: one value describing the machine's livepatch state, for `suture list`, `suture
 * status` and the agent's report: the running kernel (release, build id), whether it supports
 * livepatching, the taint flags, every livepatch with its state (active, in transition, inactive and
 * replaced by which patch), what it patches, and the version Suture stored for it.
 */
import { existsSync } from 'node:fs';
import { type BadMark, badPatches } from './guard.js';
import { builtFor, runningKernel } from './identity.js';
import { readJournal, replacedBy } from './journal.js';
import { type Livepatch, livepatchRoot, readLivepatches } from './livepatch.js';
import { type ModeSetting, readMode } from './mode.js';
import { type HostRoots, resolveRoots } from './roots.js';
import { storedPatches } from './store.js';
import { readTaint, type Taint } from './taint.js';
import { progress, readPatchStates } from './tasks.js';

export interface LivepatchStatus extends Livepatch {
  /** for an inactive patch: the cumulative patch that replaced it, from the journal */
  replacedBy: string | undefined;
  /** version from the stored manifest or the journal, when Suture applied it */
  version: string | undefined;
}

export interface HostStatus {
  kernel: { release: string; buildId: string | undefined };
  livepatchSupported: boolean;
  taint: Taint | undefined;
  /** the patch whose transition is running, if any */
  transition: string | undefined;
  /** how far that transition is (root only: patch_state is readable by root) */
  transitionProgress: { target: 0 | 1; migrated: number; total: number } | undefined;
  patches: LivepatchStatus[];
  /** whether per-task patch states could be read (root only) */
  root: boolean;
  /** the kill switch in force (mode.ts) */
  mode: ModeSetting;
  /** patches the crash-loop guard marked bad (guard.ts), with why */
  bad: BadMark[];
  /** the patches kept for boot, and whether each was built for the running kernel */
  stored: StoredSummary[];
}

export interface StoredSummary {
  patch: string;
  version: string;
  release: string;
  /** built for the running kernel (release and build id) */
  forRunningKernel: boolean;
}

export function listLivepatches(partial?: Partial<HostRoots>): LivepatchStatus[] {
  const roots = resolveRoots(partial);
  const journal = readJournal(roots);
  const stored = new Map(storedPatches(roots).map((s) => [s.manifest.module.name, s.manifest.version]));
  return readLivepatches(roots).map((p) => {
    const applied = [...journal].reverse().find((e) => e.action === 'apply' && e.patch === p.name);
    return {
      ...p,
      replacedBy: p.state === 'inactive' ? replacedBy(journal, p.name) : undefined,
      version: stored.get(p.name) ?? applied?.version,
    };
  });
}

export function hostStatus(partial?: Partial<HostRoots>): HostStatus {
  const roots = resolveRoots(partial);
  const supported = existsSync(livepatchRoot(roots));
  const patches = supported ? listLivepatches(roots) : [];
  const moving = patches.find((p) => p.transition);
  let transitionProgress: HostStatus['transitionProgress'];
  if (moving && roots.uid === 0) {
    const target = moving.enabled ? 1 : 0;
    const p = progress(readPatchStates(roots), target);
    transitionProgress = { target, migrated: p.migrated, total: p.total };
  }
  const kernel = runningKernel(roots);
  const stored = storedPatches(roots).map((p) => ({
    patch: p.manifest.module.name,
    version: p.manifest.version,
    release: p.manifest.kernel.release,
    forRunningKernel: builtFor(p.manifest.kernel, kernel),
  }));
  return {
    kernel,
    livepatchSupported: supported,
    taint: readTaint(roots),
    transition: moving?.name,
    transitionProgress,
    patches,
    root: roots.uid === 0,
    mode: readMode(roots),
    bad: badPatches(roots),
    stored,
  };
}
