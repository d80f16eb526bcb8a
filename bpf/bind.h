/* Event loops (Node.js, nginx, asyncio) serve many requests at once on one
 * thread, so the thread proves nothing about which request a client call
 * serves. For a process with a binder (TRACE_BIND), the runtime itself
 * says so, and what it proves wins over the thread:
 *   conn_reqs[pid, server sock]    the latest request read on a connection
 *                                  (its ids; a token once the runtime
 *                                  names it)
 *   client_binds[pid, cookie]      the request a client socket's next
 *                                  writes serve, set by a binder just
 *                                  before they happen; without one (never
 *                                  named, or nothing proven) the
 *                                  thread's request decides, with the
 *                                  guards it has without a binder
 * Binders:
 *   nginx: a uprobe on ngx_chain_writer, which writes every upstream
 *     request: its writer's connection is the upstream one, whose data is
 *     the ngx_http_request_t it proxies, whose connection is the client's.
 *   Node.js helper (agent/runtime/nodejs): sentinel access() calls on
 *     "/dev/null/.tracer-agent/..." paths (they fail with ENOTDIR):
 *       s/<server fd>/<token>               a request is dispatched
 *       c/<client fd>/<server fd>/<token>   its work writes on a client socket
 *       c/<client fd>/0/0                   work of no request writes there
 * A client socket is keyed by its cookie (never reused; sockops gave it
 * one at connect), so a new connection at a freed socket's address never
 * inherits a binding. */
#pragma once

#include "http.h"
#include "syscalls.h"

struct conn_key {
	__u32 pid;
	__u32 _pad;
	__u64 id; /* struct sock * (server connections) or socket cookie (client sockets) */
};

struct conn_req {
	struct srv_ctx c;
	__u32 token;      /* the runtime's name for the request (0: not named) */
	__u32 unanswered; /* requests read and not yet answered on the connection */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct conn_key);
	__type(value, struct conn_req);
} conn_reqs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct conn_key);
	__type(value, struct srv_ctx);
} client_binds SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct conn_req);
} conn_req_scratch SEC(".maps");

static __always_inline __u64 sock_cookie(struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
}

/* After a read on server connection sk: when it decided the ids of a new
 * request there (the thread now serves it), the connection serves it.
 * Returns whether it did. */
static __always_inline int bind_note_request(__u64 sk, __u8 state)
{
	if (!(state & TRACE_BIND))
		return 0;
	struct ctx_key k;
	current_ctx_key(&k, state);
	struct srv_ctx *cur = bpf_map_lookup_elem(&server_ctx, &k);
	if (!cur || !cur->valid || cur->sock != sk)
		return 0;
	struct conn_key ck = {.pid = k.pid, .id = sk};
	struct conn_req *old = bpf_map_lookup_elem(&conn_reqs, &ck);
	if (old && *(__u64 *)old->c.span_id == *(__u64 *)cur->span_id)
		return 0; /* the same request (a later read of it) */
	__u32 zero = 0;
	struct conn_req *nv = bpf_map_lookup_elem(&conn_req_scratch, &zero);
	if (!nv)
		return 0;
	nv->c = *cur;
	nv->token = 0;
	nv->unanswered = (old && old->unanswered < 255 ? old->unanswered : 0) + 1;
	bpf_map_update_elem(&conn_reqs, &ck, nv, BPF_ANY);
	return 1;
}

/* A response starts on sk: its request is answered (its ids stay, for
 * work the runtime names by token after the response). */
static __always_inline void bind_note_response(__u64 sk, __u8 state)
{
	if (!(state & TRACE_BIND))
		return;
	struct conn_key ck = {.pid = bpf_get_current_pid_tgid() >> 32, .id = sk};
	struct conn_req *cr = bpf_map_lookup_elem(&conn_reqs, &ck);
	if (cr) {
		cr->c.valid = 0;
		if (cr->unanswered)
			cr->unanswered--;
	}
}

/* The request the binder proved client socket sk's writes serve, or NULL:
 * none proven (the thread's request then decides, as without a binder). */
static __always_inline struct srv_ctx *bound_request(__u32 pid, struct sock *sk)
{
	struct conn_key ck = {.pid = pid, .id = sock_cookie(sk)};
	if (!ck.id)
		return NULL;
	return bpf_map_lookup_elem(&client_binds, &ck);
}

/* Client socket cfd's next writes serve the request on server socket sfd:
 * the one still unanswered there (token 0) or the one named token. sfd < 0
 * unbinds. Anything unproven unbinds too. */
