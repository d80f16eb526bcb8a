/* HTTP/2 ingress in the kernel: the frames of captured bytes a server
 * reads (request HEADERS set the reading thread's or goroutine's server
 * context) and writes (response HEADERS answer them). See h2.h. */
#pragma once

#include "h2.h"

/* Walking captured bytes (ev->data) of one read or write. Scalars only,
 * for the global functions below. */
struct h2_rx {
	__u64 data;     /* address of the captured bytes */
	__u32 got;      /* captured bytes */
	__u32 off;      /* next frame header */
	__u32 strict;
	__u32 bad;
	__u32 nreq;     /* request HEADERS frames */
	__u32 nresp;    /* response HEADERS frames (first field :status) */
	__u32 sid;      /* stream of the first request HEADERS */
	__u32 blk;      /* its block, when whole in the capture */
	__u32 blk_end;
	__u32 max_sid;  /* see h2_sock */
};

/* One frame of captured bytes; 1 stops the walk. */
__attribute__((noinline)) int h2_rx_frame(struct h2_rx *r)
{
	if (!r || r->off + H2_HDR > r->got)
		return 1;
	__u8 h[16] = {};
	if (bpf_probe_read_kernel(h, H2_HDR, (void *)(r->data + r->off)))
		return 1;
	struct h2_fh f;
	h2_parse_fh(h, &f);
	if (!h2_plausible(&f, r->strict)) {
		r->bad = 1;
		return 1;
	}
	__u32 fend = r->off + H2_HDR + f.len;
	if (fend < r->off)
		return 1;
	if (f.type == H2_HEADERS) {
		__u32 fs = r->off + H2_HDR + h2_frag_start(f.flags);
		__u32 pad = 0, name = 0;
		if (f.flags & H2F_PADDED)
			bpf_probe_read_kernel(&pad, 1, (void *)(r->data + r->off + H2_HDR));
		int whole = fend <= r->got && (f.flags & H2F_END_HEADERS) && fs + pad <= fend;
		__u32 first = 0;
		if (whole && !bpf_probe_read_kernel(&first, 4, (void *)(r->data + fs)))
			name = h2_first_name(first, fend - pad - fs);
		if (h2_is_status_name(name)) {
			r->nresp++;
		} else if (f.sid > r->max_sid) { /* from a client: opens a request */
			r->max_sid = f.sid;
			if (!r->nreq) {
				r->sid = f.sid;
				if (whole) {
					r->blk = fs;
					r->blk_end = fend - pad;
				}
			}
			r->nreq++;
		}
	}
	r->off = fend;
	return 0;
}

static long h2_rx_cb(__u64 j, void *arg)
{
	return h2_rx_frame(arg) ? 1 : 0;
}

/* Offset (in the captured bytes) of the value of our traceparent field
 * in the block r->blk..r->blk_end; 0 when absent. */
__attribute__((noinline)) int h2_find_tp(struct h2_rx *r)
{
	__u32 zero = 0;
	struct h2_walk *w = bpf_map_lookup_elem(&h2_walk_scratch, &zero);
	if (!r || !w || r->blk_end <= r->blk)
		return 0;
	__u32 n = r->blk_end - r->blk;
	if (n > H2_BLOCK_MAX)
		n = H2_BLOCK_MAX;
	asm volatile("" : "+r"(n));
	if (bpf_probe_read_kernel(w->blk, n & H2_BLK_MASK, (void *)(r->data + r->blk)))
		return 0;
	struct h2_search s = {.blk = w->blk, .n = n};
	bpf_loop(H2_BLOCK_MAX, h2_value_cb, &s, 0);
	return s.found ? r->blk + s.found - 1 : 0;
}

/* The thread read nreq request HEADERS frames (one whole in the capture
 * when r->blk): it now serves them, like on_request_read for HTTP/1. */
