/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kpatch's names for a patched syscall (`#include "kpatch-syscall.h"`), as Suture provides them:
 * KPATCH_SYSCALL_DEFINEn(name, ...) in place of SYSCALL_DEFINEn(name, ...). See suture/syscall.h.
 */
#ifndef _SUTURE_KPATCH_SYSCALL_H
#define _SUTURE_KPATCH_SYSCALL_H

#include "suture/syscall.h"

#define KPATCH_SYSCALL_DEFINE0(name)		SUTURE_SYSCALL_DEFINE0(name)
#define KPATCH_SYSCALL_DEFINE1(name, ...)	SUTURE_SYSCALL_DEFINE1(name, __VA_ARGS__)
#define KPATCH_SYSCALL_DEFINE2(name, ...)	SUTURE_SYSCALL_DEFINE2(name, __VA_ARGS__)
#define KPATCH_SYSCALL_DEFINE3(name, ...)	SUTURE_SYSCALL_DEFINE3(name, __VA_ARGS__)
#define KPATCH_SYSCALL_DEFINE4(name, ...)	SUTURE_SYSCALL_DEFINE4(name, __VA_ARGS__)
#define KPATCH_SYSCALL_DEFINE5(name, ...)	SUTURE_SYSCALL_DEFINE5(name, __VA_ARGS__)
#define KPATCH_SYSCALL_DEFINE6(name, ...)	SUTURE_SYSCALL_DEFINE6(name, __VA_ARGS__)

#endif /* _SUTURE_KPATCH_SYSCALL_H */
