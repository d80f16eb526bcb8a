/* Shared kernel-side definitions: event layouts read by agent/capture, the
 * selected-process map, counters, and the fd -> socket walk. */
#pragma once

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define S_IFMT 00170000
#define S_IFSOCK 0140000

/* Largest syscall payload prefix one event can carry; the runtime limit
 * (capture_size) is at most this. Must be a power of two. */
#define MAX_CAPTURE 8192

char LICENSE[] SEC("license") = "Dual BSD/GPL";

enum event_type {
	EV_DATA = 1,   /* bytes moved on a TCP socket */
	EV_CLOSE = 2,  /* a traced TCP socket fd was closed */
	EV_EXEC = 3,   /* a process exec'd (only when the agent selects by exe) */
	EV_EXIT = 4,   /* a selected process exited */
	EV_FORK = 5,   /* a selected process forked a new process (auto-selected) */
	EV_LISTEN = 6, /* a process started listening (only when selecting by port) */
	EV_H2_SEGS = 7, /* HTTP/2 header segments of the data event that follows (h2_seg.h) */
};

enum direction {
	DIR_RECV = 0,
	DIR_SEND = 1,
};

/* Counters, indices of the per-CPU `counters` array. */
enum counter {
	CNT_DATA_EVENTS = 0,
	CNT_DATA_DROPS = 1,  /* ringbuf full: an event was lost */
	CNT_CTL_DROPS = 2,
	CNT_TRUNCATED = 3,   /* payload larger than capture_size */
	CNT_ARGS_DROPS = 4,  /* per-thread syscall arguments could not be stored */
	CNT_INJECTED = 5,    /* traceparent lines inserted by sk_msg */
	CNT_INJECT_FAILED = 6, /* insertion attempted and undone */
	CNT_SOCKHASH_FULL = 7, /* a client socket could not join the sockhash */
	CNT_REWRITTEN = 8,   /* forwarded traceparents given our client span id in place */
	CNT_H2_SEG_LOST = 9, /* an HTTP/2 direction's frame position lost (h2_seg.h) */
	CNT_MAX = 10,
};

struct conn_addr {
	__u8 saddr[16]; /* local (the traced process's end) */
	__u8 daddr[16]; /* remote */
	__u16 sport;    /* host order */
	__u16 dport;    /* host order */
	__u16 family;
	__u16 _pad;
};

/* Header of every event on the `events` ring. Data events append
 * `captured` payload bytes. Kept 8-byte aligned. */
/* Values of traced_pids. */
enum trace_state {
	TRACE_ON = 1,
	TRACE_PENDING = 2, /* exec'd while the agent selects by exe: traced until the agent decides */
	TRACE_STATE_MASK = 3,
	TRACE_GO = 0x10,   /* flag: a Go program; its requests are keyed by goroutine, not thread */
	TRACE_BIND = 0x20, /* flag: a binder (bind.h) says which request its client calls serve; it wins over the thread */
};

/* event_hdr.flags */
#define EVF_PENDING 1

/* trace_ctx.kind */
enum ctx_kind {
	CTX_NONE = 0,
	CTX_SERVER = 1, /* a request read: span_id is the SERVER span's, parent_id its caller's */
	CTX_CLIENT = 2, /* a request written: span_id is the CLIENT span's, parent_id the SERVER span's */
};

/* trace_ctx.ctx_flags */
#define CTXF_HAS_PARENT 1 /* parent_id is set */
#define CTXF_INJECTED 2   /* traceparent carrying span_id was inserted into the request */
#define CTXF_FORWARDED 4  /* the request forwards the traceparent of the one served: span_id is ours
			   * (written over its parent-id in place when CTXF_INJECTED) */

/* Trace context the kernel decided for one request (ids in W3C byte order). */
struct trace_ctx {
	__u8 trace_id[16];
	__u8 span_id[8];
	__u8 parent_id[8];
	__u8 kind;
	__u8 trace_flags; /* W3C trace-flags: 1 = sampled */
	__u8 ctx_flags;
	__u8 _pad[5];
};

struct event_hdr {
	__u8 type;
	__u8 dir;
	__u8 flags;
	__u8 _pad0;
	__u32 pid; /* tgid */
	__u32 tid;
	__s32 fd;
	__u64 sock_id; /* struct sock address: identity while the socket lives */
	__u64 start_ns; /* CLOCK_MONOTONIC at syscall entry */
	__u64 end_ns;   /* at syscall exit */
	__u32 len;      /* bytes the syscall moved (or port for EV_LISTEN, child pid for EV_FORK) */
	__u32 captured; /* payload bytes that follow */
	__u32 segs;     /* EV_H2_SEGS: bytes of segment records that follow */
	__u32 _pad1;
	struct conn_addr addr;
	struct trace_ctx ctx; /* EV_DATA only */
};

