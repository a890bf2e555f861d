/*
 * The release artifact an operator installs: one self-contained tarball, unpacked at `/`.
 *
 *   opt/suture/                   bin/, dist/, package.json, README.md, the production node_modules and
 *                                 the rule texts of `suture explain` (the .md files under src/check/)
 *                                 (the same file set the VM harness puts in its initramfs: vm/initramfs.ts)
 *   opt/suture/node/bin/node      the Node 20 runtime the build ran with (Debian 12's nodejs is 18);
 *                                 it needs only libc, libstdc++ and libgcc, all in every Debian install
 *   usr/local/bin/suture          the wrapper on PATH
 *
 * The systemd units are not files in the tarball: `suture host install-service` and
 * `suture agent install-service` write them, pointing at /opt/suture/node/bin/node and
 * /opt/suture/bin/suture.js (the paths they run from). Files are owned by root in the archive.
 */

import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fail } from '../diagnostic.js';
import { VERSION } from '../version.js';
import { repoRoot, sutureFiles, VM_SUTURE_DIR } from '../vm/suture-files.js';

export const INSTALL_DIR = VM_SUTURE_DIR;
export const NODE_PATH = `${INSTALL_DIR}/node/bin/node`;
export const WRAPPER_PATH = '/usr/local/bin/suture';

const NOT_SHIPPED = /^dist\/(bench\/|(.*\/)?testing\/|.*fixture)/;

export function wrapperScript(): string {
  return `#!/bin/sh\nexec ${NODE_PATH} ${INSTALL_DIR}/bin/suture.js "$@"\n`;
}

export function tarballName(version = VERSION): string {
  return `suture-${version}-linux-x64.tar.gz`;
}

export interface PackageResult {
  path: string;
  files: number;
}

/** Build the tarball from the checkout `root` (built: dist/ present) into `outDir`. */
export async function buildTarball(outDir: string, root = repoRoot()): Promise<PackageResult> {
  const nodeMajor = Number(process.versions.node.split('.')[0]);
  if (nodeMajor < 20)
    fail('PACKAGE-NODE', `packaging runs on Node ${process.versions.node}; the tarball needs Node >= 20`, {
      hint: 'run `npm run package` with Node 20',
    });
  // what package.json's "files" leaves out of the npm package stays out of the tarball too
  const files = (await sutureFiles(root)).filter((f) => !NOT_SHIPPED.test(relative(root, f)));
  const stage = mkdtempSync(join(tmpdir(), 'suture-package-'));
  try {
    const put = (from: string, to: string, mode?: number) => {
      const dst = join(stage, to);
      mkdirSync(dirname(dst), { recursive: true });
      copyFileSync(from, dst);
      if (mode !== undefined) spawnSync('chmod', [mode.toString(8), dst]);
    };
    for (const f of files) put(f, join(INSTALL_DIR, relative(root, f)));
    put(join(root, 'README.md'), join(INSTALL_DIR, 'README.md'));
    // the rule texts `suture explain` reads at run time (src/check/ beside dist/check/)
    for (const f of readdirSync(join(root, 'src', 'check'), { recursive: true, encoding: 'utf8' }))
      if (f.endsWith('.md')) put(join(root, 'src', 'check', f), join(INSTALL_DIR, 'src', 'check', f));
    put(realpathSync(process.execPath), NODE_PATH, 0o755);
    const wrapper = join(stage, WRAPPER_PATH);
    mkdirSync(dirname(wrapper), { recursive: true });
    writeFileSync(wrapper, wrapperScript(), { mode: 0o755 });
    mkdirSync(outDir, { recursive: true });
    const out = join(outDir, tarballName());
    const r = spawnSync(
      'tar',
      ['-czf', out, '--owner=0', '--group=0', '--numeric-owner', '--sort=name', '-C', stage, 'opt', 'usr'],
      { encoding: 'utf8' },
    );
    if (r.status !== 0) fail('PACKAGE-TAR', 'tar failed', { detail: [r.stderr.trim()] });
    return { path: out, files: files.length + 3 };
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}
