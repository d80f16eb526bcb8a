/* CPython 3.11-3.13 (asyncio, thread pools): which request a Context's
 * work serves. Every asyncio callback and task step runs inside a
 * contextvars Context, each a copy of the one current where it was
 * scheduled (PyContext_CopyCurrent); threads given work by
 * asyncio.to_thread or anyio run it in such a copy too. A Context's
 * request is the one its copy was made for, which is what a ContextVar
 * set by an SDK would hold. The binding rules, at a copy N of P made in
 * the step (P, context_ver) of a thread, first match wins:
 *   R1 the step read a new request on server connection S (the one still
 *      unanswered there):                                   N := REQ it
 *   R2 the step accepted connection S:                      N := CONN S
 *   R3 P is REQ R:                                          N := REQ R
 *   R4 P is CONN S: S's one unanswered request, or else     N := CONN S
 *   else                                                    N := NONE
 * context_ver changes only when a Context is entered or left, so
 * (ts->context, context_ver) names one uninterrupted callback: nothing
 * else ran on the thread between the read and the copy. R4 takes a
 * request only when exactly one is unanswered on S (HTTP/1, no
 * pipelining). A client write in a Context bound to REQ serves it; one
 * in a CONN Context serves S's one unanswered request, if there is one;
 * one in a NONE Context serves none (a task started with the app calls
 * out while a request is in flight), and so does one never seen made
 * that runs entered (Context.run: older than the agent). Only a thread's
 * base Context (never entered) is left to the thread's rule and its
 * guards: threaded servers, where nothing copies.
 *
 * A Context freed (its tp_dealloc) loses its binding, so an address
 * reused by the freelist starts unbound; keys carry the process's
 * generation, so a reused pid never meets an old process's bindings. */
#pragma once

#include "bind.h"

#if defined(__TARGET_ARCH_x86)
#define C_RET(ctx) ((ctx)->ax)
#elif defined(__TARGET_ARCH_arm64)
#define C_RET(ctx) (ARM64_REGS(ctx)->regs[0])
#endif

/* PyContext.ctx_entered (3.11-3.13): set while it runs in Context.run. */
#define PYCTX_ENTERED 0x28

/* Per process, from agent/runtime/python: where the thread states are and
 * the field offsets of its minor version. */
struct py_proc {
	__u64 runtime; /* &_PyRuntime */
	__u32 gen;
	__u16 interp_head;  /* _PyRuntime.interpreters.head */
	__u16 threads_head; /* PyInterpreterState.threads.head */
	__u16 ts_next;      /* PyThreadState.next */
	__u16 ts_tid;       /* PyThreadState.native_thread_id */
	__u16 ts_ctx;       /* PyThreadState.context */
	__u16 ts_ctx_ver;   /* PyThreadState.context_ver */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct py_proc);
} py_procs SEC(".maps");

struct py_tkey {
	__u32 pid;
	__u32 tid;
};

struct py_tstate {
	__u64 ts;
	__u32 gen;
	__u32 _pad;
};

/* tid -> its PyThreadState (found by walking the thread list: the GIL is
 * released around socket calls, so no "current" pointer is set there). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct py_tkey);
	__type(value, struct py_tstate);
} py_tstates SEC(".maps");

struct py_ckey {
	__u32 pid;
	__u32 gen;
	__u64 ctx; /* PyContext * */
};

enum py_bind_kind {
	PYB_REQ = 1,  /* work of request c */
	PYB_CONN = 2, /* work of server connection sk (no request of its own) */
	PYB_NONE = 3, /* made while the agent watched, of no request (startup and background work) */
};

struct py_bind {
	__u32 kind;
	__u32 _pad;
	__u64 sk;    /* PYB_CONN: struct sock * */
	__u64 ident; /* PYB_CONN: its ports and peer, so a freed sock reused is not it */
	struct srv_ctx c; /* PYB_REQ */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 32768);
	__type(key, struct py_ckey);
	__type(value, struct py_bind);
} py_binds SEC(".maps");

/* The step of a thread that last read a new request (py_read_steps) or
 * accepted a connection (py_accept_steps). */
struct py_step {
	__u32 gen;
	__u32 _pad;
	__u64 ctx, ver;
	__u64 sk, ident;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct py_tkey);
	__type(value, struct py_step);
} py_read_steps SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct py_tkey);
	__type(value, struct py_step);
} py_accept_steps SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct py_bind);
} py_scratch SEC(".maps");

/* A server connection's identity beyond its address: ports and the peer's
 * (last 4 bytes of its) address. */
static __always_inline __u64 sock_ident(__u64 skp)
{
	struct sock *sk = kernel_cast((void *)skp, struct sock);
	__u64 ports = sk->__sk_common.skc_portpair;
	__u32 peer = sk->__sk_common.skc_family == AF_INET ? sk->__sk_common.skc_daddr
							   : sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[3];
	return ports << 32 | peer;
}

struct py_walk {
	__u64 interp, ts, found;
	__u32 tid, _pad;
	struct py_proc *cfg;
};