struct data_event {
	struct event_hdr hdr;
	/* Twice MAX_CAPTURE so the verifier can prove offset+size stays inside
	 * when gathering iovecs at a variable offset. */
	__u8 data[MAX_CAPTURE * 2];
};

/* Processes (tgids) being traced. Filled by the agent, extended by fork. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u8);
} traced_pids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* Data and close events, in syscall order per connection. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} events SEC(".maps");

/* Process lifecycle events, separate so a data flood cannot drop them. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 << 10);
} ctl_events SEC(".maps");

/* Data events wake the agent only when the bytes waiting cross
 * wakeup_bytes (the agent sets it to an eighth of the ring; it also polls
 * every few milliseconds, which is what drains the ring at a steady rate),
 * and on every event past 4 * wakeup_bytes (half the ring), so a
 * crossing two CPUs raced past cannot leave a filling ring unwatched. A
 * wakeup is an irq_work self-IPI charged to the traced process inside its
 * syscall (a VM exit under virtualisation) plus an agent wakeup; waking
 * on every event past a small threshold cost both on a steady stream. */
volatile const __u64 wakeup_bytes = 1 << 20;

static __always_inline __u64 data_wakeup_flags(__u64 size)
{
	__u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	if ((avail < wakeup_bytes && avail + size >= wakeup_bytes) || avail >= 4 * wakeup_bytes)
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);
	if (v)
		*v += 1;
}

/* The process's trace_state, 0 when not traced. */
static __always_inline __u8 trace_state(__u32 tgid)
{
	__u8 *v = bpf_map_lookup_elem(&traced_pids, &tgid);
	return v ? *v : 0;
}

/* Turns a kernel address into a read-only BTF pointer of a type, so its
 * fields load directly (exception-handled loads) rather than through a
 * bpf_probe_read_kernel call each. The verifier rewrites the call to a
 * register move. Linux 6.3+. */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;
#define kernel_cast(p, type) ((type *)bpf_rdonly_cast((p), bpf_core_type_id_kernel(type)))

/* fd -> struct sock of the current task, or NULL when fd is not a TCP
 * socket. Walks task->files->fdt->fd[fd] with BTF pointer loads, which
 * work under lockdown and for sockets opened before the agent started;
 * only the fd array (a pointer to pointers) needs a probe read. */
static __always_inline struct sock *task_sock_of_fd(struct task_struct *task, int fd)
{
	if (fd < 0)
		return NULL;
	struct files_struct *files = task->files;
	if (!files)
		return NULL;
	struct fdtable *fdt = files->fdt;
	if (!fdt || (unsigned int)fd >= fdt->max_fds)
		return NULL;
	struct file **fds = fdt->fd;
	void *fp = NULL;
	bpf_probe_read_kernel(&fp, sizeof(fp), &fds[fd]);
	if (!fp)
		return NULL;
	struct file *file = kernel_cast(fp, struct file);
	struct inode *inode = file->f_inode;
	if (!inode || (inode->i_mode & S_IFMT) != S_IFSOCK)
		return NULL;
	void *priv = file->private_data;
	if (!priv)
		return NULL;
	struct socket *sock = kernel_cast(priv, struct socket);
	if (sock->type != SOCK_STREAM)
		return NULL;
	struct sock *sk = sock->sk;
	if (!sk)
		return NULL;
	__u16 family = sk->__sk_common.skc_family;
	if (family != AF_INET && family != AF_INET6)
		return NULL;
	return sk;
}

/* tcp_sock_of_fd is task_sock_of_fd for the current task; callers that
 * hold the task pass it (a helper call saved: they are the cost here). */
static __always_inline struct sock *tcp_sock_of_fd(int fd)
{
	return task_sock_of_fd(bpf_get_current_task_btf(), fd);
}

/* sk: a BTF pointer (tcp_sock_of_fd), so these are direct loads. */
static __always_inline void read_conn_addr(struct sock *sk, struct conn_addr *a)
{
	struct sock_common *c = &sk->__sk_common;
	a->family = c->skc_family;
	a->sport = c->skc_num;
	a->dport = bpf_ntohs(c->skc_dport);
	if (a->family == AF_INET) {
		__be32 s = c->skc_rcv_saddr, d = c->skc_daddr;
		__builtin_memcpy(a->saddr, &s, 4);
		__builtin_memcpy(a->daddr, &d, 4);
	} else {
		struct in6_addr s6 = c->skc_v6_rcv_saddr, d6 = c->skc_v6_daddr;
		__builtin_memcpy(a->saddr, &s6, 16);
		__builtin_memcpy(a->daddr, &d6, 16);
	}
}
