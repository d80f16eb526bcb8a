/* HTTP/2 (h2c, gRPC) in the kernel: just enough to carry trace context.
 *
 * Egress (client sockets): at sys_enter of a write, the frames of the
 * message are walked (frame headers only, from user memory); each request
 * HEADERS frame that holds a whole header block (END_HEADERS) gets a plan:
 * append one HPACK "literal without indexing, new name" field
 *   0x00 0x0b "traceparent" 0x37 <55 value bytes>
 * at the end of its block (before any padding) and raise the frame's
 * 24-bit length by H2_FIELD_LEN. Such a field never touches either
 * side's dynamic table, so the connection's HPACK state stays in step.
 * The sk_msg program (h2_apply) checks each frame header is still the
 * one planned before touching anything; any failure leaves the rest of
 * the message as written.
 *
 * Ids: the write's trace_ctx (reported in its event) holds a base span id;
 * the span of stream s is h2_derive(base, s) (the base's last 4 bytes XOR
 * s, big endian). probes/http2 derives the same, so the CLIENT span it
 * builds for a stream carries exactly the id injected for that stream.
 *
 * Ingress (h2_recv.h; server sockets, recognised by the client preface they read):
 * a read holding one request HEADERS frame sets the reading thread's (or
 * goroutine's) server context like an HTTP/1 request read (http.h): from
 * a traceparent literal in the form injected here (or with incremental /
 * never indexing), else a new root; the SERVER span is h2_derive(base, s).
 * Each request read (a HEADERS frame opening a new stream) counts as
 * outstanding; each response HEADERS written (its first field is a
 * static-table :status) answers one. */
#pragma once

#include "http.h"
#include "h2_out.h"

#define H2_PREFACE_LEN 24
#define H2_HDR 9
#define H2_FIELD_LEN 69        /* 1 + 1 + 11 + 1 + 55 */
#define H2_MAX_SITES 256       /* HEADERS frames injected per message */
#define H2_BASE_SITES 64       /* of them in h2_send; the rest in h2_sends_more */
#define H2_MAX_FRAMES 1024     /* frames walked per message */
#define H2_BLOCK_MAX 1024      /* longest header block searched for a traceparent */
#define H2_MAX_FRAME 16384     /* SETTINGS_MAX_FRAME_SIZE default: never exceeded */
#define H2_IOV 8
#define H2_BLK_MASK (H2_BLOCK_MAX * 2 - 1)

#define H2_HEADERS 1
#define H2_CONTINUATION 9
#define H2F_END_HEADERS 0x4
#define H2F_PADDED 0x8
#define H2F_PRIORITY 0x20

enum h2_role {
	H2_CLIENT = 1, /* wrote the client preface */
	H2_SERVER = 2, /* read the client preface */
};

/* One direction's frame position for the header segments (h2_seg.h). */
struct h2_seg_dir {
	__u32 skip;   /* payload bytes of the current frame still to come */
	__u8 type;    /* the current frame's type */
	__u8 hn;      /* bytes of a frame header split across syscalls, in hdr */
	__u8 lost;    /* position unknown: no segments in this direction */
	__u8 _pad;
	__u32 max_sid; /* h2_stream.h: highest stream whose ids were decided */
	__u32 pend_sid; /* h2_stream.h: a request HEADERS frame continues in the next syscall */
	__u8 hdr[24]; /* 9 used; room for a read at any hn < 9 */
};

struct h2_sock {
	__u8 role;
	__u8 no_inject; /* the app sent a traceparent itself, or a partial write lost frame sync */
	__u8 rx_unsync; /* the next read's frame boundary is unknown */
	__u8 _pad;
	__u32 rx_skip;  /* bytes of a frame still to be read before the next frame header */
	__u32 max_sid;  /* highest stream the client opened: a HEADERS frame above opens a request */
	__u32 _pad2;
	struct h2_seg_dir seg[2]; /* by DIR_RECV / DIR_SEND */
};

