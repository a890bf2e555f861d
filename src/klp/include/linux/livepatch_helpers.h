/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Upstream klp-build's vocabulary for patch authors (`#include <linux/livepatch_helpers.h>`), as
 * Suture provides it for kernels that do not ship the header (6.1, 6.12): callbacks take the kernel's
 * struct klp_object *, KLP_SYSCALL_DEFINEn replaces SYSCALL_DEFINEn in a patched syscall, and
 * KLP_STATIC_CALL(name)(args) replaces static_call(name)(args) where the static call's key lives in a
 * module (a plain indirect call through the key's current target: nothing for the module loader to set up).
 * Mapped onto Suture's records (suture/author.h, suture/syscall.h).
 */
#ifndef _SUTURE_LIVEPATCH_HELPERS_H
#define _SUTURE_LIVEPATCH_HELPERS_H

#include "../suture/author.h"
#include "../suture/syscall.h"
#include <linux/static_call.h>

#define KLP_PRE_PATCH_CALLBACK(fn)		SUTURE_PRE_PATCH_CALLBACK(fn)
#define KLP_POST_PATCH_CALLBACK(fn)		SUTURE_POST_PATCH_CALLBACK(fn)
#define KLP_PRE_UNPATCH_CALLBACK(fn)		SUTURE_PRE_UNPATCH_CALLBACK(fn)
#define KLP_POST_UNPATCH_CALLBACK(fn)		SUTURE_POST_UNPATCH_CALLBACK(fn)

#define KLP_SYSCALL_DEFINE0(name)		SUTURE_SYSCALL_DEFINE0(name)
#define KLP_SYSCALL_DEFINE1(name, ...)		SUTURE_SYSCALL_DEFINE1(name, __VA_ARGS__)
#define KLP_SYSCALL_DEFINE2(name, ...)		SUTURE_SYSCALL_DEFINE2(name, __VA_ARGS__)
#define KLP_SYSCALL_DEFINE3(name, ...)		SUTURE_SYSCALL_DEFINE3(name, __VA_ARGS__)
#define KLP_SYSCALL_DEFINE4(name, ...)		SUTURE_SYSCALL_DEFINE4(name, __VA_ARGS__)
#define KLP_SYSCALL_DEFINE5(name, ...)		SUTURE_SYSCALL_DEFINE5(name, __VA_ARGS__)
#define KLP_SYSCALL_DEFINE6(name, ...)		SUTURE_SYSCALL_DEFINE6(name, __VA_ARGS__)

#define KLP_STATIC_CALL(name) \
	((typeof(&STATIC_CALL_TRAMP(name)))READ_ONCE(STATIC_CALL_KEY(name).func))

#endif /* _SUTURE_LIVEPATCH_HELPERS_H */
