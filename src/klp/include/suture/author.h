/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Suture's patch-author header: what the macros of kpatch-macros.h, kpatch-syscall.h and
 * <linux/livepatch_helpers.h> expand to. Written for Suture (the macro names match kpatch's and
 * upstream klp-build's so that existing patches compile unchanged; the mechanism is Suture's).
 *
 * Each macro leaves a record in the section ".suture.records" of the patched object. The records are
 * plain bytes (no pointer is needed to read them): the kind, the source line, the object the unit
 * belongs to ("vmlinux" or its module's KBUILD_MODNAME) and a symbol name. suture reads them from the
 * patched object (src/klp/author-records.ts); the section itself is never carried into the livepatch.
 *
 *   callback records  name the global trampoline the macro defines; the trampoline is a new function,
 *                     carried, and the generated registration puts it in the klp_object's callbacks;
 *   ignore records    name a function (or a section) the object diff must leave out.
 */
#ifndef _SUTURE_AUTHOR_H
#define _SUTURE_AUTHOR_H

#include <linux/compiler.h>
#include <linux/stringify.h>
#include <linux/livepatch.h>

#define SUTURE_RECORD_PRE_PATCH		1
#define SUTURE_RECORD_POST_PATCH	2
#define SUTURE_RECORD_PRE_UNPATCH	3
#define SUTURE_RECORD_POST_UNPATCH	4
#define SUTURE_RECORD_IGNORE_FUNCTION	5
#define SUTURE_RECORD_IGNORE_SECTION	6
#define SUTURE_RECORD_FORCE_UNSAFE	7

/* 192 bytes, read by src/klp/author-records.ts: keep both in step */
struct suture_record {
	const void *address;	/* what the record is about, so that it must exist (never read by suture) */
	unsigned int kind;	/* SUTURE_RECORD_* */
	unsigned int line;	/* __LINE__ of the macro, in the patched file's original numbering */
	char object[56];	/* "vmlinux" or KBUILD_MODNAME */
	char symbol[120];	/* the trampoline, function or section the record names */
};

#ifdef MODULE
#define SUTURE_OBJECT KBUILD_MODNAME
#else
#define SUTURE_OBJECT "vmlinux"
#endif

#define __SUTURE_CAT2(a, b) a##b
#define __SUTURE_CAT(a, b) __SUTURE_CAT2(a, b)
/* unique in the unit (the line) and across the units of a patch (kbuild's per-object token) */
#define __SUTURE_NAME(what) __SUTURE_CAT(__SUTURE_CAT(__suture_##what##_, __KBUILD_MODNAME), __SUTURE_CAT(_on_line_, __LINE__))

#define __SUTURE_RECORD(_kind, _address, _symbol)					\
	static const struct suture_record __SUTURE_NAME(record)				\
	__used __section(".suture.records") __aligned(8) = {				\
		.address = (_address), .kind = (_kind), .line = __LINE__,		\
		.object = SUTURE_OBJECT, .symbol = _symbol,				\
	}

/*
 * A callback: a global trampoline of the type struct klp_callbacks wants, calling the author's
 * function, and its record. `call` is the trampoline's body.
 */
#define __SUTURE_CALLBACK3(_kind, _ret, _tramp, _call)					\
	_ret _tramp(struct klp_object *obj);						\
	_ret _tramp(struct klp_object *obj) { _call; }					\
	__SUTURE_RECORD(_kind, _tramp, __stringify(_tramp))
#define __SUTURE_CALLBACK(_kind, _ret, _what, _call)					\
	__SUTURE_CALLBACK3(_kind, _ret, __SUTURE_NAME(_what), _call)

/* int fn(struct klp_object *obj): a non-zero return refuses the patch (or the module's load) */
#define SUTURE_PRE_PATCH_CALLBACK(fn)							\
	__SUTURE_CALLBACK(SUTURE_RECORD_PRE_PATCH, int, pre_patch, return fn(obj))
/* void fn(struct klp_object *obj) for the three others */
#define SUTURE_POST_PATCH_CALLBACK(fn)							\
	__SUTURE_CALLBACK(SUTURE_RECORD_POST_PATCH, void, post_patch, fn(obj))
#define SUTURE_PRE_UNPATCH_CALLBACK(fn)							\
	__SUTURE_CALLBACK(SUTURE_RECORD_PRE_UNPATCH, void, pre_unpatch, fn(obj))
#define SUTURE_POST_UNPATCH_CALLBACK(fn)						\
	__SUTURE_CALLBACK(SUTURE_RECORD_POST_UNPATCH, void, post_unpatch, fn(obj))

/* kpatch's hooks, void fn(void): loading runs after patching, unloading before unpatching */
#define SUTURE_LOAD_HOOK(fn)								\
	__SUTURE_CALLBACK(SUTURE_RECORD_POST_PATCH, void, post_patch, (void)obj; fn())
#define SUTURE_UNLOAD_HOOK(fn)								\
	__SUTURE_CALLBACK(SUTURE_RECORD_PRE_UNPATCH, void, pre_unpatch, (void)obj; fn())

#define SUTURE_IGNORE_FUNCTION(fn)							\
	__SUTURE_RECORD(SUTURE_RECORD_IGNORE_FUNCTION, (const void *)(fn), #fn)
#define SUTURE_IGNORE_SECTION(name)							\
	__SUTURE_RECORD(SUTURE_RECORD_IGNORE_SECTION, NULL, name)
#define SUTURE_FORCE_UNSAFE(fn)								\
	__SUTURE_RECORD(SUTURE_RECORD_FORCE_UNSAFE, (const void *)(fn), #fn)

#endif /* _SUTURE_AUTHOR_H */