static long py_walk_step(__u64 i, void *arg)
{
	struct py_walk *w = arg;
	struct py_proc *cfg = w->cfg;
	if (!w->ts) {
		/* this interpreter's threads are done: the next one's (its first
		 * field is next) */
		if (bpf_probe_read_user(&w->interp, 8, (void *)w->interp) || !w->interp ||
		    bpf_probe_read_user(&w->ts, 8, (void *)(w->interp + cfg->threads_head)))
			return 1;
		return 0;
	}
	__u64 tid = 0;
	if (bpf_probe_read_user(&tid, 8, (void *)(w->ts + cfg->ts_tid)))
		return 1;
	if (tid == w->tid) {
		w->found = w->ts;
		return 1;
	}
	if (bpf_probe_read_user(&w->ts, 8, (void *)(w->ts + cfg->ts_next)))
		return 1;
	return 0;
}

/* The PyThreadState of thread tid of process pid, 0 if none (not Python,
 * or a thread Python does not know). */
__noinline __u64 py_thread_state(__u32 pid, __u32 tid)
{
	struct py_proc *cfg = bpf_map_lookup_elem(&py_procs, &pid);
	if (!cfg)
		return 0;
	struct py_tkey k = {.pid = pid, .tid = tid};
	struct py_tstate *c = bpf_map_lookup_elem(&py_tstates, &k);
	__u64 got = 0;
	if (c && c->gen == cfg->gen && !bpf_probe_read_user(&got, 8, (void *)(c->ts + cfg->ts_tid)) &&
	    got == tid)
		return c->ts; /* still this thread's (a freed one is reused by another) */
	struct py_walk w = {.tid = tid, .cfg = cfg};
	if (bpf_probe_read_user(&w.interp, 8, (void *)(cfg->runtime + cfg->interp_head)) || !w.interp ||
	    bpf_probe_read_user(&w.ts, 8, (void *)(w.interp + cfg->threads_head)))
		return 0;
	bpf_loop(512, py_walk_step, &w, 0);
	if (!w.found)
		return 0;
	struct py_tstate v = {.ts = w.found, .gen = cfg->gen};
	bpf_map_update_elem(&py_tstates, &k, &v, BPF_ANY);
	return w.found;
}

/* The current Context of the calling thread and its step counter; 0 when
 * the process is not followed or the thread has no Context. */
static __always_inline __u64 py_current(__u32 pid, __u32 tid, struct py_proc *cfg, __u64 *ver)
{
	__u64 ts = py_thread_state(pid, tid), ctx = 0;
	if (!ts || bpf_probe_read_user(&ctx, 8, (void *)(ts + cfg->ts_ctx)) ||
	    bpf_probe_read_user(ver, 8, (void *)(ts + cfg->ts_ctx_ver)))
		return 0;
	return ctx;
}

/* The step of the calling thread: it read a new request on server
 * connection sk (steps: py_read_steps) or accepted sk (py_accept_steps). */
static __always_inline void py_note(__u64 sk, void *steps)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 pid = id >> 32;
	struct py_proc *cfg = bpf_map_lookup_elem(&py_procs, &pid);
	if (!cfg || !sk)
		return;
	struct py_tkey k = {.pid = pid, .tid = (__u32)id};
	struct py_step s = {.gen = cfg->gen, .sk = sk};
	s.ctx = py_current(pid, k.tid, cfg, &s.ver);
	if (!s.ctx) {
		bpf_map_delete_elem(steps, &k); /* no Context: no step to name (a threaded server) */
		return;
	}
	s.ident = sock_ident(sk);
	bpf_map_update_elem(steps, &k, &s, BPF_ANY);
}

/* sk: the event's sock_id (a scalar: global functions take no pointers). */
__noinline int py_note_read(__u64 sk)
{
	py_note(sk, &py_read_steps);
	return 0;
}

__noinline int py_note_accept(int fd)
{
	struct sock *sk = tcp_sock_of_fd(fd);
	if (sk)
		py_note((__u64)sk, &py_accept_steps);
	return 0;
}

/* b->c := the one unanswered request on server connection sk, if there is
 * exactly one. */
static __always_inline int py_sole_request(__u32 pid, __u64 sk, struct py_bind *b)
{
	struct conn_key ck = {.pid = pid, .id = sk};
	struct conn_req *cr = bpf_map_lookup_elem(&conn_reqs, &ck);
	if (!cr || !cr->c.valid || cr->unanswered != 1)
		return 0;
	b->kind = PYB_REQ;
	b->c = cr->c;
	b->c.outstanding = 1; /* ctx_usable */
	b->c.hdr_pending = 0;
	return 1;
}