static __always_inline void bind_client(struct task_struct *task, int cfd, int sfd, __u32 token)
{
	struct sock *csk = task_sock_of_fd(task, cfd);
	if (!csk)
		return;
	struct conn_key bk = {.pid = task->tgid, .id = sock_cookie(csk)};
	if (!bk.id)
		return; /* connected before the agent: never in the sockhash either */
	struct sock *ssk = sfd >= 0 ? task_sock_of_fd(task, sfd) : NULL;
	struct conn_key ck = {.pid = task->tgid, .id = (__u64)ssk};
	struct conn_req *cr = ssk ? bpf_map_lookup_elem(&conn_reqs, &ck) : NULL;
	__u32 zero = 0;
	struct conn_req *snap = bpf_map_lookup_elem(&conn_req_scratch, &zero);
	if (!cr || !snap || (token ? cr->token != token : !cr->c.valid)) {
		/* Nothing proven: the thread's request decides, with its guards. */
		bpf_map_delete_elem(&client_binds, &bk);
		return;
	}
	/* A named request binds by its token, answered or not (work after
	 * the response is still its work). */
	*snap = *cr;
	snap->c.valid = 1;
	snap->c.outstanding = 1; /* ctx_usable */
	snap->c.hdr_pending = 0;
	bpf_map_update_elem(&client_binds, &bk, &snap->c, BPF_ANY);
}

/* ---- Node.js helper sentinels ------------------------------------------ */

#define SENTINEL_LEN 64
#define SENTINEL_PREFIX 24 /* "/dev/null/.tracer-agent/" */

/* In a map, not on the stack: the verifier then tracks none of the parsed
 * values (on the stack it would follow every digit of every number into
 * the fd lookups and never converge). */
struct sentinel_parse {
	char b[SENTINEL_LEN];
	__u32 i;
	__u32 nnum; /* numbers completed */
	__u32 ndig; /* digits of the current one */
	__u64 num[3];
	int bad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sentinel_parse);
} sentinel_scratch SEC(".maps");

struct sentinel_loop {
	struct sentinel_parse *p; /* bpf_loop's context must be on the stack */
};

static long sentinel_digit(__u64 j, void *arg)
{
	struct sentinel_parse *p = ((struct sentinel_loop *)arg)->p;
	__u32 i = p->i;
	if (i >= SENTINEL_LEN)
		return 1;
	char ch = p->b[i & (SENTINEL_LEN - 1)];
	p->i = i + 1;
	if (ch == 0) {
		p->bad |= !p->ndig;
		p->nnum++;
		return 1;
	}
	__u32 n = p->nnum;
	if (n > 2) {
		p->bad = 1;
		return 1;
	}
	if (ch == '/') {
		p->bad |= !p->ndig;
		p->nnum = n + 1;
		p->ndig = 0;
		return 0;
	}
	if (ch < '0' || ch > '9' || ++p->ndig > 10) { /* u32: 10 digits at most */
		p->bad = 1;
		return 1;
	}
	if (n == 0)
		p->num[0] = p->num[0] * 10 + (ch - '0');
	else if (n == 1)
		p->num[1] = p->num[1] * 10 + (ch - '0');
	else
		p->num[2] = p->num[2] * 10 + (ch - '0');
	return 0;
}

/* A global function: the verifier checks it once, on its own, instead of
 * inside every path of on_sys_enter (which it would overflow). */
