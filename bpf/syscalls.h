/* Syscall numbers and arguments as the raw sys_enter / sys_exit
 * tracepoints see them: the syscall's pt_regs, per architecture.
 *
 * One pair of BTF raw tracepoints (tp_btf) replaces the per-syscall
 * syscalls:sys_enter_* / sys_exit_* tracepoints: those build a perf record
 * for every hit of every process, traced or not (~0.5 µs each here); a
 * BTF raw tracepoint runs the program directly on the pt_regs, and a
 * syscall it does not want costs a compare. */
#pragma once

#include "common.h"
#include <bpf/bpf_tracing.h>

#if defined(__TARGET_ARCH_x86)
#define NR_read 0
#define NR_write 1
#define NR_close 3
#define NR_readv 19
#define NR_writev 20
#define NR_sendto 44
#define NR_recvfrom 45
#define NR_sendmsg 46
#define NR_recvmsg 47
#define NR_listen 50
#define NR_accept 43
#define NR_accept4 288
#define NR_access 21
#define NR_faccessat 269
#define NR_faccessat2 439

#define TS_COMPAT 0x0002 /* thread_info.status: an ia32 syscall is running */

/* The arguments as syscall_get_arguments reads them (64-bit ABI). */
static __always_inline void syscall_args(struct pt_regs *r, __u64 a[3])
{
	a[0] = r->di;
	a[1] = r->si;
	a[2] = r->dx;
}

static __always_inline long syscall_nr(struct pt_regs *r)
{
	return (long)r->orig_ax;
}

/* ia32 syscalls have their own numbers (3 is read there, close here). x32
 * ones carry __X32_SYSCALL_BIT and match no number above. A macro: task
 * (the current task_struct) is evaluated only on x86, where it is needed,
 * so a caller that has it already passes it instead of a helper call. */
#define compat_syscall(r, task) ((task)->thread_info.status & TS_COMPAT)

#elif defined(__TARGET_ARCH_arm64)
/* asm-generic numbers. */
#define NR_close 57
#define NR_read 63
#define NR_write 64
#define NR_readv 65
#define NR_writev 66
#define NR_listen 201
#define NR_accept 202
#define NR_accept4 242
#define NR_faccessat 48
#define NR_faccessat2 439
#define NR_sendto 206
#define NR_recvfrom 207
#define NR_sendmsg 211
#define NR_recvmsg 212

#define PSR_MODE32_BIT 0x10 /* pstate: an AArch32 (compat) task */

/* arm64's struct pt_regs (vmlinux.h here is x86's): CO-RE relocates the
 * fields against the running kernel's pt_regs. */
struct pt_regs___capture_arm64 {
	__u64 regs[31];
	__u64 sp;
	__u64 pc;
	__u64 pstate;
	__u64 orig_x0;
	__s32 syscallno;
} __attribute__((preserve_access_index));

#define ARM64_REGS(r) ((struct pt_regs___capture_arm64 *)(r))

/* syscall_get_arguments: x0 from orig_x0 (regs[0] becomes the result). */
static __always_inline void syscall_args(struct pt_regs *r, __u64 a[3])
{
	a[0] = ARM64_REGS(r)->orig_x0;
	a[1] = ARM64_REGS(r)->regs[1];
	a[2] = ARM64_REGS(r)->regs[2];
}

static __always_inline long syscall_nr(struct pt_regs *r)
{
	return ARM64_REGS(r)->syscallno;
}

#define compat_syscall(r, task) (ARM64_REGS(r)->pstate & PSR_MODE32_BIT)

#else
#error "syscalls.h: define __TARGET_ARCH_x86 or __TARGET_ARCH_arm64"
#endif