/* HTTP/2 sockets of traced processes, keyed by struct sock *. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct h2_sock);
} h2_socks SEC(".maps");

/* One planned insertion (offsets in the message as the app wrote it). */
struct h2_site {
	__u32 frame_off; /* the HEADERS frame's header */
	__u32 ins_off;   /* end of its header block */
	__u8 hdr[12];    /* the frame header as planned (9 bytes used) */
	__u8 trace_id[16]; /* the traceparent inserted (h2_apply.h writes the field) */
	__u8 span_id[8];
	__u8 trace_flags;
	__u8 _pad[3];
};

/* A write on an HTTP/2 client socket, from sys_enter to sys_exit. */
struct h2_send {
	__u64 sk;
	__u32 total;    /* bytes handed to the syscall */
	__u32 n;        /* sites planned */
	__u32 applied;  /* sites sk_msg inserted */
	__u32 consumed; /* sk_msg saw the message */
	__u32 local_port;  /* host order */
	__u32 remote_port; /* network order, as sk_msg_md has it */
	struct h2_site site[H2_BASE_SITES];
};

/* Sites H2_BASE_SITES.. of a write that has more (a burst of calls queued
 * while a connection opened: one write opens them all). */
struct h2_more_sites {
	struct h2_site site[H2_MAX_SITES]; /* H2_MAX_SITES - H2_BASE_SITES used */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2048); /* threads inside an HTTP/2 write at once */
	__type(key, __u64); /* pid_tgid */
	__type(value, struct h2_send);
} h2_sends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 128); /* such writes at once */
	__type(key, __u64); /* pid_tgid */
	__type(value, struct h2_more_sites);
} h2_sends_more SEC(".maps");

/* Walking a message being written (user memory, up to H2_IOV pieces). */
struct h2_walk {
	struct h2_send send;
	__u64 iov_base[H2_IOV];
	__u64 iov_len[H2_IOV];
	__u32 niov;
	__u32 off;     /* next frame header */
	__u32 nreq;    /* request HEADERS frames seen */
	__u32 bad;     /* not a frame sequence: plan nothing */
	__u32 has_tp;  /* the app's own traceparent seen */
	__u32 blen;
	__u32 pos;     /* search position in blk */
	__u32 max_sid; /* see h2_sock */
	struct trace_ctx ctx; /* the write's client context (base span id) */
	struct trace_ctx sc;  /* a stream's own, from go_h2_out */
	__u32 pid;
	__u32 _pad;
	__u64 g;       /* a Go writer's goroutine: streams may have their own ids (h2_out.h) */
	struct h2_out_recs recs;
	struct h2_more_sites more;
	struct h2_sock nv; /* a new client socket's entry */
	__u8 hdr[16];
	__u8 blk[H2_BLOCK_MAX * 2];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct h2_walk);
} h2_walk_scratch SEC(".maps");

static const char h2_preface[H2_PREFACE_LEN] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static __always_inline int h2_is_preface(const __u8 *d)
{
	for (int i = 0; i < H2_PREFACE_LEN; i++)
		if (d[i] != (__u8)h2_preface[i])
			return 0;
	return 1;
}

/* Stream s's span id from a syscall's base span id (see the top). */
static __always_inline void h2_derive(__u8 *span, __u32 s)
{
	__u8 d[4] = {span[4] ^ (__u8)(s >> 24), span[5] ^ (__u8)(s >> 16), span[6] ^ (__u8)(s >> 8),
		     span[7] ^ (__u8)s};
	/* An all-zero span id is invalid: keep the base, as http2.StreamSpan
	 * does. */
	if (!(span[0] | span[1] | span[2] | span[3] | d[0] | d[1] | d[2] | d[3]))
		return;
	span[4] = d[0];
	span[5] = d[1];
	span[6] = d[2];
	span[7] = d[3];
}

struct h2_fh {
	__u32 len;
	__u32 sid;
	__u8 type;
	__u8 flags;
};

