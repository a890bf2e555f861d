/*
 * The VM's initramfs, assembled from layers that the kernel unpacks one after another.
 *
 *   base    static busybox, /init and the DHCP hook            (cached; a few hundred KB)
 *   node    the Node runtime: the binary, its shared libraries (cached; ~100 MB, uncompressed;
 *           and the dynamic loader                              only with withSuture)
 *   suture  this checkout: bin/, dist/, package.json and the   (cached; only with withSuture)
 *           production node_modules, plus /bin/suture
 *   run     per boot: the guest config, the requested modules  (never cached)
 *           with a modules.dep for them, the caller's files
 *
 * Each layer is a newc archive (gzip'd, but for the Node one); the kernel accepts them concatenated,
 * later entries winning. A cached layer is named by the SHA-256 of what went into it (file paths,
 * sizes, mtimes and our own layout version), so a rebuilt `dist/` or an upgraded Node makes a new
 * layer and an unchanged one is reused: a boot with Node costs a file copy, not a 100 MB compression.
 * Superseded layers are pruned, so rebuilding dist/ all day does not fill the disk (layer-cache.ts).
 * What the suture layer carries is suture-files.ts's file set.
 */
import { spawnSync } from 'node:child_process';
import { createReadStream, createWriteStream, existsSync, realpathSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, join, posix, relative } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fail } from '../diagnostic.js';
import type { KernelTarget } from '../kernel/target.js';
import { CpioArchive } from './cpio.js';
import { type GuestConfig, INIT_SCRIPT, renderGuestConfig, UDHCPC_SCRIPT } from './guest.js';
import { cachedLayer, type Layer, sha, statKey } from './layer-cache.js';
import {
  builtinModules,
  type ModuleDeps,
  renderModulesDep,
  resolveModules,
  targetModuleDeps,
} from './modules.js';
import { repoRoot, sutureFiles, VM_SUTURE_DIR, walkFiles } from './suture-files.js';

export interface FileSpec {
  /** a file or directory on the host */
  from: string;
  /** where it lands in the VM (default `/<basename of from>`) */
  to?: string;
}

export interface InitramfsSpec {
  kernel: KernelTarget;
  guest: Omit<GuestConfig, 'load'>;
  /** modules to place and load at boot (names, dependencies added) */
  modules?: readonly string[];
  /** modules to place only (the guest can `modprobe` them) */
  placeModules?: readonly string[];
  files?: readonly FileSpec[];
  withSuture?: boolean;
  /** V8 flags for `node` in the VM (with withSuture); default none */
  nodeFlags?: readonly string[];
  /** extra small files written into the run layer (path in the VM → content) */
  extra?: ReadonlyMap<string, { data: string | Buffer; mode?: number }>;
  /** where the per-run layer and the concatenated image are written */
  workDir: string;
}

export interface Initramfs {
  /** the concatenated image handed to QEMU's -initrd */
  path: string;
  bytes: number;
  layers: Layer[];
  /** module paths (relative to /lib/modules/<release>) loaded by /init, in order */
  loaded: string[];
}

export const BUSYBOX = '/bin/busybox';

/** Static busybox + /init. */
export async function baseLayer(): Promise<Layer> {
  if (!existsSync(BUSYBOX)) {
    fail('VM-NO-BUSYBOX', `${BUSYBOX} not found`, { hint: 'apt-get install busybox-static' });
  }
  const ldd = spawnSync('ldd', [BUSYBOX], { encoding: 'utf8' });
  if (ldd.status === 0 && /=>/.test(ldd.stdout)) {
    fail('VM-NO-BUSYBOX', `${BUSYBOX} is dynamically linked`, {
      why: 'the initramfs has no C library for it',
      hint: 'apt-get install busybox-static',
    });
  }
  const key = `${await statKey([BUSYBOX])}\n${sha(INIT_SCRIPT, UDHCPC_SCRIPT)}`;
  return cachedLayer('base', key, async () =>
    new CpioArchive()
      .dir('bin')
      .hostFile('bin/busybox', BUSYBOX, 0o755)
      .symlink('bin/sh', 'busybox')
      .file('init', INIT_SCRIPT, 0o755)
      .file('suture/udhcpc.sh', UDHCPC_SCRIPT, 0o755)
      .dir('proc')
      .dir('sys')
      .dir('dev')
      .dir('tmp', 0o1777)
      .dir('root', 0o700)
      .dir('etc')
      .file('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\n')
      .file('etc/group', 'root:x:0:\n'),
  );
}

/** The Node binary running us, its shared libraries and the dynamic loader, at their host paths. */
export function nodeRuntimeFiles(node = realpathSync(process.execPath)): string[] {
  const r = spawnSync('ldd', [node], { encoding: 'utf8' });
  if (r.status !== 0) fail('VM-LDD', `ldd ${node} failed`, { detail: [r.stderr.trim()] });
  const libs: string[] = [];
  for (const line of r.stdout.split('\n')) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m?.[1]) libs.push(m[1]);
  }
  if (!libs.some((l) => l.includes('ld-linux'))) libs.push('/lib64/ld-linux-x86-64.so.2');
  return [node, ...new Set(libs)];
}

