/*
 * Test support: a small but complete relocatable object, assembled by GNU as from source kept here.
 *
 * It has what the engine must handle without needing a kernel: a FILE symbol, locals and globals, weak
 * and hidden symbols, a COMMON symbol, an undefined symbol, a COMDAT group, RELA sections against
 * section and named symbols (PC32, PLT32, 64 with addends), a merge-string section, NOBITS, a GNU
 * build-id note. Used by the damage, writer and fuzz tests.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const TINY_BUILD_ID = '0102030405060708090a0b0c0d0e0f1011121314';

const SOURCE = `
	.file	"tiny.c"
	.text
	.globl	entry
	.type	entry, @function
entry:
	call	helper
	movq	counter(%rip), %rax
	leaq	message(%rip), %rdi
	call	external_fn@PLT
	jmp	weak_fn
	.size	entry, .-entry
	.type	helper, @function
helper:
	ret
	.size	helper, .-helper
	.section	.text.inline_fn,"axG",@progbits,inline_fn,comdat
	.weak	inline_fn
	.hidden	inline_fn
	.type	inline_fn, @function
inline_fn:
	movl	$1, %eax
	ret
	.size	inline_fn, .-inline_fn
	.text
	.weak	weak_fn
	.type	weak_fn, @function
weak_fn:
	ret
	.size	weak_fn, .-weak_fn
	.data
	.align 8
	.type	counter, @object
	.size	counter, 8
counter:
	.quad	entry
	.quad	external_data+16
	.section	.rodata.str1.1,"aMS",@progbits,1
message:
	.string	"hello"
	.bss
	.align 32
	.type	buffer, @object
	.size	buffer, 4096
buffer:
	.zero	4096
	.comm	shared_common,64,32
	.section	.note.gnu.build-id,"a",@note
	.align 4
	.long	4
	.long	20
	.long	3
	.string	"GNU"
	.byte 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20
	.section	.note.GNU-stack,"",@progbits
`;

let cached: Buffer | undefined;

/** The assembled object's bytes (a fresh copy each call, so tests can damage it). */
export function tinyObject(): Buffer {
  if (!cached) {
    const dir = mkdtempSync(join(tmpdir(), 'suture-tiny-'));
    try {
      writeFileSync(join(dir, 'tiny.s'), SOURCE);
      const r = spawnSync('as', ['--64', '-o', join(dir, 'tiny.o'), join(dir, 'tiny.s')], {
        encoding: 'utf8',
      });
      if (r.status !== 0) throw new Error(`as failed: ${r.stderr || r.error?.message}`);
      cached = readFileSync(join(dir, 'tiny.o'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return Buffer.from(cached);
}