static __always_inline void h2_parse_fh(const __u8 *b, struct h2_fh *f)
{
	f->len = (__u32)b[0] << 16 | (__u32)b[1] << 8 | b[2];
	f->type = b[3];
	f->flags = b[4];
	f->sid = (__u32)b[5] << 24 | (__u32)b[6] << 16 | (__u32)b[7] << 8 | b[8];
}

/* Flags each frame type defines (RFC 9113 §6). */
static __always_inline __u8 h2_allowed_flags(__u8 type)
{
	switch (type) {
	case 0: return 0x09; /* DATA: END_STREAM, PADDED */
	case 1: return 0x2d; /* HEADERS: + END_HEADERS, PRIORITY */
	case 4: return 0x01; /* SETTINGS: ACK */
	case 5: return 0x0c; /* PUSH_PROMISE */
	case 6: return 0x01; /* PING: ACK */
	case 9: return 0x04; /* CONTINUATION */
	}
	return 0;
}

/* What any well-formed frame of a known type satisfies (RFC 9113 §6);
 * strict rejects unknown types and undefined flags too. */
static __always_inline int h2_plausible(struct h2_fh *f, int strict)
{
	if (f->sid & 0x80000000)
		return 0;
	if (f->type > 9)
		return !strict;
	if (strict && (f->flags & ~h2_allowed_flags(f->type)))
		return 0;
	switch (f->type) {
	case 0: /* DATA */
	case 1: /* HEADERS */
	case 2: /* PRIORITY */
	case 3: /* RST_STREAM */
	case 5: /* PUSH_PROMISE */
	case 9: /* CONTINUATION */
		if (!f->sid)
			return 0;
		break;
	case 4: /* SETTINGS */
	case 6: /* PING */
	case 7: /* GOAWAY */
		if (f->sid)
			return 0;
		break;
	}
	if (f->type == 4)
		return f->len % 6 == 0;
	if (f->type == 6)
		return f->len == 8;
	if (f->type == 3 || f->type == 8)
		return f->len == 4;
	if (f->type == 2)
		return f->len == 5;
	return 1;
}

/* Bytes before a HEADERS frame's block fragment (pad length, priority). */
static __always_inline __u32 h2_frag_start(__u8 flags)
{
	return (flags & H2F_PADDED ? 1 : 0) + (flags & H2F_PRIORITY ? 5 : 0);
}

/* Static-table index of the name of a header block's first field (w: its
 * first 4 bytes, little endian; len: the block's length), skipping one
 * dynamic table size update; 0 when unknown: 1..7 are request
 * pseudo-headers, 8..14 :status. */
static __always_inline __u32 h2_first_name(__u32 w, __u32 len)
{
	if (len < 4)
		return 0;
	__u8 c = w;
	if ((c & 0xe0) == 0x20) { /* one size update, its integer up to 3 bytes */
		__u32 skip = 1;
		if ((c & 0x1f) == 0x1f) {
			skip = (w >> 8) & 0x80 ? 3 : 2;
			if ((w >> (8 * skip - 8)) & 0x80)
				return 0;
		}
		c = w >> (8 * skip);
	}
	__u32 idx;
	if (c & 0x80)
		idx = c & 0x7f;
	else if ((c & 0xc0) == 0x40)
		idx = c & 0x3f;
	else if ((c & 0xe0) == 0x20)
		return 0;
	else
		idx = c & 0x0f;
	return idx < 15 ? idx : 0;
}

static __always_inline int h2_is_status_name(__u32 idx) { return idx >= 8 && idx <= 14; }

/* --- egress: plan at sys_enter ------------------------------------------ */

/* User address of [off, off+n) when it lies in one piece of the message. */
static __always_inline __u64 h2_user_addr(struct h2_walk *w, __u32 off, __u32 n)
{
	__u64 start = 0;
#pragma unroll
	for (int i = 0; i < H2_IOV; i++) {
		if (i >= w->niov)
			return 0;
		__u64 l = w->iov_len[i];
		if (off >= start && off < start + l)
			return (__u64)off + n <= start + l ? w->iov_base[i] + (off - start) : 0;
		start += l;
	}
	return 0;
}

