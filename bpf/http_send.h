/* An HTTP/1.x request a traced process writes: its client span and what
 * sk_msg (inject.h) does to it.
 *
 * - No traceparent, written while serving one request: a client span child
 *   of it, and a traceparent line inserted after the request line.
 * - A traceparent the process received with a request it serves (a proxy
 *   passing headers on): that request is the parent, whatever thread or
 *   loop writes; the 16 hex digits of the parent-id are overwritten in
 *   place with a client span id of ours (same length, nothing pushed), so
 *   the chain reads caller CLIENT -> proxy SERVER -> proxy CLIENT ->
 *   upstream SERVER instead of two spans sharing the caller's id.
 * - Any other traceparent is the application's own (an SDK): left alone,
 *   and no span of ours takes its id. */
#pragma once

#include "http.h"

/* plan_forward's working set: more than the stack has left. */
struct fwd_scratch {
	struct value_buf vb;
	struct trace_ctx tp;
	struct fwd_key k;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fwd_scratch);
} fwd_scratch SEC(".maps");

static __always_inline void plan_common(struct inject_plan *p, struct sock *sk, struct hdr_scan *s)
{
	p->hdr_end = s->st.hdr_end;
	p->done = 0;
	p->local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
	p->remote_port = BPF_CORE_READ(sk, __sk_common.skc_dport);
}

/* The traceparent line carrying c's ids (and cur's tracestate), inserted
 * after the request line. */
static __always_inline void plan_insert(struct hdr_scan *s, struct sock *sk, struct srv_ctx *cur,
					const struct trace_ctx *c)
{
	__u32 zero = 0;
	struct inject_plan *p = bpf_map_lookup_elem(&plan_scratch, &zero);
	if (!p)
		return;
	plan_common(p, sk, s);
	p->mode = PLAN_INSERT;
	p->off = s->st.line_end;
	__u8 *b = p->bytes;
	__builtin_memcpy(b, "traceparent: ", 13);
	put_traceparent(b + 13, c->trace_id, c->span_id, c->trace_flags);
	b[68] = '\r';
	b[69] = '\n';
	__u32 len = TP_LINE_LEN;
	__u32 ts_len = cur->ts_len;
	if (ts_len > 0 && ts_len < TS_MAX) {
		__builtin_memcpy(b + TP_LINE_LEN, "tracestate: ", 12);
		bpf_probe_read_kernel(b + TP_LINE_LEN + 12, TS_MAX, cur->tracestate);
		/* The mask restates ts_len < TS_MAX for the verifier; the empty asm
		 * keeps the compiler from dropping it as redundant. */
		asm volatile("" : "+r"(ts_len));
		__u32 e = TP_LINE_LEN + 12 + (ts_len & (TS_MAX - 1));
		b[e] = '\r';
		b[e + 1] = '\n';
		len = e + 2;
	}
	p->len = len;
	__u64 id = bpf_get_current_pid_tgid();
	bpf_map_update_elem(&inject_plans, &id, p, BPF_ANY);
}

/* The request carries the traceparent at s->st.tp_off: when the process
 * received it with a request it serves, out becomes our client span of
 * that request and the parent-id is planned to be overwritten with its id.
 * Returns 1 when forwarded. */
static __always_inline int plan_forward(const __u8 *data, struct hdr_scan *s, struct sock *sk,
					struct trace_ctx *out)
{
	__u32 zero = 0;
	struct fwd_scratch *w = bpf_map_lookup_elem(&fwd_scratch, &zero); /* beyond the stack */
	if (!w)
		return 0;
	copy_value(&w->vb, data, s->st.n, s->st.tp_off);
	if (!parse_traceparent(&w->vb, &w->tp))
		return 0;
	fwd_key_of(&w->k, w->tp.trace_id, w->tp.parent_id);
	struct fwd_val *f = bpf_map_lookup_elem(&fwd_ctx, &w->k);
	if (!f || f->dup)
		return 0;
	out->kind = CTX_CLIENT;
	out->ctx_flags = CTXF_HAS_PARENT | CTXF_FORWARDED;
	out->trace_flags = f->trace_flags;
	__builtin_memcpy(out->trace_id, w->tp.trace_id, 16);
	__builtin_memcpy(out->parent_id, f->span_id, 8);
	random_bytes(out->span_id, 2);
	if (!inject_enabled || !s->st.line_end || !s->st.hdr_end)
		return 1; /* the span keeps a fresh id; the downstream sees the caller's */

	struct inject_plan *p = bpf_map_lookup_elem(&plan_scratch, &zero);
	if (!p)
		return 1;
	plan_common(p, sk, s);
	p->mode = PLAN_REWRITE;
	/* "00-" + 32 hex + "-" after the value's leading blanks (as
	 * parse_traceparent skips them). */
	__u32 ws = 0;
	if (w->vb.b[0] == ' ' || w->vb.b[0] == '\t')
		ws = (w->vb.b[1] == ' ' || w->vb.b[1] == '\t') ? 2 : 1;
	p->off = s->st.tp_off + ws + 36;
	p->len = REWRITE_LEN;
#pragma unroll
	for (int i = 0; i < REWRITE_LEN; i++)
		p->expect[i] = w->vb.b[(ws + 36 + i) & 63];
	put_hex(p->bytes, out->span_id, 8);
	__u64 id = bpf_get_current_pid_tgid();
	bpf_map_update_elem(&inject_plans, &id, p, BPF_ANY);
	return 1;
}

/* The thread is about to write data (n bytes scanned) starting an HTTP/1
 * request on sk; cur is the request it serves when that is known (else
 * NULL). Fills out with the request's client span, if any. */
static __always_inline void plan_http1_send(const __u8 *data, __u32 n, struct sock *sk, struct srv_ctx *cur,
					    struct trace_ctx *out)
{
	struct hdr_scan s;
	scan_headers(&s, data, n, 0);
	if (s.st.tp_off) {
		if (plan_forward(data, &s, sk, out))
			return;
		/* The application's own: never given a second one. Its client
		 * span still has the served request as parent (probes/http). */
		if (cur)
			client_ctx(cur, out);
		return;
	}
	if (!cur)
		return;
	client_ctx(cur, out);
	/* Inject only when the request line and the end of headers are in
	 * this write. */
	if (inject_enabled && s.st.line_end && s.st.hdr_end)
		plan_insert(&s, sk, cur, out);
}