export async function nodeLayer(): Promise<Layer> {
  const files = nodeRuntimeFiles();
  const [node, ...libs] = files as [string, ...string[]];
  return cachedLayer('node', await statKey(files), async () => {
    const a = new CpioArchive().hostFile('usr/bin/node', node, 0o755);
    // the loader is found by its absolute path (PT_INTERP), the libraries by the paths ldd reported
    for (const l of libs) a.hostFile(l, realpathSync(l), 0o755);
    return a;
  });
}

/**
 * V8 flags that skip the optimising compilers, for `nodeFlags`. Measured on `suture --version` in one
 * VM, alternating: on a quiet host they change nothing (4.2 s either way; 5.3 vs 4.8 s); on a host
 * loaded ~10x over its cores they halved it (4.9-15 s vs 9-23 s). So they are opt-in, not the default.
 */
export const VM_NODE_FLAGS = ['--no-opt', '--no-sparkplug', '--max-lazy'];

/** /usr/local/bin/node (first on the guest's PATH): the real node with `flags`. */
export function nodeWrapper(flags: readonly string[]): string {
  for (const f of flags) {
    if (!/^--[a-z0-9-]+(=[A-Za-z0-9_.,:/-]+)?$/.test(f))
      fail('VM-NODE-FLAG', `not a node flag: ${JSON.stringify(f)}`);
  }
  return `#!/bin/sh\nexec /usr/bin/node ${flags.join(' ')} "$@"\n`;
}

export async function sutureLayer(root = repoRoot()): Promise<Layer> {
  const files = await sutureFiles(root);
  // `node` from PATH: /usr/local/bin/node when the run layer adds V8 flags (see nodeWrapper)
  const wrapper = `#!/bin/sh\nexec node ${VM_SUTURE_DIR}/bin/suture.js "$@"\n`;
  return cachedLayer('suture', `${root}\n${wrapper}\n${await statKey(files)}`, async () => {
    const a = new CpioArchive();
    for (const f of files) a.hostFile(posix.join(VM_SUTURE_DIR, relative(root, f)), f);
    a.file('bin/suture', wrapper, 0o755);
    return a;
  });
}

/** Add a host file or directory tree at `to` in the VM. */
async function addTree(a: CpioArchive, from: string, to: string): Promise<void> {
  const st = await stat(from).catch(() =>
    fail('VM-FILE-MISSING', `cannot add ${from} to the VM: no such file`, { location: { file: from } }),
  );
  if (st.isDirectory()) {
    a.dir(to);
    for (const f of await walkFiles(from, () => false)) a.hostFile(posix.join(to, relative(from, f)), f);
  } else {
    a.hostFile(to, from);
  }
}

export async function assembleInitramfs(spec: InitramfsSpec): Promise<Initramfs> {
  const { kernel } = spec;
  const layers: Layer[] = [await baseLayer()];
  if (spec.withSuture) layers.push(await nodeLayer(), await sutureLayer());

  const wantLoad = spec.modules ?? [];
  const wantPlace = spec.placeModules ?? [];
  let load: string[] = [];
  let placed: string[] = [];
  let deps: ModuleDeps | undefined;
  if (wantLoad.length + wantPlace.length > 0) {
    deps = await targetModuleDeps(kernel);
    const builtin = builtinModules(kernel);
    load = resolveModules(deps, wantLoad, builtin);
    placed = [...new Set([...load, ...resolveModules(deps, wantPlace, builtin)])];
  }

  const run = new CpioArchive();
  run.file('suture/config', renderGuestConfig({ ...spec.guest, load }));
  const modRoot = posix.join('lib/modules', kernel.release);
  run.dir(modRoot);
  for (const p of placed) {
    const src = join(kernel.modulesDir, p);
    if (!existsSync(src)) fail('VM-MODULE-MISSING', `module file ${src} is missing from the target`);
    run.hostFile(posix.join(modRoot, p), src, 0o644);
  }
  if (deps && placed.length) run.file(posix.join(modRoot, 'modules.dep'), renderModulesDep(deps, placed));
  for (const f of spec.files ?? []) await addTree(run, f.from, f.to ?? `/${basename(f.from)}`);
  for (const [to, v] of spec.extra ?? []) run.file(to, v.data, v.mode ?? 0o644);
  const flags = spec.nodeFlags ?? [];
  if (spec.withSuture && flags.length) run.file('usr/local/bin/node', nodeWrapper(flags), 0o755);
  const runPath = join(spec.workDir, 'run.cpio.gz');
  await run.writeGzip(runPath);
  layers.push({ name: 'run', path: runPath, bytes: (await stat(runPath)).size, cached: false });

  const path = join(spec.workDir, 'initrd.img');
  const out = createWriteStream(path);
  // the kernel takes an uncompressed cpio archive only at an offset that is a multiple of 4 in the
  // image (init/initramfs.c), and skips zero bytes between archives: pad each layer to 4
  let bytes = 0;
  for (const l of layers) {
    await pipeline(createReadStream(l.path), out, { end: false });
    bytes += l.bytes;
    const pad = (4 - (bytes % 4)) % 4;
    if (pad) await new Promise<void>((res, rej) => out.write(Buffer.alloc(pad), (e) => (e ? rej(e) : res())));
    bytes += pad;
  }
  await new Promise<void>((res, rej) => out.end((e?: Error | null) => (e ? rej(e) : res())));
  return { path, bytes, layers, loaded: load };
}
