//go:build ignore

/* Socket I/O capture from the raw syscall tracepoints (no kprobes on these
 * kernels), dispatching on the syscall number (syscalls.h).
 *
 * For threads of selected processes, sys_enter of a write records the
 * syscall's buffer arguments (and plans a traceparent insertion); a read
 * needs nothing from its entry, since the arguments are still in the
 * syscall's pt_regs at exit. The sys_exit checks the fd is a TCP socket
 * (fd -> sock walk) and emits one event with the bytes moved (a bounded
 * prefix) and the connection's addresses. Unselected processes pay one
 * hash lookup at the entry of a write and at the exit of a read that moved
 * bytes, and every other syscall a compare. */
#include "common.h"
#include "syscalls.h"
#include "http.h"
#include "http_send.h"
#include "inject.h"
#include "gohttp.h"
#include "bind.h"
#include "python.h"
#include "h2.h"
#include "h2_recv.h"
#include "h2_seg.h"
#include "grpcgo.h"

/* Set by the agent before load. */
volatile const __u32 capture_size = 4096; /* <= MAX_CAPTURE */
volatile const __u8 watch_exec = 0;      /* emit EV_EXEC for every exec */
volatile const __u8 watch_listen = 0;    /* emit EV_LISTEN for every listen */

#include "io.h"
#include "send_plan.h"

/* a's fields from the syscall's arguments in regs, which a read's exit
 * still finds there; returns the third argument (count or iovcnt). */
static __always_inline __u64 io_args_init(struct io_args *a, struct pt_regs *regs, __u8 state, __u8 kind,
					  __u8 dir)
{
	__u64 args[3];
	syscall_args(regs, args);
	a->state = state;
	a->fd = (__s32)args[0];
	a->ptr = args[1];
	a->kind = kind;
	a->dir = dir;
	if (kind == IO_IOV)
		a->iovcnt = (__u32)args[2];
	return args[2];
}

/* A send's entry: its arguments (and what prepare_send plans) are saved
 * in task storage for its exit. */
static __always_inline int enter_send(struct pt_regs *regs, __u8 kind)
{
	/* One helper call for the task, which has the pid too. */
	struct task_struct *task = bpf_get_current_task_btf();
	__u8 state = trace_state(task->tgid);
	if (!state)
		return 0;
	if (compat_syscall(regs, task))
		return 0;
	/* Planned in place: an io_args on this program's stack would count
	 * against the 512 bytes that every call chain below shares. */
	struct io_args *a = bpf_task_storage_get(&active_io, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!a) {
		count(CNT_ARGS_DROPS);
		return 0;
	}
	__builtin_memset(a, 0, sizeof(*a));
	a->start_ns = bpf_ktime_get_ns();
	__u64 count_arg = io_args_init(a, regs, state, kind, DIR_SEND);
	prepare_send(a, count_arg);
	return 0;
}

/* The protocols' view of a read, global functions: each keeps its stack
 * out of emit_io's (the call chains below a program share 512 bytes). */
__attribute__((noinline)) int h2_recv_event(struct data_event *ev, __u32 got, __u32 ret, __u8 state)
{
	if (!ev)
		return 0;
	return h2_on_recv(ev->data, got, ret, ev->hdr.sock_id, state, &ev->hdr.ctx);
}

__attribute__((noinline)) int http_recv_event(struct data_event *ev, __u32 got, __u8 state)
{
	if (!ev)
		return 0;
	__u64 sk = ev->hdr.sock_id;
	on_request_read(ev->data, got, sk, state, starts_request(sk, ev->data, got), &ev->hdr.ctx);
	return 0;
}

/* The data event of an I/O syscall that moved ret > 0 bytes on a's fd, if
 * that is a TCP socket. a->start_ns 0: the syscall's exit (a read). */
