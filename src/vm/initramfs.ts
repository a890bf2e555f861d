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
 * Superseded layers are pruned (see pruneLayers), so rebuilding dist/ all day does not fill the disk.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, readFileSync, realpathSync } from 'node:fs';
import { mkdir, readdir, rm, stat, utimes } from 'node:fs/promises';
import { basename, dirname, join, posix, relative, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { fail } from '../diagnostic.js';
import type { KernelTarget } from '../kernel/target.js';
import { vmCacheDir } from './cache.js';
import { CpioArchive } from './cpio.js';
import { type GuestConfig, INIT_SCRIPT, renderGuestConfig, UDHCPC_SCRIPT } from './guest.js';
import {
  builtinModules,
  type ModuleDeps,
  renderModulesDep,
  resolveModules,
  targetModuleDeps,
} from './modules.js';

/** Bump when the layout of a cached layer changes, so old cache entries are not reused. */
const LAYOUT = 'suture-vm-layers-1';

export interface Layer {
  name: 'base' | 'node' | 'suture' | 'run';
  path: string;
  bytes: number;
  /** true when this layer came from the cache rather than being built now */
  cached: boolean;
}

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

function sha(...parts: string[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  return h.digest('hex');
}

/** A cheap identity for host files: path, size, mtime (content hashing 100 MB per boot is not cheap). */
async function statKey(files: readonly string[]): Promise<string> {
  const rows: string[] = [];
  for (const f of files) {
    const st = await stat(f);
    rows.push(`${f}:${st.size}:${st.mtimeMs}`);
  }
  return rows.join('\n');
}

/**
 * The Node layer is stored uncompressed: inflating 100 MB inside a TCG guest is slower than copying it
 * (measured, boot with Node to `node -e 0`, alternating: median 8.2 s raw vs 8.9 s gzip'd at moderate
 * host load, 10-35% apart under heavy load), at the price of a 104 MB cache file instead of 43 MB.
 * The kernel accepts plain and compressed archives in one image.
 */
/** layers being built by this process, so sessions booting at once compress a layer only once */
const building = new Map<string, Promise<Layer>>();

async function cachedLayer(
  name: Layer['name'],
  key: string,
  build: () => Promise<CpioArchive>,
): Promise<Layer> {
  const dir = join(vmCacheDir(), 'layers');
  const gzip = name !== 'node';
  const path = join(dir, `${name}-${sha(LAYOUT, name, key).slice(0, 32)}.cpio${gzip ? '.gz' : ''}`);
  if (existsSync(path)) {
    const now = new Date();
    await utimes(path, now, now).catch(() => {}); // mark as in use, for pruneLayers
    return { name, path, bytes: (await stat(path)).size, cached: true };
  }
  const inflight = building.get(path);
  if (inflight) return inflight;
  const p = (async (): Promise<Layer> => {
    await mkdir(dir, { recursive: true });
    const archive = await build();
    await archive.write(path, gzip);
    await pruneLayers(dir, name, path);
    return { name, path, bytes: (await stat(path)).size, cached: false };
  })();
  building.set(path, p);
  try {
    return await p;
  } finally {
    building.delete(path);
  }
}

const KEEP_LAYERS = 3;
const KEEP_RECENT_MS = 30 * 60_000;

/**
 * Delete superseded layers of one kind: keep the newest KEEP_LAYERS and any used in the last half hour
 * (a session may be about to copy it); drop temporaries a killed builder left over an hour ago.
 */
export async function pruneLayers(dir: string, name: string, keep: string): Promise<void> {
  const now = Date.now();
  const mine = [];
  for (const f of await readdir(dir)) {
    if (!f.startsWith(`${name}-`)) continue;
    const p = join(dir, f);
    const st = await stat(p).catch(() => undefined);
    if (!st) continue;
    if (f.endsWith('.tmp')) {
      if (now - st.mtimeMs > 3_600_000) await rm(p, { force: true });
    } else if (p !== keep) {
      mine.push({ p, t: st.mtimeMs });
    }
  }
  mine.sort((a, b) => b.t - a.t);
  for (const [i, l] of mine.entries()) {
    if (i >= KEEP_LAYERS - 1 && now - l.t > KEEP_RECENT_MS) await rm(l.p, { force: true });
  }
}

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

/** The checkout this code runs from (dist/vm/initramfs.js → ../..). */
export function repoRoot(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
}

/** Packages the `suture` command needs at run time: only needed by tests, builds or editors otherwise. */
const DEV_ONLY = [/^typescript$/, /^@biomejs\//, /^@types\//, /^@typescript\//, /^playwright(-core)?$/];
const SKIP_DIRS = new Set(['node_modules', '.deps', 'obj', 'obj.target', '.github']);
/** top-level folders of a package that its code never loads */
const SKIP_TOP = new Set([
  'test',
  'tests',
  '__tests__',
  'bench',
  'benchmark',
  'benchmarks',
  'example',
  'examples',
  'docs',
  'coverage',
]);
const SKIP_FILE = /(\.md|\.d\.[mc]?ts|\.map|\.a|\.o|\.c|\.cc|\.cpp|\.h|\.gyp|\.gypi|\.mk|Makefile)$/;
/** native packages whose sources and build intermediates are not needed to run */
const NATIVE_SKIP: Record<string, string[]> = { 'better-sqlite3': ['deps', 'src', 'build/Release/obj'] };

interface PackageJson {
  name?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

function readPkg(dir: string): PackageJson {
  return JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as PackageJson;
}

/** Production dependency closure as package directories, resolved as Node does (nearest node_modules). */
export function productionPackages(root: string): string[] {
  const found = new Set<string>();
  const visit = (fromDir: string, name: string, optional: boolean) => {
    if (DEV_ONLY.some((r) => r.test(name))) return;
    let d = fromDir;
    for (;;) {
      const cand = join(d, 'node_modules', name);
      if (existsSync(join(cand, 'package.json'))) {
        if (found.has(cand)) return;
        found.add(cand);
        const pkg = readPkg(cand);
        for (const dep of Object.keys(pkg.dependencies ?? {})) visit(cand, dep, false);
        for (const dep of Object.keys(pkg.optionalDependencies ?? {})) visit(cand, dep, true);
        return;
      }
      if (resolve(d) === resolve(root) || dirname(d) === d) break;
      d = dirname(d);
    }
    if (!optional) {
      fail(
        'VM-SUTURE-DEPS',
        `dependency ${name} (needed from ${relative(root, fromDir) || '.'}) is not installed`,
        {
          hint: 'run npm install in the checkout',
        },
      );
    }
  };
  const pkg = readPkg(root);
  for (const dep of Object.keys(pkg.dependencies ?? {})) visit(root, dep, false);
  for (const dep of Object.keys(pkg.optionalDependencies ?? {})) visit(root, dep, true);
  return [...found].sort();
}

async function walkFiles(
  dir: string,
  skip: (rel: string, isDir: boolean) => boolean,
  base = dir,
): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    const rel = relative(base, p);
    if (e.isDirectory()) {
      if (!skip(rel, true)) out.push(...(await walkFiles(p, skip, base)));
    } else if (e.isFile() && !skip(rel, false)) {
      out.push(p);
    }
  }
  return out.sort();
}

/** Where Suture lives in the VM. */
export const VM_SUTURE_DIR = '/opt/suture';

export async function sutureFiles(root = repoRoot()): Promise<string[]> {
  if (!existsSync(join(root, 'dist', 'cli', 'main.js'))) {
    fail('VM-SUTURE-UNBUILT', `${root}/dist has no cli/main.js`, { hint: 'run npm run build first' });
  }
  const files = [join(root, 'package.json')];
  files.push(...(await walkFiles(join(root, 'bin'), () => false)));
  files.push(
    ...(await walkFiles(join(root, 'dist'), (rel, isDir) => !isDir && /\.(test\.js|map)$/.test(rel))),
  );
  for (const pkg of productionPackages(root)) {
    const native = NATIVE_SKIP[readPkg(pkg).name ?? ''] ?? [];
    files.push(
      ...(await walkFiles(pkg, (rel, isDir) =>
        isDir
          ? SKIP_DIRS.has(basename(rel)) || SKIP_TOP.has(rel) || native.includes(rel)
          : SKIP_FILE.test(rel) && rel !== 'package.json',
      )),
    );
  }
  return files;
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
