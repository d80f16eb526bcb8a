/* traceparent injection on the egress path, without bpf_probe_write_user.
 *
 * sockops puts the client sockets of selected processes (those they
 * connect()) into a sockhash; the sk_msg program on that sockhash runs in
 * the writing thread's sendmsg and applies the plan http.h prepared at
 * sys_enter of the same syscall: it inserts the traceparent (+ tracestate)
 * line right after the request line. Everything else is untouched, and any
 * failure leaves the message exactly as the application wrote it. */
#pragma once

#include "http.h"
#include "kafka_inject.h"
#include "h2_apply.h"

/* Client sockets of selected processes, keyed by socket cookie. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u64);
} client_socks SEC(".maps");

/* Sockets a selected process is connecting (cookie), until established:
 * the established callback runs in softirq, where the pid is not known. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u8);
} connecting SEC(".maps");

#define SOCKOPS_TCP_CONNECT_CB 3
#define SOCKOPS_ACTIVE_ESTABLISHED_CB 4

SEC("sockops")
int track_client_sockets(struct bpf_sock_ops *skops)
{
	__u64 cookie;
	switch (skops->op) {
	case SOCKOPS_TCP_CONNECT_CB: /* in connect(): the caller's context */
		if (!trace_state(bpf_get_current_pid_tgid() >> 32))
			return 1;
		cookie = bpf_get_socket_cookie(skops);
		__u8 one = 1;
		bpf_map_update_elem(&connecting, &cookie, &one, BPF_ANY);
		break;
	case SOCKOPS_ACTIVE_ESTABLISHED_CB:
		cookie = bpf_get_socket_cookie(skops);
		if (!bpf_map_lookup_elem(&connecting, &cookie))
			return 1;
		bpf_map_delete_elem(&connecting, &cookie);
		if (bpf_sock_hash_update(skops, &client_socks, &cookie, BPF_NOEXIST))
			count(CNT_SOCKHASH_FULL);
		break;
	}
	return 1;
}

/* A forwarded traceparent: its parent-id digits become our client span's,
 * only where the message still holds the digits the plan was made from
 * (fail closed: anything else passes as written). Same length: nothing is
 * pushed, the message keeps its layout. */
static __always_inline int rewrite_in_place(struct sk_msg_md *msg, struct inject_plan *p)
{
	__u32 off = p->off;
	if (off == 0 || off + REWRITE_LEN > msg->size)
		return SK_PASS;
	if (bpf_msg_pull_data(msg, off, off + REWRITE_LEN, 0))
		goto fail;
	__u8 *data = msg->data, *end = msg->data_end;
	if (data + REWRITE_LEN > end)
		goto fail;
	for (int i = 0; i < REWRITE_LEN; i++)
		if (data[i] != p->expect[i])
			goto fail;
	for (int i = 0; i < REWRITE_LEN; i++)
		data[i] = p->bytes[i];
	p->done = 1;
	count(CNT_REWRITTEN);
	return SK_PASS;
fail:
	count(CNT_INJECT_FAILED);
	return SK_PASS;
}

/* Attached to the sockhash only on kernels whose self-test shows the
 * sockhash FIONREAD regression (6.6.128+, 6.12.75+, 6.18.14+): there a
 * socket in a sockhash without a receive verdict answers ioctl(FIONREAD)
 * with 0 (and may miss read wake-ups), which stalls nginx-style readers.
 * With a verdict the kernel takes its receive path that counts queued
 * bytes correctly; the program itself passes everything unchanged. */
SEC("sk_skb/verdict")
int pass_received(struct __sk_buff *skb)
{
	return SK_PASS;
}

SEC("sk_msg")
int inject_traceparent(struct sk_msg_md *msg)
{
	if (kafka_inject_msg(msg))
		return SK_PASS;
	__u64 id = bpf_get_current_pid_tgid();
	if (h2_apply(msg, id))
		return SK_PASS; /* an HTTP/2 write: h2.h */
	struct inject_plan *p = bpf_map_lookup_elem(&inject_plans, &id);
	if (!p || p->done)
		return SK_PASS;
	/* Another socket's message? remote_port is the network-order port,
	 * in the low or (newer kernels) the high half of the field. */
	__u32 rp = msg->remote_port;
	if (msg->local_port != p->local_port || (rp != p->remote_port && (rp >> 16) != p->remote_port))
		return SK_PASS;
	if (p->mode == PLAN_REWRITE)
		return rewrite_in_place(msg, p);
	__u32 off = p->off, len = p->len;
	if (len == 0 || len > INJECT_MAX || off == 0 || off >= msg->size)
		return SK_PASS;
	if (bpf_msg_push_data(msg, off, len, 0)) {
		count(CNT_INJECT_FAILED);
		return SK_PASS;
	}
	/* The pushed bytes are outside the direct window until pulled; and
	 * every write must be re-checked against data_end. */
	if (bpf_msg_pull_data(msg, off, off + len, 0))
		goto undo;
	__u8 *data = msg->data, *end = msg->data_end;
	for (__u32 i = 0; i < INJECT_MAX; i++) {
		if (i >= len)
			break;
		if (data + i + 1 > end)
			goto undo;
		data[i] = p->bytes[i];
	}
	p->done = 1;
	count(CNT_INJECTED);
	/* The insertion leaves the headers in three pieces, which TCP may send
	 * as three segments; a receiver reading only the first would miss the
	 * line. Make the headers one piece (best effort: they are correct
	 * either way). */
	__u32 whole = p->hdr_end + len;
	if (whole > msg->size)
		whole = msg->size;
	bpf_msg_pull_data(msg, 0, whole, 0);
	return SK_PASS;
undo:
	bpf_msg_pop_data(msg, off, len, 0);
	count(CNT_INJECT_FAILED);
	return SK_PASS;
}