__attribute__((noinline)) int emit_io(struct io_args *a, __u64 id, long ret)
{
	if (!a)
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	struct sock *sk = task_sock_of_fd(task, a->fd);
	if (!sk)
		return 0;

	__u32 zero = 0;
	struct data_event *ev = bpf_map_lookup_elem(&scratch, &zero);
	if (!ev)
		return 0;

	__u32 limit = capture_size;
	if (limit > MAX_CAPTURE)
		limit = MAX_CAPTURE;
	if ((__u64)ret < limit)
		limit = (__u32)ret;
	else if ((__u64)ret > limit)
		count(CNT_TRUNCATED);

	__u32 got = copy_payload(ev, a->kind, a->ptr, a->iovcnt, limit);

	ev->hdr.type = EV_DATA;
	ev->hdr.dir = a->dir;
	ev->hdr.flags = (a->state & TRACE_STATE_MASK) == TRACE_PENDING ? EVF_PENDING : 0;
	ev->hdr.pid = id >> 32;
	ev->hdr.tid = (__u32)id;
	ev->hdr.fd = a->fd;
	ev->hdr.sock_id = (__u64)sk;
	ev->hdr.end_ns = bpf_ktime_get_ns();
	ev->hdr.start_ns = a->start_ns ? a->start_ns : ev->hdr.end_ns;
	ev->hdr.len = (__u32)ret;
	ev->hdr.captured = got;
	ev->hdr.segs = 0;
	read_conn_addr(sk, &ev->hdr.addr);
	ev->hdr.ctx = a->ctx;
	/* HTTP/2 or not known yet: h2_segments looks the socket up. A read's
	 * h2_recv_event says (1: an HTTP/2 socket); an HTTP/1 response is not. */
	int h2 = 1;
	if (a->dir == DIR_RECV && !(h2 = h2_recv_event(ev, got, (__u32)ret, a->state))) {
		http_recv_event(ev, got, a->state);
		note_lone_byte((__u64)sk, ev->data, got);
		if (bind_note_request((__u64)sk, a->state))
			py_note_read(ev->hdr.sock_id);
	} else if (a->dir == DIR_SEND && is_response_start(ev->data, got)) {
		h2 = 0;
		on_response_write((__u64)sk, a->state);
		bind_note_response((__u64)sk, a->state);
	} else if (a->dir == DIR_SEND) {
		h2_on_send(ev->data, got, (__u64)sk, a->state);
	}

	/* After h2_recv_event (which meets a server's preface), before the
	 * data event in the ring: the agent joins the segments to it. */
	if (h2) {
		h2_segments(ev, a->kind == IO_BUF ? a->ptr : 0, (__u32)ret, a->dir, a->state);
		h2_stream_opens(ev); /* a Go server's new streams (h2_stream.h) */
	}
	__u64 size = sizeof(ev->hdr) + got;
	if (size > sizeof(*ev))
		size = sizeof(*ev);
	if (bpf_ringbuf_output(&events, ev, size, data_wakeup_flags(size)))
		count(CNT_DATA_DROPS);
	else
		count(CNT_DATA_EVENTS);
	return 0;
}

/* A send's arguments, saved by its entry (the caller clears their state
 * after emitting); NULL when there is nothing to emit. */
static __always_inline struct io_args *send_args(struct task_struct *task, __u64 id, long ret)
{
	/* sys_exit runs for every I/O syscall on the node: a task that never
	 * had local storage (every thread of an untraced process) cannot have
	 * saved arguments, and is let go after one helper call (helper calls
	 * are the cost here). */
	if (!task->bpf_storage)
		return NULL;
	struct io_args *a = bpf_task_storage_get(&active_io, task, 0, 0);
	if (!a || !a->state)
		return NULL;
	if (a->ctx.kind == CTX_CLIENT) {
		struct inject_plan *p = bpf_map_lookup_elem(&inject_plans, &id);
		if (p) {
			if (p->done)
				a->ctx.ctx_flags |= CTXF_INJECTED;
			bpf_map_delete_elem(&inject_plans, &id);
		}
		kafka_plan_finish(id, &a->ctx);
	}
	h2_send_done(id, ret, &a->ctx);
	if (ret <= 0)
		a->state = 0;
	return ret > 0 ? a : NULL;
}

/* A read's arguments, per CPU: not on the stack (see enter_send). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct io_args);
} read_io SEC(".maps");

/* A read's arguments at its exit: they are still in pt_regs (syscalls.h),
 * so a read needs no entry program. Its start is its exit: a read may
 * block long before the bytes come (the probes take a read's arrival from
 * its end anyway). NULL when there is nothing to emit. */
static __always_inline struct io_args *read_args(struct pt_regs *regs, struct task_struct *task, __u8 kind)
{
	__u8 state = trace_state(task->tgid);
	if (!state || compat_syscall(regs, task))
		return NULL;
	__u32 zero = 0;
	struct io_args *a = bpf_map_lookup_elem(&read_io, &zero);
	if (!a)
		return NULL;
	__builtin_memset(a, 0, sizeof(*a));
	io_args_init(a, regs, state, kind, DIR_RECV);
	return a;
}