#include "h2_search.h"

/* Whether w->blk (w->blen bytes) holds a traceparent name. */
static __always_inline int h2_has_tp_name(struct h2_walk *w)
{
	struct h2_search s = {.blk = w->blk, .n = w->blen};
	bpf_loop(H2_BLOCK_MAX, h2_name_cb, &s, 0);
	return s.found;
}

/* The ids site s inserts for stream sid: from the write's base ids (see
 * the top), or own, the stream's own ids (h2_out.h) as they are. */
static __always_inline void h2_site_ids(struct h2_site *s, struct trace_ctx *c, __u32 sid, int own)
{
	__builtin_memcpy(s->span_id, c->span_id, 8);
	if (!own)
		h2_derive(s->span_id, sid);
	/* A write's streams that serve no request are roots of traces of
	 * their own: the trace id's last 4 bytes XOR the stream id too. */
	__builtin_memcpy(s->trace_id, c->trace_id, 16);
	if (!own && !(c->ctx_flags & CTXF_HAS_PARENT)) {
		s->trace_id[12] ^= sid >> 24;
		s->trace_id[13] ^= sid >> 16;
		s->trace_id[14] ^= sid >> 8;
		s->trace_id[15] ^= sid;
	}
	s->trace_flags = c->trace_flags;
}

/* A whole HEADERS frame with END_HEADERS at w->off: when it opens a new
 * stream, a request; plan its insertion. */
static __always_inline void h2_request_frame(struct h2_walk *w, struct h2_fh *f)
{
	__u32 fs = w->off + H2_HDR + h2_frag_start(f->flags);
	__u32 fend = w->off + H2_HDR + f->len;
	__u32 pad = 0;
	if (f->flags & H2F_PADDED) {
		__u8 pb = 0;
		__u64 a = h2_user_addr(w, w->off + H2_HDR, 1);
		if (!a || bpf_probe_read_user(&pb, 1, (void *)a))
			return;
		pad = pb;
	}
	if (fs + pad > fend)
		return; /* PROTOCOL_ERROR: leave it alone */
	/* A request opens its stream (RFC 9113 §5.1.1: client streams grow);
	 * a later HEADERS frame on a stream is trailers. */
	if (f->sid <= w->max_sid)
		return;
	w->max_sid = f->sid;
	w->nreq++;
	int own = w->g && go_stream_ctx(w->pid, w->g, f->sid, &w->sc);
	if (own && w->recs.n < H2_OUT_RECS) {
		struct h2_out_rec *r = &w->recs.r[w->recs.n & (H2_OUT_RECS - 1)];
		r->sid = f->sid;
		r->len = H2_REC_STREAM | sizeof(struct trace_ctx);
		r->c = w->sc;
		w->recs.n++;
	} else {
		own = 0; /* no room to tell the agent: the base ids, a root */
	}
	__u32 blen = fend - pad - fs;
	if (blen == 0 || blen > H2_BLOCK_MAX)
		return;
	__u64 a = h2_user_addr(w, fs, blen);
	/* The empty asm keeps clang from dropping the mask the verifier needs. */
	asm volatile("" : "+r"(blen));
	if (!a || bpf_probe_read_user(w->blk, blen & H2_BLK_MASK, (void *)a))
		return;
	w->blen = blen;
	if (h2_has_tp_name(w))
		w->has_tp = 1;
	if (w->has_tp || f->len + H2_FIELD_LEN > H2_MAX_FRAME)
		return;
	__u32 n = w->send.n;
	if (n >= H2_MAX_SITES)
		return;
	struct h2_site *s = n < H2_BASE_SITES ? &w->send.site[n & (H2_BASE_SITES - 1)]
					      : &w->more.site[(n - H2_BASE_SITES) & (H2_MAX_SITES - 1)];
	s->frame_off = w->off;
	s->ins_off = fend - pad;
	__builtin_memcpy(s->hdr, w->hdr, 12);
	h2_site_ids(s, own ? &w->sc : &w->ctx, f->sid, own);
	w->send.n = n + 1;
}