__noinline int sentinel_path(__u64 path)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u32 zero = 0;
	struct sentinel_parse *p = bpf_map_lookup_elem(&sentinel_scratch, &zero);
	if (!p)
		return 0;
	char *b = p->b;
	long n = bpf_probe_read_user_str(b, SENTINEL_LEN, (void *)path);
	if (n < SENTINEL_PREFIX + 5)
		return 0;
	const __u64 *w = (const __u64 *)b;
	/* "/dev/nul" "l/.trace" "r-agent/", little endian */
	if (w[0] != 0x6c756e2f7665642fULL || w[1] != 0x65636172742e2f6cULL || w[2] != 0x2f746e6567612d72ULL)
		return 0;
	char kind = b[SENTINEL_PREFIX];
	if ((kind != 's' && kind != 'c') || b[SENTINEL_PREFIX + 1] != '/')
		return 0;
	p->i = SENTINEL_PREFIX + 2;
	p->nnum = p->ndig = 0;
	p->num[0] = p->num[1] = p->num[2] = 0;
	p->bad = 0;
	struct sentinel_loop lc = {.p = p};
	bpf_loop(SENTINEL_LEN, sentinel_digit, &lc, 0);
	if (p->bad || p->num[0] > 0x7fffffff || p->num[1] > 0x7fffffff || p->num[2] > 0xffffffffULL)
		return 0;
	__u64 num[3] = {p->num[0], p->num[1], p->num[2]};
	__u32 nnum = p->nnum;
	if (kind == 's' && nnum == 2 && num[1]) {
		struct sock *ssk = task_sock_of_fd(task, (int)num[0]);
		struct conn_key ck = {.pid = task->tgid, .id = (__u64)ssk};
		struct conn_req *cr = ssk ? bpf_map_lookup_elem(&conn_reqs, &ck) : NULL;
		/* Only the connection's latest request, unanswered, not yet named
		 * (two requests in one read: the second is not named). */
		if (cr && cr->c.valid && !cr->token)
			cr->token = (__u32)num[1];
	} else if (kind == 'c' && nnum == 3) {
		if (num[2] && num[1])
			bind_client(task, (int)num[0], (int)num[1], (__u32)num[2]);
		else
			bind_client(task, (int)num[0], -1, 0);
	}
	return 0;
}

/* access(path, ...) / faccessat(dirfd, path, ...) of a traced process. */
static __always_inline int enter_sentinel(struct pt_regs *regs, int path_arg)
{
	struct task_struct *task = bpf_get_current_task_btf();
	if (!(trace_state(task->tgid) & TRACE_BIND) || compat_syscall(regs, task))
		return 0;
	__u64 args[3];
	syscall_args(regs, args);
	return sentinel_path(path_arg ? args[1] : args[0]);
}

/* ---- nginx ------------------------------------------------------------- */

#if defined(__TARGET_ARCH_x86)
#define C_ARG1(ctx) ((ctx)->di)
#elif defined(__TARGET_ARCH_arm64)
#define C_ARG1(ctx) (ARM64_REGS(ctx)->regs[0])
#endif

#define NGX_HTTP_SIGNATURE 0x50545448 /* "HTTP": ngx_http_request_t's first field */

/* ngx_int_t ngx_chain_writer(void *data, ngx_chain_t *in), data an
 * ngx_chain_writer_ctx_t {out, last, connection, ...}; ngx_connection_t
 * starts {data, read, write, fd}; ngx_http_request_t {signature,
 * connection, ...}. These layouts have been the same since nginx 1.0. */
SEC("uprobe/ngx_chain_writer")
int ngx_upstream_write(struct pt_regs *ctx)
{
	struct task_struct *task = bpf_get_current_task_btf();
	if (!(trace_state(task->tgid) & TRACE_BIND))
		return 0;
	__u64 writer = C_ARG1(ctx), uc = 0, r = 0, cc = 0;
	__u32 sig = 0;
	__s32 ufd = -1, cfd = -1;
	if (bpf_probe_read_user(&uc, 8, (void *)(writer + 16)) || !uc ||
	    bpf_probe_read_user(&ufd, 4, (void *)(uc + 24)) || bpf_probe_read_user(&r, 8, (void *)uc) || !r ||
	    bpf_probe_read_user(&sig, 4, (void *)r))
		return 0;
	if (sig != NGX_HTTP_SIGNATURE || bpf_probe_read_user(&cc, 8, (void *)(r + 8)) || !cc ||
	    bpf_probe_read_user(&cfd, 4, (void *)(cc + 24))) {
		bind_client(task, ufd, -1, 0); /* not an HTTP request's upstream (stream module, mail) */
		return 0;
	}
	bind_client(task, ufd, cfd, 0);
	return 0;
}

/* ---- a process's SIGUSR1 handler (run on demand, BPF_PROG_TEST_RUN) ----- */

/* The Node.js helper attaches through SIGUSR1 only when the handler is
 * Node's own (its inspector's), not the application's: only the kernel
 * knows another process's sigaction. */
struct sig_query {
	__u32 pid;
	__s32 err; /* -1: no such process */
	__u64 handler;
};

extern struct task_struct *bpf_task_from_pid(s32 pid) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;

SEC("syscall")
int sigusr1_handler(struct sig_query *q)
{
	struct task_struct *t = bpf_task_from_pid(q->pid);
	if (!t) {
		q->err = -1;
		return 0;
	}
	q->handler = (__u64)BPF_CORE_READ(t, sighand, action[9].sa.sa_handler); /* SIGUSR1 = 10 */
	q->err = 0;
	bpf_task_release(t);
	return 0;
}