static __always_inline void emit_ctl(void *ring, __u8 type, __u32 pid, __u32 tid, __s32 fd,
				     __u64 sock_id, __u32 len)
{
	/* A close on the data ring follows the data ring's wakeup policy: with
	 * the default (wake a caught-up reader) every close woke the agent,
	 * ~3 wakeups per request of a server that closes its connections. */
	int data = ring == (void *)&events;
	/* Filled in the ring, not on the stack: the header is a quarter of
	 * the 512 bytes the sys_enter/sys_exit call chains share. */
	struct event_hdr *e = bpf_ringbuf_reserve(ring, sizeof(*e), 0);
	if (!e) {
		count(data ? CNT_DATA_DROPS : CNT_CTL_DROPS);
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->type = type;
	e->pid = pid;
	e->tid = tid;
	e->fd = fd;
	e->sock_id = sock_id;
	e->len = len;
	e->start_ns = e->end_ns = bpf_ktime_get_ns();
	bpf_ringbuf_submit(e, data ? data_wakeup_flags(sizeof(*e)) : 0);
}

/* Close of a traced socket: ordered with its data on the same ring so the
 * agent can flush the connection after its last bytes. */
static __always_inline int enter_close(struct pt_regs *regs)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u8 state = trace_state(id >> 32);
	if (!state || compat_syscall(regs, bpf_get_current_task_btf()))
		return 0;
	__u64 args[3];
	syscall_args(regs, args);
	int fd = (int)args[0];
	struct sock *sk = tcp_sock_of_fd(fd);
	if (!sk)
		return 0;
	emit_ctl(&events, EV_CLOSE, id >> 32, (__u32)id, fd, (__u64)sk, 0);
	__u64 key = (__u64)sk;
	bpf_map_delete_elem(&h2_socks, &key);
	if (state & TRACE_BIND) {
		/* its requests end with it (a sock reused starts with none) */
		struct conn_key ck = {.pid = id >> 32, .id = key};
		bpf_map_delete_elem(&conn_reqs, &ck);
	}
	return 0;
}

/* listen(fd): lets --port select servers that start after the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __s32);
} listen_fds SEC(".maps");

static __always_inline int enter_listen(struct pt_regs *regs)
{
	if (!watch_listen || compat_syscall(regs, bpf_get_current_task_btf()))
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	__u64 args[3];
	syscall_args(regs, args);
	__s32 fd = (__s32)args[0];
	bpf_map_update_elem(&listen_fds, &id, &fd, BPF_ANY);
	return 0;
}

static __always_inline int exit_listen(long ret)
{
	if (!watch_listen)
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	__s32 *fdp = bpf_map_lookup_elem(&listen_fds, &id);
	if (!fdp)
		return 0;
	__s32 fd = *fdp;
	bpf_map_delete_elem(&listen_fds, &id);
	if (ret != 0)
		return 0;
	struct sock *sk = tcp_sock_of_fd(fd);
	if (!sk)
		return 0;
	__u16 port = BPF_CORE_READ(sk, __sk_common.skc_num);
	emit_ctl(&ctl_events, EV_LISTEN, id >> 32, (__u32)id, fd, (__u64)sk, port);
	return 0;
}

/* Every syscall of every process enters here: the switch sends the few
 * that matter to their handler. The sends reach enter_send from one call
 * site, so the program holds one copy of it (and of prepare_send). */
SEC("tp_btf/sys_enter")
int BPF_PROG(on_sys_enter, struct pt_regs *regs, long nr)
{
	__u8 kind;
	switch (nr) {
	case NR_write:
	case NR_sendto:
		kind = IO_BUF;
		break;
	case NR_writev:
		kind = IO_IOV;
		break;
	case NR_sendmsg:
		kind = IO_MSG;
		break;
	case NR_close:
		return enter_close(regs);
	case NR_listen:
		return enter_listen(regs);
#ifdef NR_access
	case NR_access:
		return enter_sentinel(regs, 0);
#endif
	case NR_faccessat:
	case NR_faccessat2:
		return enter_sentinel(regs, 1);
	default:
		return 0;
	}
	return enter_send(regs, kind);
}

/* Every syscall of every process exits here; others than I/O and listen
 * return after reading the number. A send's exit works only when its
 * entry saved the arguments (active_io), a read's when it moved bytes for
 * a traced process. Both reach emit_io from one call site, so the program
 * holds one copy of it. */