/* One frame of the message being written; 1 stops the walk. A global
 * function: verified once, not once per loop iteration. */
__attribute__((noinline)) int h2_send_frame(struct h2_walk *w)
{
	if (!w || w->off >= w->send.total)
		return 1;
	__u64 a = h2_user_addr(w, w->off, H2_HDR);
	if (!a || bpf_probe_read_user(w->hdr, H2_HDR, (void *)a))
		return 1; /* the rest is out of reach: what was planned stays */
	struct h2_fh f;
	h2_parse_fh(w->hdr, &f);
	if (!h2_plausible(&f, 1)) {
		w->bad = 1;
		return 1;
	}
	__u32 end = w->off + H2_HDR + f.len;
	if (end > w->send.total || end < w->off)
		return 1; /* continues in a later write */
	if (f.type == H2_HEADERS && (f.flags & H2F_END_HEADERS) && (f.sid & 1))
		h2_request_frame(w, &f);
	w->off = end;
	return 0;
}

static long h2_send_cb(__u64 j, void *arg)
{
	struct h2_walk **w = arg;
	return h2_send_frame(*w) ? 1 : 0;
}

/* Whether h2_prepare_send can do anything for a write whose first piece
 * starts with head (hn bytes, all of them when fewer than the preface):
 * only for the client preface or a frame header. Any other start makes
 * its frame walk stop at the first header with nothing planned, so a
 * write that HTTP/1 ignores too can skip the socket lookup. */
static __always_inline int h2_head_matters(const __u8 *head, __u32 hn)
{
	if (hn < H2_HDR)
		return 1; /* the walk reads the header across pieces: unknown */
	struct h2_fh f;
	h2_parse_fh(head, &f);
	return h2_plausible(&f, 1) || (hn >= H2_PREFACE_LEN && h2_is_preface(head));
}

/* A write's arguments for h2_prepare_send. */
struct h2_send_args {
	__u64 sk;   /* struct sock * */
	__u64 base; /* its first piece */
	__u64 len;
	__u64 iovp; /* its iovec array, when it takes pieces */
	__u32 iovcnt;
	__u32 hn;   /* bytes of the first piece in head */
	__u32 pid;
	__u32 _pad;
	__u64 g;    /* the writing goroutine (Go), else 0 */
	__u8 head[32];
};

/* Per CPU, off the stack the call chain below a write's program shares. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct h2_send_args);
} h2_args_scratch SEC(".maps");

/* sys_enter of a write on a->sk. Returns 1 when the socket is an HTTP/2
 * one (then the HTTP/1 logic does not apply); out gets the write's client
 * context when it holds requests. A global function: verified once, apart
 * from the many paths of its caller. */
