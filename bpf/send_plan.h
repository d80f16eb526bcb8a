/* A write's entry: whether it is a client call of the request the thread
 * (or goroutine, or bound context) serves, and the traceparent plan for
 * it (HTTP/1: http_send.h, HTTP/2: h2.h, Kafka: kafka_inject.h). */
#pragma once

#include "io.h"
#include "http_send.h"
#include "inject.h"
#include "gohttp.h"
#include "bind.h"
#include "python.h"
#include "h2.h"

/* The iovec array a send passes (iovp 0: a plain buffer) and its count;
 * 0 if unreadable. */
static __always_inline int send_iovs(struct io_args *a, __u64 *iovp, __u64 *cnt)
{
	*iovp = 0;
	*cnt = 0;
	if (a->kind == IO_BUF)
		return 1;
	if (a->kind == IO_MSG) {
		struct user_msghdr_min m = {};
		if (bpf_probe_read_user(&m, sizeof(m), (void *)a->ptr))
			return 0;
		*iovp = m.iov;
		*cnt = m.iovlen;
	} else {
		*iovp = a->ptr;
		*cnt = a->iovcnt;
	}
	return *cnt >= 1;
}

/* The first buffer of a send whose iovec array is iovp (0: a plain buffer,
 * base and len preset); 0 if unreadable. */
static __always_inline int send_first_buf(__u64 iovp, __u64 *base, __u64 *len)
{
	if (!iovp)
		return 1;
	struct user_iovec iov = {};
	if (bpf_probe_read_user(&iov, sizeof(iov), (void *)iovp))
		return 0;
	*base = iov.base;
	*len = iov.len;
	return 1;
}

/* A write by a thread that serves a request: when it starts a request, it
 * is a client call of that request (context, maybe a traceparent plan).
 * Decided from the first bytes (SEND_HEAD) where they suffice: only a
 * request start that gets a plan reads up to HDR_SCAN bytes. */
__attribute__((noinline)) int prepare_send(struct io_args *a, __u64 count_arg)
{
	if (!a)
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	struct ctx_key k;
	current_ctx_key(&k, a->state);
	struct srv_ctx *cur = bpf_map_lookup_elem(&server_ctx, &k);
	if (!cur && (a->state & TRACE_GO))
		cur = go_client_ctx(&k); /* net/http writes from its writeLoop goroutine */
	/* A Produce request batches records of whichever callers queued them
	 * (Go clients drain from goroutines the first caller started): only
	 * the writer's own request may parent it, never its lineage. */
	struct srv_ctx *own = cur;
	if (!cur && (a->state & TRACE_GO))
		cur = go_inherited_ctx(&k); /* a goroutine its request started (golineage.h) */
	__u64 iovp, iovcnt;
	if (!send_iovs(a, &iovp, &iovcnt))
		return 0;
	if (kafka_inject_enabled &&
	    kafka_plan_send(a->fd, a->ptr, count_arg, iovp, iovcnt, own, &a->ctx))
		return 0; /* a Kafka Produce: its PRODUCER span, served or not */
	struct sock *sk = task_sock_of_fd(task, a->fd);
	__u64 base = a->ptr, len = count_arg;
	if (!sk || !send_first_buf(iovp, &base, &len))
		return 0;
	if (a->state & TRACE_BIND) {
		/* What the binder proved wins (bind.h, python.h); else the thread's request,
		 * with its guards (Node's HTTP/2 sessions write beneath the
		 * tracker; a grpc-js server's requests are not named). */
		struct srv_ctx *b = bound_request(k.pid, sk);
		int none = 0;
		if (!b)
			b = py_bound_request(k.pid, k.tid, &none); /* python.h */
		if (b || none)
			cur = b;
	}
	__u32 n = len > HDR_SCAN ? HDR_SCAN : (__u32)len;
	__u32 hn = n > SEND_HEAD ? SEND_HEAD : n;
	__u32 zero = 0;
	struct h2_send_args *h2a = bpf_map_lookup_elem(&h2_args_scratch, &zero);
	if (!h2a)
		return 0;
	h2a->sk = (__u64)sk;
	h2a->base = base;
	h2a->len = len;
	h2a->iovp = iovp;
	h2a->iovcnt = iovcnt > MAX_IOV ? MAX_IOV : (__u32)iovcnt;
	h2a->hn = hn;
	h2a->pid = k.pid;
	h2a->g = k.goid;
	__u8 *head = h2a->head; /* a power of two above SEND_HEAD: the mask bounds the read */
	__builtin_memset(head, 0, sizeof(h2a->head));
	asm volatile("" : "+r"(hn)); /* keeps the mask (clang knows hn <= SEND_HEAD) */
	if (bpf_probe_read_user(head, hn & (sizeof(h2a->head) - 1), (void *)base))
		return 0;
	if (is_response_start(head, n))
		return 0; /* answering the request it serves, not a call (nor HTTP/2) */
	int usable = ctx_usable(cur);
	int h1_request = is_request_start(head, n);
	if (!usable && !h1_request && !h2_head_matters(head, hn))
		return 0; /* the common case: not serving anything */
	if ((usable || h2_head_matters(head, hn)) && h2_prepare_send(h2a, cur, &a->ctx))
		return 0; /* HTTP/2: h2.h */
	if (!h1_request) {
		if (usable)
			client_ctx(cur, &a->ctx);
		return 0;
	}
	/* An HTTP/1 request: read whole headers even when not serving one, as
	 * a forwarded traceparent names the request served (http_send.h). */
	struct data_event *ev = bpf_map_lookup_elem(&scratch, &zero);
	if (!ev)
		return 0;
	if (bpf_probe_read_user(ev->data, n & (HDR_SCAN * 2 - 1), (void *)base))
		return 0;
	plan_http1_send(ev->data, n, sk, usable ? cur : NULL, &a->ctx);
	return 0;
}
