/*
 * Another commit of this checkout, built, for benchmarks that compare against it in the same run.
 *
 * A refactoring promises "no regression": the honest baseline is the same measurement on the commit
 * before it, on the same machine, interleaved with ours so that load drifts hit both alike. This makes
 * a detached git worktree of REF (default `HEAD~1`, or `SUTURE_BENCH_BASE`) in a temporary directory,
 * shares this checkout's node_modules, compiles it with tsc, and hands back its `bin/suture.js`.
 * Nothing of it outlives `dispose()`.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export interface BuiltCommit {
  /** the ref as given and the commit it named */
  ref: string;
  commit: string;
  /** `bin/suture.js` of that commit */
  cli: string;
  dispose(): void;
}

function git(args: string[], cwd: string): { ok: boolean; out: string } {
  const r = spawnSync('git', args, { cwd, encoding: 'utf8' });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
}

/** The commit REF of the checkout at `repo`, built; or the reason it cannot be (not a checkout, no such ref, tsc failed). */
export function builtCommit(
  repo = process.cwd(),
  ref = process.env.SUTURE_BENCH_BASE ?? 'HEAD~1',
): BuiltCommit | { reason: string } {
  const commit = git(['rev-parse', '--verify', `${ref}^{commit}`], repo);
  if (!commit.ok) return { reason: `${repo} has no commit ${ref} (${commit.out || 'not a git checkout'})` };
  const modules = resolve(repo, 'node_modules');
  if (!existsSync(modules)) return { reason: `${modules} is missing: run scripts/setup.sh first` };
  const dir = mkdtempSync(join(tmpdir(), 'suture-bench-base-'));
  const dispose = () => {
    git(['worktree', 'remove', '--force', dir], repo);
    rmSync(dir, { recursive: true, force: true });
  };
  const add = git(['worktree', 'add', '--detach', dir, commit.out], repo);
  if (!add.ok) {
    dispose();
    return { reason: `git worktree add ${ref}: ${add.out}` };
  }
  symlinkSync(modules, join(dir, 'node_modules'));
  const tsc = spawnSync(
    process.execPath,
    [join(modules, 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'],
    {
      cwd: dir,
      encoding: 'utf8',
    },
  );
  if (tsc.status !== 0) {
    dispose();
    return { reason: `${ref} does not compile: ${(tsc.stdout + tsc.stderr).trim().split('\n')[0]}` };
  }
  return { ref, commit: commit.out, cli: join(dir, 'bin', 'suture.js'), dispose };
}
