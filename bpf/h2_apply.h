/* HTTP/2 egress, applied in sk_msg: the plan h2.h made at sys_enter of
 * the write is carried out on the message, each planned frame header
 * checked first. */
#pragma once

#include "h2.h"

/* Inserts one planned field; shift is what earlier insertions added. */
static __always_inline int h2_apply_site(struct sk_msg_md *msg, struct h2_site *s, __u32 shift)
{
	__u32 fo = s->frame_off + shift, io = s->ins_off + shift;
	if (io < fo + H2_HDR || io > msg->size)
		return -1;
	if (bpf_msg_pull_data(msg, fo, fo + H2_HDR, 0))
		return -1;
	__u8 *d = msg->data, *e = msg->data_end;
	if (d + H2_HDR > e)
		return -1;
	for (int i = 0; i < H2_HDR; i++)
		if (d[i] != s->hdr[i])
			return -1; /* not the frame planned */
	__u32 flen = (__u32)d[0] << 16 | (__u32)d[1] << 8 | d[2];
	if (fo + H2_HDR + flen > msg->size)
		return -1;
	if (bpf_msg_push_data(msg, io, H2_FIELD_LEN, 0))
		return -1;
	if (bpf_msg_pull_data(msg, io, io + H2_FIELD_LEN, 0))
		goto undo;
	__u8 field[72];
	field[0] = 0x00; /* literal without indexing, new name */
	field[1] = 11;
	__builtin_memcpy(field + 2, "traceparent", 11);
	field[13] = 55; /* plain (not Huffman) value */
	put_traceparent(field + 14, s->trace_id, s->span_id, s->trace_flags);
	d = msg->data;
	e = msg->data_end;
	for (__u32 i = 0; i < H2_FIELD_LEN; i++) {
		if (d + i + 1 > e)
			goto undo;
		d[i] = field[i];
	}
	if (bpf_msg_pull_data(msg, fo, fo + H2_HDR, 0))
		goto undo;
	d = msg->data;
	e = msg->data_end;
	if (d + 3 > e)
		goto undo;
	flen += H2_FIELD_LEN;
	d[0] = flen >> 16;
	d[1] = flen >> 8;
	d[2] = flen;
	return 0;
undo:
	bpf_msg_pop_data(msg, io, H2_FIELD_LEN, 0);
	return -1;
}

struct h2_apply_arg {
	struct sk_msg_md *msg;
	struct h2_send *s;
	struct h2_more_sites *more;
};

/* bpf_loop callback: site i (verified once, however many sites). */
static long h2_apply_cb(__u64 i, void *arg)
{
	struct h2_apply_arg *a = arg;
	struct h2_send *s = a->s;
	struct h2_site *site = &s->site[i & (H2_BASE_SITES - 1)];
	if (i >= H2_BASE_SITES) {
		if (!a->more)
			return 1;
		site = &a->more->site[(i - H2_BASE_SITES) & (H2_MAX_SITES - 1)];
	}
	if (h2_apply_site(a->msg, site, (__u32)i * H2_FIELD_LEN)) {
		count(CNT_INJECT_FAILED);
		return 1;
	}
	s->applied++;
	count(CNT_INJECTED);
	return 0;
}

/* sk_msg: applies the HTTP/2 plan of this write. Returns 0 when the
 * write is not an HTTP/2 one (the HTTP/1 plan applies). */
static __always_inline int h2_apply(struct sk_msg_md *msg, __u64 id)
{
	struct h2_send *s = bpf_map_lookup_elem(&h2_sends, &id);
	if (!s)
		return 0;
	__u32 rp = msg->remote_port;
	if (s->consumed || msg->local_port != s->local_port ||
	    (rp != s->remote_port && (rp >> 16) != s->remote_port))
		return 1;
	s->consumed = 1; /* a long write reaches sk_msg in pieces: only the first */
	struct h2_apply_arg a = {.msg = msg, .s = s};
	if (s->n > H2_BASE_SITES)
		a.more = bpf_map_lookup_elem(&h2_sends_more, &id);
	bpf_loop(s->n < H2_MAX_SITES ? s->n : H2_MAX_SITES, h2_apply_cb, &a, 0);
	return 1;
}

