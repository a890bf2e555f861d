/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kpatch's vocabulary for patch authors, as Suture provides it (`#include "kpatch-macros.h"` finds this
 * file on every `suture build`): the names kpatch patches use, mapped onto Suture's records
 * (suture/author.h). Callbacks get a patch_object *, which is the kernel's struct klp_object.
 *
 * KPATCH_FORCE_UNSAFE(fn) is accepted and only recorded: the kernel's livepatch has no per-function
 * way around its consistency model, so the function is patched like any other. A function that is
 * always on some task's stack keeps the transition from finishing; `suture apply --timeout` reverses it.
 */
#ifndef _SUTURE_KPATCH_MACROS_H
#define _SUTURE_KPATCH_MACROS_H

#include <linux/printk.h>
#include "suture/author.h"

typedef struct klp_object patch_object;

#define KPATCH_PRE_PATCH_CALLBACK(fn)		SUTURE_PRE_PATCH_CALLBACK(fn)
#define KPATCH_POST_PATCH_CALLBACK(fn)		SUTURE_POST_PATCH_CALLBACK(fn)
#define KPATCH_PRE_UNPATCH_CALLBACK(fn)		SUTURE_PRE_UNPATCH_CALLBACK(fn)
#define KPATCH_POST_UNPATCH_CALLBACK(fn)	SUTURE_POST_UNPATCH_CALLBACK(fn)

#define KPATCH_LOAD_HOOK(fn)			SUTURE_LOAD_HOOK(fn)
#define KPATCH_UNLOAD_HOOK(fn)			SUTURE_UNLOAD_HOOK(fn)

#define KPATCH_IGNORE_FUNCTION(fn)		SUTURE_IGNORE_FUNCTION(fn)
#define KPATCH_IGNORE_SECTION(name)		SUTURE_IGNORE_SECTION(name)
#define KPATCH_FORCE_UNSAFE(fn)			SUTURE_FORCE_UNSAFE(fn)

/* a printk that is part of the patch: an ordinary printk, its format carried with the patched code */
#define KPATCH_PRINTK(fmt, ...)			printk(fmt, ##__VA_ARGS__)

#endif /* _SUTURE_KPATCH_MACROS_H */
