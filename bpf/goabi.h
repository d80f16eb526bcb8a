/* Go's internal ABI, as the uprobes on Go code see it: integer arguments
 * in registers (receiver first; an interface takes two), the current g in
 * a register of its own. */
#pragma once

#include "http.h"
#include "syscalls.h" /* ARM64_REGS */

#if defined(__TARGET_ARCH_x86)
#define GO_ARG1(ctx) ((ctx)->ax)
#define GO_G(ctx) ((ctx)->r14)
#define GO_ARG2(ctx) ((ctx)->bx)
#define GO_ARG3(ctx) ((ctx)->cx)
#define GO_ARG4(ctx) ((ctx)->di)
#elif defined(__TARGET_ARCH_arm64)
#define GO_ARG1(ctx) (ARM64_REGS(ctx)->regs[0])
#define GO_G(ctx) (ARM64_REGS(ctx)->regs[28])
#define GO_ARG2(ctx) (ARM64_REGS(ctx)->regs[1])
#define GO_ARG3(ctx) (ARM64_REGS(ctx)->regs[2])
#define GO_ARG4(ctx) (ARM64_REGS(ctx)->regs[3])
#endif

/* The current goroutine's key, when pid is a traced Go program. */
static __always_inline int go_key(struct pt_regs *ctx, struct ctx_key *k)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	if (!(trace_state(pid) & TRACE_GO))
		return 0;
	k->pid = pid;
	k->tid = 0;
	k->goid = GO_G(ctx);
	return k->goid != 0;
}
