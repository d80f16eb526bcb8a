/* Per-stream server contexts of HTTP/2 requests read by Go programs.
 *
 * Go's HTTP/2 servers (grpc-go, x/net/http2) read every request of a
 * connection on one goroutine and run each handler on another, so the
 * reading goroutine proves nothing (h2_serve is not used for them). Here,
 * for every request HEADERS frame a Go server reads (h2_seg.h walks them
 * all, also past the captured prefix), the kernel decides that stream's
 * ids once:
 *   h2_streams[pid, sid, sock]  trace id, SERVER span id, parent
 * and reports them to the agent in the segment event (a record whose
 * length has H2_REC_STREAM set, holding a trace_ctx), so the SERVER span
 * carries exactly these ids. A runtime hand-off (grpcgo.h: grpc-go's
 * handleStream) gives them to the handler goroutine.
 *
 * Ids come from our own traceparent field (the literal h2.h injects, or
 * any literal with a plain 55-byte value); a block without any
 * traceparent name starts a new root. A HEADERS frame split across reads
 * is decided from its last piece (h2_seg.h notes it as a tail), which
 * holds our field when it has one, but never as a root. A block with
 * CONTINUATION, over H2_BLOCK_MAX without our field, or with a
 * traceparent the kernel cannot decode (Huffman, indexed) decides
 * nothing: the agent then parents the SERVER span from the decoded
 * header, and the handler's calls do not link. */
#pragma once

#include "h2.h"

struct h2_stream_key {
	__u32 pid;
	__u32 sid;
	__u64 sk;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct h2_stream_key);
	__type(value, struct trace_ctx);
} h2_streams SEC(".maps");

#define H2_MAX_OPENS 256 /* streams decided per read (more: the rest decide nothing) */

/* A request HEADERS frame read (its header at start of the syscall's buffer). */
struct h2_frame_at {
	__u32 start; /* offset of the frame header */
	__u32 len;   /* frame payload length; tail: its last bytes, at offset 0 */
	__u32 sid;
	__u32 flags;
	__u32 tail;  /* the frame began in an earlier syscall: only its tail is here */
};

/* The request HEADERS frames of one read, noted by h2_seg.h's walk and
 * decided after it by h2_stream_opens: inside the walk's callback the
 * decision would be a call too deep for the 512 bytes of stack the call
 * chain below a read's program shares. Per CPU; n is 0 between reads. */
struct h2_opens {
	__u64 buf;
	__u64 sk;
	__u32 ret; /* bytes the syscall read */
	__u32 n;
	__u32 padlen; /* scratch: a frame's pad length */
	__u32 _pad;
	struct h2_stream_key key;
	struct h2_frame_at f[H2_MAX_OPENS];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct h2_opens);
} h2_opens_scratch SEC(".maps");

/* The EV_H2_SEGS event being filled (h2_seg.h), per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct data_event);
} h2_seg_scratch SEC(".maps");

/* Sends the records in se, if any, under the data event's header hdr
 * (copied here: most syscalls have none to send). */
static __always_inline void h2_seg_send(struct data_event *se, const struct event_hdr *hdr)
{
	__u32 n = se->hdr.segs;
	if (!n)
		return;
	se->hdr = *hdr;
	se->hdr.type = EV_H2_SEGS;
	se->hdr.captured = 0;
	se->hdr.segs = n;
	__u64 size = sizeof(se->hdr) + n;
	if (size > sizeof(*se))
		size = sizeof(*se);
	if (bpf_ringbuf_output(&events, se, size, data_wakeup_flags(size)))
		count(CNT_DATA_DROPS);
	se->hdr.segs = 0;
}

struct h2_seg_rec {
	__u32 off; /* offset in the syscall's bytes */
	__u32 len;
};

/* Decides the ids of the stream of noted frame i from its header block in
 * user memory and appends them to the segment event as a stream record. */