__attribute__((noinline)) int h2_prepare_send(struct h2_send_args *a, struct srv_ctx *cur, struct trace_ctx *out)
{
	if (!a || !out)
		return 0;
	__u64 sk = a->sk, base = a->base, len = a->len, iovp = a->iovp;
	__u32 iovcnt = a->iovcnt, hn = a->hn;
	const __u8 *head = a->head;
	struct sock *s = (struct sock *)sk;
	struct h2_sock *hs = bpf_map_lookup_elem(&h2_socks, &sk);
	__u32 off = 0;
	if (hs && hs->role != H2_CLIENT)
		return 1; /* a server's responses: see h2_on_send */
	__u32 zero = 0;
	struct h2_walk *w = bpf_map_lookup_elem(&h2_walk_scratch, &zero);
	if (!w)
		return !!hs;
	if (!hs) {
		if (hn < H2_PREFACE_LEN || !h2_is_preface(head))
			return 0;
		struct h2_sock *nv = &w->nv;
		__builtin_memset(nv, 0, sizeof(*nv));
		nv->role = H2_CLIENT;
		nv->seg[DIR_SEND].skip = H2_PREFACE_LEN; /* h2_seg.h: the preface, then frames */
		bpf_map_update_elem(&h2_socks, &sk, nv, BPF_ANY);
		off = H2_PREFACE_LEN;
	} else if (hs->no_inject) {
		return 1;
	}
	w->niov = 1;
	w->iov_base[0] = base;
	w->iov_len[0] = len;
	__u64 total = len;
	if (iovcnt > 1) {
		w->niov = iovcnt < H2_IOV ? iovcnt : H2_IOV;
#pragma unroll
		for (int i = 1; i < H2_IOV; i++) {
			struct { __u64 base, len; } v = {};
			if (i < w->niov && !bpf_probe_read_user(&v, sizeof(v), (void *)(iovp + i * sizeof(v)))) {
				w->iov_base[i] = v.base;
				w->iov_len[i] = v.len;
				total += v.len;
			} else if (i < w->niov) {
				w->niov = i;
			}
		}
	}
	if (total > 0xffffffff)
		return 1;
	w->send.sk = sk;
	w->send.total = total;
	w->send.n = w->send.applied = w->send.consumed = 0;
	w->send.local_port = BPF_CORE_READ(s, __sk_common.skc_num);
	w->send.remote_port = BPF_CORE_READ(s, __sk_common.skc_dport);
	w->off = off;
	w->nreq = w->bad = w->has_tp = 0;
	w->max_sid = hs ? hs->max_sid : 0;
	w->pid = a->pid;
	w->g = a->g;
	w->recs.n = 0;
	if (ctx_usable(cur)) {
		client_ctx(cur, &w->ctx);
	} else { /* a new root, sampled as a server's would be */
		__builtin_memset(&w->ctx, 0, sizeof(w->ctx));
		w->ctx.kind = CTX_CLIENT;
		random_bytes(w->ctx.trace_id, 4);
		random_bytes(w->ctx.span_id, 2);
		w->ctx.trace_flags = sample(w->ctx.trace_id);
	}
	bpf_loop(H2_MAX_FRAMES, h2_send_cb, &w, 0);
	if (w->bad)
		return 1;
	struct h2_sock *h = bpf_map_lookup_elem(&h2_socks, &sk);
	if (h && w->max_sid > h->max_sid)
		h->max_sid = w->max_sid;
	if (w->has_tp) {
		/* The app propagates itself: it may index the name from now on,
		 * so this connection is left alone. */
		if (h)
			h->no_inject = 1;
		w->send.n = 0;
	}
	if (!inject_enabled)
		w->send.n = 0;
	if (w->nreq)
		*out = w->ctx;
	__u64 id = bpf_get_current_pid_tgid();
	if (w->recs.n)
		h2_out_emit(sk);
	if (w->send.n > H2_BASE_SITES && bpf_map_update_elem(&h2_sends_more, &id, &w->more, BPF_ANY))
		w->send.n = H2_BASE_SITES; /* no room: the first ones only */
	bpf_map_update_elem(&h2_sends, &id, &w->send, BPF_ANY);
	return 1;
}

/* sys_exit of the same write: whether sk_msg inserted anything; a partial
 * write leaves the next one starting inside a frame, so the connection is
 * no longer injected. */
static __always_inline void h2_send_done(__u64 id, __s64 ret, struct trace_ctx *c)
{
	struct h2_send *s = bpf_map_lookup_elem(&h2_sends, &id);
	if (!s)
		return;
	if (s->applied)
		c->ctx_flags |= CTXF_INJECTED;
	if (s->n > H2_BASE_SITES)
		bpf_map_delete_elem(&h2_sends_more, &id);
	if (ret > 0 && (__u64)ret < s->total) {
		__u64 sk = s->sk;
		struct h2_sock *h = bpf_map_lookup_elem(&h2_socks, &sk);
		if (h)
			h->no_inject = 1;
	}
	bpf_map_delete_elem(&h2_sends, &id);
}