/* Context n was just made by the calling thread (R1-R4 above). */
__noinline int py_bind_new(__u32 pid, __u32 tid, __u64 n)
{
	struct py_proc *cfg = bpf_map_lookup_elem(&py_procs, &pid);
	__u32 zero = 0;
	struct py_bind *b = bpf_map_lookup_elem(&py_scratch, &zero);
	if (!cfg || !b)
		return 0;
	struct py_ckey nk = {.pid = pid, .gen = cfg->gen, .ctx = n};
	__u64 ver = 0, p = py_current(pid, tid, cfg, &ver);
	struct py_tkey tk = {.pid = pid, .tid = tid};
	struct py_step *st = p ? bpf_map_lookup_elem(&py_read_steps, &tk) : NULL;
	if (st && st->gen == cfg->gen && st->ctx == p && st->ver == ver && py_sole_request(pid, st->sk, b)) {
		bpf_map_update_elem(&py_binds, &nk, b, BPF_ANY); /* R1 */
		return 0;
	}
	st = p ? bpf_map_lookup_elem(&py_accept_steps, &tk) : NULL;
	if (st && st->gen == cfg->gen && st->ctx == p && st->ver == ver && sock_ident(st->sk) == st->ident) {
		b->kind = PYB_CONN; /* R2 */
		b->sk = st->sk;
		b->ident = st->ident;
		bpf_map_update_elem(&py_binds, &nk, b, BPF_ANY);
		return 0;
	}
	struct py_ckey pk = {.pid = pid, .gen = cfg->gen, .ctx = p};
	struct py_bind *pb = p ? bpf_map_lookup_elem(&py_binds, &pk) : NULL;
	if (pb && pb->kind == PYB_REQ) {
		bpf_map_update_elem(&py_binds, &nk, pb, BPF_ANY); /* R3 */
		return 0;
	}
	if (pb && pb->kind == PYB_CONN && sock_ident(pb->sk) == pb->ident) {
		if (py_sole_request(pid, pb->sk, b)) /* R4 */
			bpf_map_update_elem(&py_binds, &nk, b, BPF_ANY);
		else
			bpf_map_update_elem(&py_binds, &nk, pb, BPF_ANY);
		return 0;
	}
	b->kind = PYB_NONE;
	bpf_map_update_elem(&py_binds, &nk, b, BPF_ANY);
	return 0;
}

/* PyContext *PyContext_CopyCurrent(void): every copy asyncio (Task,
 * Handle), contextvars.copy_context and the thread pools make. */
SEC("uretprobe/PyContext_CopyCurrent")
int py_context_copied(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 n = C_RET(ctx);
	if (n)
		py_bind_new(id >> 32, (__u32)id, n);
	return 0;
}

/* PyContext_Type.tp_dealloc(PyContext *): every Context freed. */
SEC("uprobe/context_tp_dealloc")
int py_context_freed(struct pt_regs *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct py_proc *cfg = bpf_map_lookup_elem(&py_procs, &pid);
	if (!cfg)
		return 0;
	struct py_ckey k = {.pid = pid, .gen = cfg->gen, .ctx = C_ARG1(ctx)};
	bpf_map_delete_elem(&py_binds, &k);
	return 0;
}

/* For a client write of the calling thread: 1 and py_scratch's c := the
 * request its Context is bound to; 2: it is proven to serve none; 0: its
 * Context was never seen made (the thread decides). */
__noinline int py_write_request(__u32 pid, __u32 tid)
{
	struct py_proc *cfg = bpf_map_lookup_elem(&py_procs, &pid);
	__u32 zero = 0;
	struct py_bind *b = bpf_map_lookup_elem(&py_scratch, &zero);
	if (!cfg || !b)
		return 0;
	__u64 ver = 0;
	struct py_ckey k = {.pid = pid, .gen = cfg->gen, .ctx = py_current(pid, tid, cfg, &ver)};
	if (!k.ctx)
		return 0;
	struct py_bind *pb = bpf_map_lookup_elem(&py_binds, &k);
	if (!pb) {
		/* Never seen made: a thread's base Context (the thread decides) or,
		 * when entered (asyncio runs every callback in Context.run), one
		 * older than the agent: a task started with the app, a connection
		 * accepted before. Nothing proves which request that serves. */
		__u8 entered = 0;
		bpf_probe_read_user(&entered, 1, (void *)(k.ctx + PYCTX_ENTERED));
		return entered ? 2 : 0;
	}
	if (pb->kind == PYB_REQ) {
		b->c = pb->c;
		return 1;
	}
	if (pb->kind == PYB_CONN && sock_ident(pb->sk) == pb->ident && py_sole_request(pid, pb->sk, b))
		return 1;
	return 2;
}

/* The request a Python client write serves, or NULL: *none says whether
 * that is proven (else the thread's rule decides). */
static __always_inline struct srv_ctx *py_bound_request(__u32 pid, __u32 tid, int *none)
{
	__u32 zero = 0;
	struct py_bind *b;
	int r = py_write_request(pid, tid);
	*none = r == 2;
	if (r != 1 || !(b = bpf_map_lookup_elem(&py_scratch, &zero)))
		return NULL;
	return &b->c;
}

/* accept/accept4 returned fd in a process with a binder. */
static __always_inline int exit_accept(long ret)
{
	if (ret < 0 || !(trace_state(bpf_get_current_pid_tgid() >> 32) & TRACE_BIND))
		return 0;
	return py_note_accept((int)ret);
}