SEC("tp_btf/sys_exit")
int BPF_PROG(on_sys_exit, struct pt_regs *regs, long ret)
{
	__u8 kind;
	switch (syscall_nr(regs)) {
	case NR_read:
	case NR_recvfrom:
		kind = IO_BUF;
		break;
	case NR_readv:
		kind = IO_IOV;
		break;
	case NR_recvmsg:
		kind = IO_MSG;
		break;
	case NR_write:
	case NR_sendto:
	case NR_writev:
	case NR_sendmsg:
		kind = IO_SEND;
		break;
	case NR_listen:
		return exit_listen(ret);
	case NR_accept:
	case NR_accept4:
		return exit_accept(ret);
	default:
		return 0;
	}
	if (kind != IO_SEND && ret <= 0)
		return 0; /* a read that moved nothing (EAGAIN, EOF): a compare */
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 id = (__u64)task->tgid << 32 | (__u32)task->pid; /* bpf_get_current_pid_tgid() */
	struct io_args *a = kind == IO_SEND ? send_args(task, id, ret) : read_args(regs, task, kind);
	if (!a)
		return 0;
	emit_io(a, id, ret);
	a->state = 0; /* a send's saved arguments are used up */
	return 0;
}

/* An exec event carries the program's path and argv: the agent decides
 * selection from them when the process is already gone (or a zombie) by
 * the time it reads /proc, as short-lived clients often are. */
#define EXEC_PATH_MAX 256
#define EXEC_ARGV_MAX 256

struct exec_event {
	struct event_hdr hdr;
	char info[EXEC_PATH_MAX + EXEC_ARGV_MAX]; /* path NUL argv (NUL-separated) */
};

SEC("tracepoint/sched/sched_process_exec")
int on_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	__u8 *st = bpf_map_lookup_elem(&traced_pids, &tgid);
	if (st) {
		*st &= ~TRACE_BIND; /* a new program: its binder (if any) is the agent's to set again */
		bpf_map_delete_elem(&py_procs, &tgid);
	}
	if (!watch_exec)
		return 0;
	/* Capture from the first syscall; the agent confirms or drops it. */
	__u8 pending = TRACE_PENDING;
	bpf_map_update_elem(&traced_pids, &tgid, &pending, BPF_NOEXIST);
	struct exec_event *e = bpf_ringbuf_reserve(&ctl_events, sizeof(*e), 0);
	if (!e) {
		count(CNT_CTL_DROPS);
		return 0;
	}
	__builtin_memset(&e->hdr, 0, sizeof(e->hdr));
	e->hdr.type = EV_EXEC;
	e->hdr.pid = tgid;
	e->hdr.tid = (__u32)id;
	e->hdr.fd = -1;
	e->hdr.start_ns = e->hdr.end_ns = bpf_ktime_get_ns();
	long n = bpf_probe_read_kernel_str(e->info, EXEC_PATH_MAX - 1,
					   (void *)ctx + (ctx->__data_loc_filename & 0xFFFF));
	if (n < 0)
		n = 0;
	n &= EXEC_PATH_MAX - 1;
	/* The new image's argv was just copied onto its stack: resident. */
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u64 as = BPF_CORE_READ(task, mm, arg_start), ae = BPF_CORE_READ(task, mm, arg_end);
	__u64 alen = ae > as ? ae - as : 0;
	if (alen > EXEC_ARGV_MAX)
		alen = EXEC_ARGV_MAX;
	if (alen && bpf_probe_read_user(e->info + n, alen, (void *)as))
		alen = 0;
	e->hdr.captured = n + alen;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int on_exit(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	if ((__u32)id != tgid || !trace_state(tgid))
		return 0; /* a thread, or not ours */
	bpf_map_delete_elem(&traced_pids, &tgid);
	emit_ctl(&ctl_events, EV_EXIT, tgid, tgid, -1, 0, 0);
	return 0;
}

/* A selected process forking a new process (pre-fork servers: gunicorn,
 * nginx, php-fpm): the child is selected before it runs a syscall. Raw
 * tracepoint to see the child task (threads share the tgid already). */
SEC("raw_tracepoint/sched_process_fork")
int on_fork(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *parent = (struct task_struct *)ctx->args[0];
	struct task_struct *child = (struct task_struct *)ctx->args[1];
	__u32 ptgid = BPF_CORE_READ(parent, tgid);
	__u8 state = trace_state(ptgid);
	if (!state)
		return 0;
	__u32 ctgid = BPF_CORE_READ(child, tgid);
	if (ctgid == ptgid)
		return 0; /* a new thread */
	bpf_map_update_elem(&traced_pids, &ctgid, &state, BPF_ANY);
	emit_ctl(&ctl_events, EV_FORK, ptgid, ctgid, -1, 0, ctgid);
	return 0;
}