static __always_inline void h2_serve(const __u8 *data, struct h2_rx *r, __u64 sk, __u8 state,
				     struct trace_ctx *out)
{
	struct ctx_key k;
	current_ctx_key(&k, state);
	struct srv_ctx *cur = bpf_map_lookup_elem(&server_ctx, &k);
	__u8 outstanding = cur ? cur->outstanding : 0;
	if (k.goid)
		bpf_map_delete_elem(&go_writer, &k);
	__u32 zero = 0;
	struct srv_ctx *nv = bpf_map_lookup_elem(&ctx_scratch, &zero);
	if (!nv)
		return;
	__u32 o = outstanding + r->nreq;
	nv->outstanding = o < 255 ? o : 255;
	nv->sock = sk;
	nv->hdr_pending = 0;
	nv->valid = 0;
	if (r->nreq == 1 && r->blk) {
		struct hdr_scan s = {};
		s.st.tp_off = h2_find_tp(r);
		s.st.n = s.st.tp_off + 55;
		decide_ctx(data, &s, out, nv);
		h2_derive(nv->span_id, r->sid);
	}
	bpf_map_update_elem(&server_ctx, &k, nv, BPF_ANY);
}

/* sys_exit of a read of ret bytes (got captured in data) on sk. Returns 1
 * when sk is an HTTP/2 socket (then the HTTP/1 logic does not apply). */
static __always_inline int h2_on_recv(const __u8 *data, __u32 got, __u32 ret, __u64 sk, __u8 state,
				      struct trace_ctx *out)
{
	struct h2_sock *hs = bpf_map_lookup_elem(&h2_socks, &sk);
	struct h2_rx r = {.data = (__u64)data, .got = got};
	if (!hs) {
		if (got < H2_PREFACE_LEN || !h2_is_preface(data))
			return 0;
		struct h2_sock nv = {.role = H2_SERVER};
		/* h2_seg.h walks this read after: the preface, then frames. Its
		 * writes are taken as frame-aligned from the next one on. */
		nv.seg[DIR_RECV].skip = H2_PREFACE_LEN;
		bpf_map_update_elem(&h2_socks, &sk, &nv, BPF_ANY);
		hs = bpf_map_lookup_elem(&h2_socks, &sk);
		if (!hs)
			return 1;
		r.off = H2_PREFACE_LEN;
	} else if (hs->role != H2_SERVER) {
		return 1;
	} else {
		r.off = hs->rx_skip;
		r.strict = hs->rx_unsync; /* a guess at a boundary: be strict */
		r.max_sid = hs->max_sid;
	}
	bpf_loop(H2_MAX_FRAMES, h2_rx_cb, &r, 0);
	if (!r.bad)
		hs->max_sid = r.max_sid;
	/* Where the next read starts: inside the frame the walk stopped in. */
	if (!r.bad && r.off >= ret) {
		hs->rx_skip = r.off - ret;
		hs->rx_unsync = 0;
	} else {
		hs->rx_skip = 0;
		hs->rx_unsync = 1;
	}
	/* Go servers read a connection's requests on one goroutine and handle
	 * each on another: their streams get ids of their own (h2_stream.h). */
	if (!r.bad && r.nreq && !(state & TRACE_GO))
		h2_serve(data, &r, sk, state, out);
	return 1;
}

#define H2_MAX_ANSWERS 4 /* responses per write counted against the thread's requests */

/* sys_exit of a write (got bytes captured) on sk: response HEADERS on a
 * server socket answer the requests its thread serves. */
static __always_inline void h2_on_send(const __u8 *data, __u32 got, __u64 sk, __u8 state)
{
	struct h2_sock *hs = bpf_map_lookup_elem(&h2_socks, &sk);
	if (!hs || hs->role != H2_SERVER)
		return;
	struct h2_rx r = {.data = (__u64)data, .got = got, .strict = 1};
	bpf_loop(H2_MAX_FRAMES, h2_rx_cb, &r, 0);
	for (int i = 0; i < H2_MAX_ANSWERS; i++) /* bounded: a few answers per write suffice */
		if (i < r.nresp)
			on_response_write(sk, state);
}
