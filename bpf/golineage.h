/* Go goroutine lineage: a goroutine started while its parent serves a
 * request makes its calls for that request (fan-out: `go func()`,
 * errgroup, a WaitGroup), as long as that request is in flight.
 *
 * One uprobe, per goroutine created, never per syscall: on the call of
 * runqput in runtime.newproc.func1 (the `go` statement's body, on the
 * system stack: the new g is its second argument, and the goroutine that
 * ran the `go` statement is the thread's m.curg; offsets in the attach
 * cookie from the executable's DWARF: bits 0-15 g.m, 16-31 m.curg, 32-47
 * g.startpc; 48-63 the executable's go_exes id).
 *   go_lineage[new g] = {root, span}: the goroutine that serves the
 *       request (the parent, or its own root: depth GO_LINEAGE_DEPTH at
 *       most) and that request's SERVER span id at the time.
 * A call looks its goroutine's own context up first (server_ctx, then a
 * writer hand-off); only a goroutine without one uses its lineage, and only
 * while the root still serves that very request (same span id, usable): a
 * child's calls after the response, or a goroutine kept running across
 * requests, link to nothing. Goroutine structs are reused, so every new
 * goroutine starts clean here (no context, no writer role, no lineage);
 * the runtime hand-offs of connection goroutines (net/http's writeLoop,
 * grpc-go's transport reader and loopy writer) drop theirs. */
#pragma once

#include "goabi.h"

#define GO_LINEAGE_DEPTH 4

struct go_lineage {
	__u64 root;   /* runtime.g serving the request */
	__u8 span[8]; /* its SERVER span id when the goroutine was started */
	__u32 depth;
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ctx_key);
	__type(value, struct go_lineage);
} go_lineage SEC(".maps");

/* Which goroutines may inherit: those whose function (g.startpc) is the
 * program's own code or a fan-out helper (errgroup, WaitGroup.Go), never
 * a library's internal goroutine (a client's drain or health-check loop
 * started by whichever request came first would serve every request
 * after it). Per executable, sorted ranges of such functions
 * (agent/capture/golineage.go): go_exes[id] names its slice of
 * go_spawn_allow. */
struct go_fn_range {
	__u64 start, end;
};

#define GO_ALLOW_MAX 65536

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, GO_ALLOW_MAX);
	__type(key, __u32);
	__type(value, struct go_fn_range);
} go_spawn_allow SEC(".maps");

struct go_exe_allow {
	__u32 base, n;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct go_exe_allow);
} go_exes SEC(".maps");

struct go_allow_search {
	__u64 pc;
	__u32 lo, hi;
	__u32 found;
};

/* bpf_loop callback: one step of a binary search over the ranges. */
static long go_allow_cb(__u64 i, void *arg)
{
	struct go_allow_search *s = arg;
	if (s->lo >= s->hi)
		return 1;
	__u32 mid = s->lo + (s->hi - s->lo) / 2;
	struct go_fn_range *r = bpf_map_lookup_elem(&go_spawn_allow, &mid);
	if (!r)
		return 1;
	if (s->pc < r->start)
		s->hi = mid;
	else if (s->pc >= r->end)
		s->lo = mid + 1;
	else {
		s->found = 1;
		return 1;
	}
	return 0;
}

/* Whether a goroutine running the function at pc may inherit. */
static __always_inline int go_spawn_allowed(__u32 exe, __u64 pc)
{
	struct go_exe_allow *e = bpf_map_lookup_elem(&go_exes, &exe);
	if (!e || !e->n)
		return 0;
	struct go_allow_search s = {.pc = pc, .lo = e->base, .hi = e->base + e->n};
	bpf_loop(20, go_allow_cb, &s, 0);
	return s.found;
}

/* The request goroutine k serves through its lineage, while in flight. */
static __always_inline struct srv_ctx *go_inherited_ctx(struct ctx_key *k)
{
	struct go_lineage *l = bpf_map_lookup_elem(&go_lineage, k);
	if (!l)
		return NULL;
	struct ctx_key rk = {.pid = k->pid, .goid = l->root};
	struct srv_ctx *c = bpf_map_lookup_elem(&server_ctx, &rk);
	__u64 a = 0, b = 0;
	if (!ctx_usable(c))
		return NULL;
	__builtin_memcpy(&a, c->span_id, 8);
	__builtin_memcpy(&b, l->span, 8);
	return a == b ? c : NULL;
}

/* The request goroutine k makes calls for: its own, else its lineage's. */
static __always_inline struct srv_ctx *go_request_ctx(struct ctx_key *k)
{
	struct srv_ctx *c = bpf_map_lookup_elem(&server_ctx, k);
	return c ? c : go_inherited_ctx(k);
}

SEC("uprobe/go_spawn")
int go_spawn(struct pt_regs *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	if (!(trace_state(pid) & TRACE_GO))
		return 0;
	__u64 cookie = bpf_get_attach_cookie(ctx);
	struct ctx_key nk = {.pid = pid, .goid = GO_ARG2(ctx)};
	if (!nk.goid)
		return 0;
	/* A reused goroutine struct: nothing of its former life holds. */
	bpf_map_delete_elem(&server_ctx, &nk);
	bpf_map_delete_elem(&go_writer, &nk);
	__u64 m = 0, parent = 0;
	if (bpf_probe_read_user(&m, 8, (void *)(GO_G(ctx) + (cookie & 0xffff))) || !m ||
	    bpf_probe_read_user(&parent, 8, (void *)(m + ((cookie >> 16) & 0xffff))) || !parent)
		goto none;
	struct ctx_key pk = {.pid = pid, .goid = parent};
	struct go_lineage nv = {};
	struct srv_ctx *own = bpf_map_lookup_elem(&server_ctx, &pk);
	if (own) {
		if (!ctx_usable(own))
			goto none;
		nv.root = parent;
		__builtin_memcpy(nv.span, own->span_id, 8);
		nv.depth = 1;
	} else {
		struct go_lineage *pl = bpf_map_lookup_elem(&go_lineage, &pk);
		if (!pl || pl->depth >= GO_LINEAGE_DEPTH || !go_inherited_ctx(&pk))
			goto none;
		nv = *pl;
		nv.depth++;
	}
	__u64 startpc = 0;
	if (bpf_probe_read_user(&startpc, 8, (void *)(nk.goid + ((cookie >> 32) & 0xffff))) ||
	    !go_spawn_allowed(cookie >> 48, startpc))
		goto none;
	bpf_map_update_elem(&go_lineage, &nk, &nv, BPF_ANY);
	return 0;
none:
	bpf_map_delete_elem(&go_lineage, &nk);
	return 0;
}