__attribute__((noinline)) int h2_stream_open(__u32 i)
{
	__u32 zero = 0;
	struct h2_opens *os = bpf_map_lookup_elem(&h2_opens_scratch, &zero);
	if (!os)
		return 0;
	struct h2_frame_at *f = &os->f[i & (H2_MAX_OPENS - 1)];
	struct h2_stream_key *key = &os->key; /* in the map: off the stack */
	key->pid = bpf_get_current_pid_tgid() >> 32;
	key->sid = f->sid;
	key->sk = os->sk;
	struct h2_walk *w = bpf_map_lookup_elem(&h2_walk_scratch, &zero);
	struct value_buf *vb = bpf_map_lookup_elem(&value_scratch, &zero);
	struct data_event *se = bpf_map_lookup_elem(&h2_seg_scratch, &zero);
	const __u32 rec = sizeof(struct h2_seg_rec) + sizeof(struct trace_ctx);
	__u64 at = se ? se->hdr.segs : 0;
	if (!se || at > sizeof(se->data) - rec)
		goto unknown; /* no room to tell the agent: decide nothing */
	__u64 fs = (__u64)f->start + H2_HDR + h2_frag_start(f->flags);
	__u64 fend = (__u64)f->start + H2_HDR + f->len;
	if (f->tail) { /* the block's last bytes: our field, if any, is at its end */
		fs = 0;
		fend = f->len;
	}
	if (!w || !vb || !(f->flags & H2F_END_HEADERS) || fend > os->ret)
		goto unknown;
	os->padlen = 0;
	if ((f->flags & H2F_PADDED) && bpf_probe_read_user(&os->padlen, 1, (void *)(os->buf + f->start + H2_HDR)))
		goto unknown;
	__u64 pad = os->padlen & 0xff;
	if (fs + pad >= fend)
		goto unknown;
	__u64 blen = fend - pad - fs;
	__u64 n = blen > H2_BLOCK_MAX ? H2_BLOCK_MAX : blen;
	asm volatile("" : "+r"(n));
	if (n > H2_BLOCK_MAX || bpf_probe_read_user(w->blk, n, (void *)(os->buf + fend - pad - n)))
		goto unknown;
	struct h2_search s = {.blk = w->blk, .n = n};
	bpf_loop(H2_BLOCK_MAX, h2_value_cb, &s, 0);
	struct trace_ctx *c = &w->ctx;
	__builtin_memset(c, 0, sizeof(*c));
	c->kind = CTX_SERVER;
	if (s.found) {
		/* Our field: its 55-byte value, then the block's end or more fields. */
		__u32 v = (s.found - 1) & (H2_BLOCK_MAX - 1);
		bpf_probe_read_kernel(vb->b, 56, &w->blk[v]);
		vb->avail = 55;
		if (!parse_traceparent(vb, c))
			goto unknown;
		c->ctx_flags = CTXF_HAS_PARENT;
		if (!parent_based)
			c->trace_flags = sample(c->trace_id);
	} else {
		/* A root only when the whole block was searched for the name. */
		w->blen = n;
		if (f->tail || blen > H2_BLOCK_MAX || h2_has_tp_name(w))
			goto unknown;
		random_bytes(c->trace_id, 4);
		c->trace_flags = sample(c->trace_id);
	}
	random_bytes(c->span_id, 2);
	bpf_map_update_elem(&h2_streams, key, c, BPF_ANY);
	at = se->hdr.segs; /* reloaded: the verifier tracks this one's bound */
	asm volatile("" : "+r"(at));
	if (at > sizeof(se->data) - rec)
		return 0;
	struct h2_seg_rec *r = (struct h2_seg_rec *)&se->data[at];
	r->off = f->sid;
	r->len = H2_REC_STREAM | sizeof(struct trace_ctx);
	bpf_probe_read_kernel(&se->data[at + sizeof(*r)], sizeof(*c), c);
	se->hdr.segs += rec;
	return 1;
unknown:
	bpf_map_delete_elem(&h2_streams, key); /* no stale ids from a former socket at this address */
	return 0;
}

static long h2_open_cb(__u64 i, void *arg)
{
	h2_stream_open((__u32)i);
	return 0;
}

/* After the segment walk of a read (ev: its data event): decides the
 * streams it noted and sends their records, before the data event. */
__attribute__((noinline)) int h2_stream_opens(struct data_event *ev)
{
	__u32 zero = 0;
	struct h2_opens *os = bpf_map_lookup_elem(&h2_opens_scratch, &zero);
	struct data_event *se = bpf_map_lookup_elem(&h2_seg_scratch, &zero);
	if (!os || !os->n || !se || !ev)
		return 0;
	__u32 n = os->n < H2_MAX_OPENS ? os->n : H2_MAX_OPENS;
	os->n = 0;
	se->hdr.segs = 0;
	bpf_loop(n, h2_open_cb, NULL, 0);
	h2_seg_send(se, &ev->hdr);
	return 0;
}

/* At the entry of a Go program's HTTP/2 write on sk: the streams its plan
 * gave a caller's ids (h2_out.h) go to the agent as stream records, ahead
 * of the write's segments and data event. */
__attribute__((noinline)) int h2_out_emit(__u64 sk)
{
	__u32 zero = 0;
	struct h2_walk *w = bpf_map_lookup_elem(&h2_walk_scratch, &zero);
	struct data_event *se = bpf_map_lookup_elem(&h2_seg_scratch, &zero);
	if (!w || !se)
		return 0;
	__u64 size = (__u64)w->recs.n * sizeof(struct h2_out_rec);
	if (!size || size > sizeof(w->recs.r) || size > sizeof(se->data))
		return 0;
	__builtin_memset(&se->hdr, 0, sizeof(se->hdr));
	if (bpf_probe_read_kernel(se->data, size, w->recs.r))
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	se->hdr.type = EV_H2_SEGS;
	se->hdr.dir = DIR_SEND;
	se->hdr.pid = id >> 32;
	se->hdr.tid = (__u32)id;
	se->hdr.sock_id = sk;
	se->hdr.segs = size;
	size += sizeof(se->hdr);
	if (bpf_ringbuf_output(&events, se, size, data_wakeup_flags(size)))
		count(CNT_DATA_DROPS);
	se->hdr.segs = 0;
	return 0;
}

/* Which connection a Go transport serves (grpcgo.h fills it when the
 * transport starts serving): a runtime hand-off names the transport (grpc-go's
 * *http2Server), the kernel knows the socket. */
struct go_h2conn_key {
	__u32 pid;
	__u32 _pad;
	__u64 t;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct go_h2conn_key);
	__type(value, __u64);
} go_h2conns SEC(".maps");
