/*
 * What publish checks in a module before the server signs it: the signature tells every machine "run
 * this in your kernel", so the server must know it is a livepatch for that kernel, not just any bytes.
 *
 *   MODULE-EMPTY              0 bytes (such a blob used to stop the check-ins of its kernel and tier)
 *   MODULE-TOO-LARGE          more than limits.moduleBytes
 *   MODULE-NOT-ELF            not an ELF file the project's reader accepts (bounds-checked: elf/)
 *   MODULE-NOT-X86-64         an ELF for another machine, class or byte order
 *   MODULE-NOT-RELOCATABLE    not ET_REL (a .ko is a relocatable object)
 *   MODULE-TEXT-TOO-LARGE     more executable bytes (SHF_EXECINSTR sections) than limits.moduleText
 *   MODULE-NO-MODINFO         no .modinfo section
 *   MODULE-NOT-LIVEPATCH      no `livepatch=Y` in .modinfo
 *   MODULE-NAME-MISMATCH      .modinfo `name=` differs from the manifest's module.name
 *   MODULE-VERMAGIC-MISMATCH  .modinfo `vermagic=` is not for the manifest's kernel release
 *
 * Each is a 400 with its code; nothing is signed or stored.
 */
import { isSutureError } from '../diagnostic.js';
import { ET, readElf, SHF } from '../elf/index.js';
import type { Manifest } from '../manifest/manifest.js';
import type { Limits } from './context.js';
import { HttpError } from './http-error.js';

const refuse = (code: string, message: string, hint: string, detail?: string[]) =>
  new HttpError(400, code, message, { hint, ...(detail ? { detail } : {}) });

const REBUILD = 'publish the livepatch-NAME.ko that `suture build` wrote with this manifest';

/** `.modinfo` as key → values (NUL-separated `key=value` strings) */
function modinfoFields(data: Uint8Array): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const entry of Buffer.from(data.buffer, data.byteOffset, data.byteLength)
    .toString('utf8')
    .split('\0')) {
    const eq = entry.indexOf('=');
    if (eq <= 0) continue;
    const k = entry.slice(0, eq);
    out.set(k, [...(out.get(k) ?? []), entry.slice(eq + 1)]);
  }
  return out;
}

function parse(bytes: Uint8Array) {
  try {
    return readElf(bytes, 'module');
  } catch (e) {
    if (!isSutureError(e)) throw e;
    const d = e.diagnostic;
    if (d.code === 'ELF-WRONG-MACHINE' || d.code === 'ELF-WRONG-CLASS' || d.code === 'ELF-WRONG-ENDIAN') {
      throw refuse(
        'MODULE-NOT-X86-64',
        `the module is not an x86-64 ELF64 little-endian object: ${d.message}`,
        REBUILD,
      );
    }
    throw refuse('MODULE-NOT-ELF', `the module is not a readable ELF object: ${d.message}`, REBUILD, [
      d.code,
    ]);
  }
}

/** Throw the refusal for the first check `bytes` fails against `manifest`; return what was verified. */
export function inspectModule(bytes: Uint8Array, manifest: Manifest, limits: Limits): string[] {
  if (bytes.length === 0) throw refuse('MODULE-EMPTY', 'the module is empty (0 bytes)', REBUILD);
  if (bytes.length > limits.moduleBytes) {
    throw refuse(
      'MODULE-TOO-LARGE',
      `the module is ${bytes.length} bytes, more than the ${limits.moduleBytes} publish accepts`,
      'a livepatch module is usually well under 1 MB: check what was built',
    );
  }
  const elf = parse(bytes);
  if (elf.header.type !== ET.REL) {
    throw refuse('MODULE-NOT-RELOCATABLE', `the module is ELF type ${elf.header.type}, not ET_REL`, REBUILD);
  }
  const text = elf.sections.filter((s) => (s.flags & SHF.EXECINSTR) !== 0).reduce((n, s) => n + s.size, 0);
  if (text > limits.moduleText) {
    throw refuse(
      'MODULE-TEXT-TOO-LARGE',
      `the module has ${text} bytes of code, more than the ${limits.moduleText} publish accepts`,
      'a livepatch replaces a few functions: check that the build selected only the changed ones',
    );
  }
  const modinfo = elf.section('.modinfo');
  if (!modinfo) throw refuse('MODULE-NO-MODINFO', 'the module has no .modinfo section', REBUILD);
  const info = modinfoFields(modinfo.data);
  if (!info.get('livepatch')?.includes('Y')) {
    throw refuse(
      'MODULE-NOT-LIVEPATCH',
      'the module is not marked as a livepatch (no livepatch=Y in .modinfo)',
      'only livepatch modules are delivered: an ordinary module would run with full privileges and patch nothing',
    );
  }
  const name = info.get('name')?.[0];
  if (name !== manifest.module.name) {
    throw refuse(
      'MODULE-NAME-MISMATCH',
      `the module calls itself ${name ?? '(no name=)'}, the manifest says ${manifest.module.name}`,
      REBUILD,
    );
  }
  const vermagic = info.get('vermagic')?.[0] ?? '';
  const release = vermagic.split(' ')[0];
  if (release !== manifest.kernel.release) {
    throw refuse(
      'MODULE-VERMAGIC-MISMATCH',
      `the module was built for ${release || '(no vermagic=)'}, the manifest targets ${manifest.kernel.release}`,
      `build the patch against ${manifest.kernel.release}`,
    );
  }
  return [
    'ELF64 x86-64 ET_REL',
    `${text} bytes of code`,
    'livepatch=Y',
    `name=${name}`,
    `vermagic ${release}`,
  ];
}
