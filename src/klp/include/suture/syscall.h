/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Patched syscalls (x86-64): SUTURE_SYSCALL_DEFINEn defines the functions SYSCALL_DEFINEn defines
 * (__x64_sys_NAME and, with IA32 emulation, __ia32_sys_NAME, through the kernel's own arch stubs,
 * calling __se_sys_NAME and __do_sys_NAME), with two differences:
 *   - no trace metadata: the running kernel has it already, and a second copy would be a new entry of
 *     a kernel table;
 *   - __se_sys_NAME and __do_sys_NAME are always inlined into the stubs. The kernel's `inline` implies
 *     notrace, and gcc keeps a large __do_sys_NAME out of line, where ftrace (and so livepatch) cannot
 *     reach it; inlined, the change lands in __x64_sys_NAME / __ia32_sys_NAME, which are traceable and
 *     are what the syscall table calls, so they are the functions replaced.
 * suture refuses a patched file that uses one for a syscall the file does not define
 * (KLP-SYSCALL-NOT-IN-FILE).
 */
#ifndef _SUTURE_SYSCALL_H
#define _SUTURE_SYSCALL_H

#include <linux/syscalls.h>

#ifndef CONFIG_X86_64
#error "suture's syscall macros know the x86-64 syscall wrappers only"
#endif

#define SUTURE_SYSCALL_DEFINE0(sname)							\
	static long __do_sys_##sname(const struct pt_regs *__unused);			\
	__X64_SYS_STUB0(sname)								\
	__IA32_SYS_STUB0(sname)								\
	static long __do_sys_##sname(const struct pt_regs *__unused)

#define SUTURE_SYSCALL_DEFINEx(x, name, ...)						\
	static __always_inline long __se_sys##name(__MAP(x, __SC_LONG, __VA_ARGS__));		\
	static __always_inline long __do_sys##name(__MAP(x, __SC_DECL, __VA_ARGS__));		\
	__X64_SYS_STUBx(x, name, __VA_ARGS__)							\
	__IA32_SYS_STUBx(x, name, __VA_ARGS__)							\
	static __always_inline long __se_sys##name(__MAP(x, __SC_LONG, __VA_ARGS__))		\
	{											\
		long ret = __do_sys##name(__MAP(x, __SC_CAST, __VA_ARGS__));			\
		__MAP(x, __SC_TEST, __VA_ARGS__);						\
		__PROTECT(x, ret, __MAP(x, __SC_ARGS, __VA_ARGS__));				\
		return ret;									\
	}											\
	static __always_inline long __do_sys##name(__MAP(x, __SC_DECL, __VA_ARGS__))

#define SUTURE_SYSCALL_DEFINE1(name, ...) SUTURE_SYSCALL_DEFINEx(1, _##name, __VA_ARGS__)
#define SUTURE_SYSCALL_DEFINE2(name, ...) SUTURE_SYSCALL_DEFINEx(2, _##name, __VA_ARGS__)
#define SUTURE_SYSCALL_DEFINE3(name, ...) SUTURE_SYSCALL_DEFINEx(3, _##name, __VA_ARGS__)
#define SUTURE_SYSCALL_DEFINE4(name, ...) SUTURE_SYSCALL_DEFINEx(4, _##name, __VA_ARGS__)
#define SUTURE_SYSCALL_DEFINE5(name, ...) SUTURE_SYSCALL_DEFINEx(5, _##name, __VA_ARGS__)
#define SUTURE_SYSCALL_DEFINE6(name, ...) SUTURE_SYSCALL_DEFINEx(6, _##name, __VA_ARGS__)

#endif /* _SUTURE_SYSCALL_H */
