/* HTTP/1.x in the kernel: just enough to carry trace context.
 *
 * When a traced thread (or Go goroutine) reads a request, its traceparent /
 * tracestate are parsed here (or a new root is started) and remembered as
 * that thread's current server request. When the same thread writes a
 * request on a client socket, an injection plan (the traceparent line and
 * where it goes) is prepared for the sk_msg program in inject.h. Full
 * parsing stays in Go (probes/http); this only scans header lines. */
#pragma once

#include "common.h"

/* Header bytes scanned for traceparent and the end of headers (a power of
 * two, <= MAX_CAPTURE). */
#define HDR_SCAN 2048
#define SCAN_MASK (MAX_CAPTURE * 2 - 1)
#define TS_MAX 256       /* longest tracestate passed on (longer: not forwarded) */
#define TP_LINE_LEN 70   /* "traceparent: 00-<32>-<16>-<2>\r\n" */
#define INJECT_MAX (TP_LINE_LEN + 14 + TS_MAX) /* + "tracestate: " ... "\r\n" */

/* Sampler for new root traces and for parents (set by the agent from
 * OTEL_TRACES_SAMPLER/_ARG). A trace is sampled when the low 63 bits of its
 * id's last 8 bytes (big endian, >> 1) are below sample_bound, as the OTel
 * SDKs' TraceIdRatioBased does; parent_based honours a parent's flag. */
volatile const __u64 sample_bound = 1ULL << 63; /* always_on */
volatile const __u8 parent_based = 1;

/* The request a thread (or goroutine) is serving. */
struct ctx_key {
	__u32 pid;
	__u32 tid; /* 0 for goroutine keys */
	__u64 goid; /* Go: runtime.g pointer; 0 for thread keys */
};

struct srv_ctx {
	__u8 trace_id[16];
	__u8 span_id[8];
	__u8 trace_flags;
	__u8 outstanding; /* requests read and not yet answered on this thread */
	__u8 valid;       /* ids describe the latest request, still unanswered */
	__u8 hdr_pending; /* its headers are still being read: ids not decided yet */
	__u16 ts_len;
	__u16 _pad2;
	__u64 sock; /* socket of the latest request */
	char tracestate[TS_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct ctx_key);
	__type(value, struct srv_ctx);
} server_ctx SEC(".maps");

enum plan_mode {
	PLAN_INSERT = 0,  /* insert bytes at off */
	PLAN_REWRITE = 1, /* overwrite len bytes at off, only where they still read expect */
};

#define REWRITE_LEN 16 /* the hex parent-id of a traceparent */

/* What sk_msg inserts into (or rewrites in) the request the thread is
 * writing now. */
struct inject_plan {
	__u32 off;  /* byte offset in the message: just after the request line */
	__u32 len;  /* bytes to insert (or overwrite) */
	__u32 local_port;  /* host order: guards against another socket's message */
	__u32 remote_port; /* network order, as sk_msg_md has it */
	__u32 done; /* set by sk_msg once inserted */
	__u32 hdr_end; /* offset just after the headers, before insertion */
	__u8 mode;     /* enum plan_mode */
	__u8 _pad[3];
	__u8 expect[REWRITE_LEN]; /* PLAN_REWRITE: the bytes the application wrote there */
	__u8 bytes[INJECT_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct inject_plan);
} inject_plans SEC(".maps");

/* Go: writer goroutine -> the *persistConn it writes for (see gohttp.h). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct ctx_key);
	__type(value, __u64);
} go_writer SEC(".maps");

/* The first byte of a socket's next message, when it was read alone: Go's
 * net/http server reads one byte in a background goroutine while a handler
 * runs, so the next request's line arrives as "G" + "ET /...". */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64); /* struct sock * */
	__type(value, __u8);
} lone_byte SEC(".maps");

/* Building a context needs more than the 512-byte stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct srv_ctx);
} ctx_scratch SEC(".maps");

/* Building a plan needs more than the 512-byte stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct inject_plan);
} plan_scratch SEC(".maps");

static __always_inline __u8 byte_at(const __u8 *data, __u32 i)
{
	return data[i & SCAN_MASK];
}

/* A request line starts with a method token and a space. */
static __always_inline int is_request_start(const __u8 *d, __u32 n)
{
	if (n < 16)
		return 0;
	__u8 c0 = d[0], c1 = d[1], c2 = d[2], c3 = d[3], c4 = d[4];
	switch (c0) {
	case 'G': return c1 == 'E' && c2 == 'T' && c3 == ' ';
	case 'P':
		return (c1 == 'O' && c2 == 'S' && c3 == 'T' && c4 == ' ') ||
		       (c1 == 'U' && c2 == 'T' && c3 == ' ') ||
		       (c1 == 'A' && c2 == 'T' && c3 == 'C' && c4 == 'H');
	case 'D': return c1 == 'E' && c2 == 'L' && c3 == 'E' && c4 == 'T';
	case 'H': return c1 == 'E' && c2 == 'A' && c3 == 'D' && c4 == ' ';
	case 'O': return c1 == 'P' && c2 == 'T' && c3 == 'I' && c4 == 'O';
	}
	return 0;
}

/* Whether a read of n bytes on sk starts a request, counting a byte read
 * alone just before (see lone_byte). */
static __always_inline int starts_request(__u64 sk, const __u8 *d, __u32 n)
{
	if (is_request_start(d, n))
		return 1;
	__u8 *b = bpf_map_lookup_elem(&lone_byte, &sk);
	if (!b)
		return 0;
	__u8 joined[16];
	joined[0] = *b;
	bpf_map_delete_elem(&lone_byte, &sk);
	if (n < 15)
		return 0;
	__builtin_memcpy(joined + 1, d, 15);
	return is_request_start(joined, 16);
}

static __always_inline void note_lone_byte(__u64 sk, const __u8 *d, __u32 n)
{
	if (n == 1 && d[0] >= 'A' && d[0] <= 'Z')
		bpf_map_update_elem(&lone_byte, &sk, &d[0], BPF_ANY);
}

static __always_inline int is_response_start(const __u8 *d, __u32 n)
{
	return n >= 12 && d[0] == 'H' && d[1] == 'T' && d[2] == 'T' && d[3] == 'P' &&
	       d[4] == '/' && d[5] == '1' && d[6] == '.';
}

/* What scanning header lines found. Offsets index the scanned buffer.
 * Scalars only: a global function (verified once) updates it. */
struct line_state {
	__u32 n;        /* bytes to scan */
	__u32 line_end; /* offset just after the request line's '\n' (0: not seen) */
	__u32 hdr_end;  /* offset just after the empty line (0: not seen) */
	__u32 tp_off;   /* value offset of traceparent (0: absent) */
	__u32 ts_off;   /* value offset of tracestate (0: absent) */
	__u32 _pad;
	__u8 line[16];  /* the first bytes of the line being classified */
};

struct hdr_scan {
	const __u8 *data;
	struct line_state st;
};

#define LOWER8(a, b, c, d, e, f, g, h)                                                   \
	((__u64)(a) | (__u64)(b) << 8 | (__u64)(c) << 16 | (__u64)(d) << 24 |           \
	 (__u64)(e) << 32 | (__u64)(f) << 40 | (__u64)(g) << 48 | (__u64)(h) << 56)

/* A header line starts at offset p, its first bytes in st->line: notes
 * what it is; returns 1 at the end of headers. A global function so the
 * verifier checks it once, not once per call site and path. */
__attribute__((noinline)) int classify_line(struct line_state *st, __u32 p)
{
	if (!st)
		return 1;
	if (!st->line_end)
		st->line_end = p; /* and this line is the first header */
	if (p + 2 > st->n)
		return 1; /* the rest of the line was not scanned */
	__u8 c = st->line[0];
	if (c == '\r' || c == '\n') {
		st->hdr_end = p + (c == '\r' ? 2 : 1);
		return 1;
	}
	__u64 w0 = 0, w1 = 0;
	__builtin_memcpy(&w0, st->line, 8);
	__builtin_memcpy(&w1, st->line + 8, 8);
	__u64 l0 = w0 | 0x2020202020202020ULL; /* ASCII lowercase (good enough for letters) */
	if (l0 == LOWER8('t', 'r', 'a', 'c', 'e', 'p', 'a', 'r')) {
		/* "ent:" */
		if (((w1 & 0xffffffff) | 0x00202020) == LOWER8('e', 'n', 't', ':', 0, 0, 0, 0) && !st->tp_off &&
		    p + 12 <= st->n)
			st->tp_off = p + 12;
	} else if (l0 == LOWER8('t', 'r', 'a', 'c', 'e', 's', 't', 'a')) {
		/* "te:" */
		if (((w1 & 0xffffff) | 0x002020) == LOWER8('t', 'e', ':', 0, 0, 0, 0, 0) && !st->ts_off &&
		    p + 11 <= st->n)
			st->ts_off = p + 11;
	}
	return 0;
}

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* bpf_loop callback: word j of the buffer; byte-level work only for words
 * holding a '\n' (most do not). */
static long scan_word(__u64 j, void *arg)
{
	struct hdr_scan *s = arg;
	__u32 base = (__u32)j * 8;
	if (base >= s->st.n)
		return 1;
	__u64 w = 0;
	__builtin_memcpy(&w, &s->data[base & (SCAN_MASK & ~7)], 8);
	__u64 x = w ^ (ONES * '\n');
	if (!((x - ONES) & ~x & HIGHS))
		return 0;
#pragma unroll
	for (int k = 0; k < 8; k++) {
		__u32 p = base + k;
		if (p >= s->st.n)
			return 1;
		if (((w >> (8 * k)) & 0xff) != '\n')
			continue;
		bpf_probe_read_kernel(s->st.line, sizeof(s->st.line), &s->data[(p + 1) & (SCAN_MASK >> 1)]);
		if (classify_line(&s->st, p + 1))
			return 1;
	}
	return 0;
}

/* Scans up to HDR_SCAN bytes of data (a map value at least 2*MAX_CAPTURE
 * long). cont: data continues headers, starting at a line (not a request
 * line). */
static __always_inline void scan_headers(struct hdr_scan *s, const __u8 *data, __u32 n, int cont)
{
	__builtin_memset(s, 0, sizeof(*s));
	s->data = data;
	s->st.n = n > HDR_SCAN ? HDR_SCAN : n;
	if (cont) {
		s->st.line_end = 1; /* past the request line */
		bpf_probe_read_kernel(s->st.line, sizeof(s->st.line), data);
		if (classify_line(&s->st, 0))
			return;
	}
	bpf_loop(HDR_SCAN / 8, scan_word, s, 0);
}

static __always_inline int hexval(__u8 c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1; /* W3C: lowercase hex only */
}

/* A header value copied out of the scanned buffer for the global helpers
 * below (which, verified once, keep the per-syscall programs small). */
struct value_buf {
	__u8 b[64];
	__u32 avail; /* bytes of b that are real data */
	__u32 _pad;
};

static __always_inline void copy_value(struct value_buf *v, const __u8 *data, __u32 n, __u32 off)
{
	v->avail = off < n ? n - off : 0;
	bpf_probe_read_kernel(v->b, sizeof(v->b), &data[off & (MAX_CAPTURE - 1)]);
}

/* Decodes 2*len lowercase hex chars at b[p..] into out; 0 if invalid. */
static __always_inline int unhex(const __u8 *b, __u32 p, __u8 *out, int len)
{
	for (int i = 0; i < len; i++) {
		int hi = hexval(b[(p + 2 * i) & 63]);
		int lo = hexval(b[(p + 2 * i + 1) & 63]);
		if (hi < 0 || lo < 0)
			return 0;
		out[i] = (hi << 4) | lo;
	}
	return 1;
}

static __always_inline int all_zero(const __u8 *b, int len)
{
	__u8 acc = 0;
	for (int i = 0; i < len; i++)
		acc |= b[i];
	return acc == 0;
}

/* Parses a traceparent value (W3C trace-context level 1): fills trace id,
 * parent id and flags; 0 when invalid (then a new trace starts). */
__attribute__((noinline)) int parse_traceparent(struct value_buf *v, struct trace_ctx *c)
{
	if (!v || !c)
		return 0;
	__u32 off = 0;
	if (v->b[0] == ' ' || v->b[0] == '\t')
		off = (v->b[1] == ' ' || v->b[1] == '\t') ? 2 : 1;
	if (off + 55 > v->avail)
		return 0;
	__u8 ver;
	if (!unhex(v->b, off, &ver, 1) || ver == 0xff)
		return 0;
	if (v->b[(off + 2) & 63] != '-' || v->b[(off + 35) & 63] != '-' || v->b[(off + 52) & 63] != '-')
		return 0;
	__u8 flags;
	if (!unhex(v->b, off + 3, c->trace_id, 16) || !unhex(v->b, off + 36, c->parent_id, 8) ||
	    !unhex(v->b, off + 53, &flags, 1))
		return 0;
	if (all_zero(c->trace_id, 16) || all_zero(c->parent_id, 8))
		return 0;
	__u8 after = off + 55 < v->avail ? v->b[(off + 55) & 63] : '\r';
	int end = after == '\r' || after == '\n' || after == ' ' || after == '\t';
	if (!end && (ver == 0 || after != '-'))
		return 0; /* version 00 is exactly 55 chars; later ones may extend with '-' */
	c->trace_flags = flags & 1;
	return 1;
}

/* Length of the tracestate value at the start of v->tracestate, up to the
 * line end; 0 when the line end is not within the captured bytes or the
 * value does not fit (then it is not forwarded). */
__attribute__((noinline)) int tracestate_len(struct srv_ctx *v, __u32 avail)
{
	if (!v)
		return 0;
	for (__u32 i = 0; i < TS_MAX; i++) {
		if (i >= avail)
			return 0;
		__u8 ch = v->tracestate[i];
		if (ch == '\r' || ch == '\n')
			return i;
	}
	return 0;
}

static __always_inline void random_bytes(__u8 *b, int words)
{
	for (int i = 0; i < words; i++) {
		__u32 r = bpf_get_prandom_u32();
		__builtin_memcpy(b + 4 * i, &r, 4);
	}
}

/* TraceIdRatioBased on the id's last 8 bytes, big endian, >> 1. */
static __always_inline __u8 sample(const __u8 *trace_id)
{
	__u64 x = 0;
#pragma unroll
	for (int i = 8; i < 16; i++)
		x = (x << 8) | trace_id[i];
	return (x >> 1) < sample_bound ? 1 : 0;
}

/* The key of the current thread, or of its goroutine in a Go program. */
static __always_inline void current_ctx_key(struct ctx_key *k, __u8 state)
{
	__u64 id = bpf_get_current_pid_tgid();
	k->pid = id >> 32;
	k->tid = (__u32)id;
	k->goid = 0;
	if (state & TRACE_GO) {
		/* amd64: runtime.g of the running goroutine is at fs_base - 8. */
#if defined(__TARGET_ARCH_x86)
		struct task_struct *task = (struct task_struct *)bpf_get_current_task();
		__u64 fsbase = BPF_CORE_READ(task, thread.fsbase);
		__u64 g = 0;
		if (fsbase && !bpf_probe_read_user(&g, sizeof(g), (void *)(fsbase - 8)) && g) {
			k->tid = 0;
			k->goid = g;
		}
#endif
	}
}

/* The incoming traceparents of requests traced processes read, keyed by
 * (pid, trace id, parent id): a request the process later writes with one
 * of them forwards it unchanged (nginx, envoy and simple proxies pass
 * headers on), which proves which request it serves, whatever runs the
 * process's I/O (event loop, workers). http_send.h gives such a request its
 * own client span id. */
struct fwd_key {
	__u32 pid;
	__u32 _pad;
	__u8 trace_id[16];
	__u8 parent_id[8];
};

struct fwd_val {
	__u8 span_id[8]; /* the SERVER span of the request that carried it */
	__u8 trace_flags;
	__u8 dup; /* two requests came with this traceparent: which one is forwarded is unknown */
	__u8 _pad[6];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct fwd_key);
	__type(value, struct fwd_val);
} fwd_ctx SEC(".maps");

static __always_inline void fwd_key_of(struct fwd_key *k, const __u8 *trace_id, const __u8 *parent_id)
{
	k->pid = bpf_get_current_pid_tgid() >> 32;
	k->_pad = 0;
	__builtin_memcpy(k->trace_id, trace_id, 16);
	__builtin_memcpy(k->parent_id, parent_id, 8);
}

/* A request read with traceparent c->parent_id became SERVER span c. */
static __always_inline void remember_incoming(const struct trace_ctx *c)
{
	struct fwd_key k;
	fwd_key_of(&k, c->trace_id, c->parent_id);
	struct fwd_val *old = bpf_map_lookup_elem(&fwd_ctx, &k);
	if (old) {
		__u64 a, b;
		__builtin_memcpy(&a, old->span_id, 8);
		__builtin_memcpy(&b, c->span_id, 8);
		if (a != b)
			old->dup = 1;
		return;
	}
	struct fwd_val v = {.trace_flags = c->trace_flags};
	__builtin_memcpy(v.span_id, c->span_id, 8);
	bpf_map_update_elem(&fwd_ctx, &k, &v, BPF_ANY);
}

/* Fills the request's context from what the header scan found: the
 * incoming traceparent (and tracestate), or a new root. */
/* The value decide_ctx parses, per CPU: off the stack, which the read
 * path's call chain shares with the HTTP/2 walk (see emit_io). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct value_buf);
} value_scratch SEC(".maps");

/* nv now serves the request whose SERVER span c names (its tracestate, if
 * any, the caller's to fill in). */
static __always_inline void serve_ctx(struct srv_ctx *nv, const struct trace_ctx *c)
{
	__builtin_memcpy(nv->trace_id, c->trace_id, 16);
	__builtin_memcpy(nv->span_id, c->span_id, 8);
	nv->trace_flags = c->trace_flags;
	nv->valid = 1;
	nv->hdr_pending = 0;
	nv->ts_len = 0;
}

static __always_inline void decide_ctx(const __u8 *data, struct hdr_scan *s, struct trace_ctx *out,
				       struct srv_ctx *nv)
{
	struct trace_ctx *c = out; /* built in place: it is the event's */
	__builtin_memset(c, 0, sizeof(*c));
	c->kind = CTX_SERVER;
	__u32 zero = 0;
	struct value_buf *vb = bpf_map_lookup_elem(&value_scratch, &zero);
	if (vb && s->st.tp_off)
		copy_value(vb, data, s->st.n, s->st.tp_off);
	if (vb && s->st.tp_off && parse_traceparent(vb, c)) {
		c->ctx_flags = CTXF_HAS_PARENT;
		if (!parent_based)
			c->trace_flags = sample(c->trace_id);
	} else {
		__builtin_memset(c->parent_id, 0, 8);
		random_bytes(c->trace_id, 4);
		c->trace_flags = sample(c->trace_id);
	}
	random_bytes(c->span_id, 2);
	if (c->ctx_flags & CTXF_HAS_PARENT)
		remember_incoming(c);

	serve_ctx(nv, c);
	if (s->st.ts_off && (c->ctx_flags & CTXF_HAS_PARENT)) {
		__u32 off = s->st.ts_off;
#pragma unroll
		for (int k2 = 0; k2 < 2; k2++)
			if (byte_at(data, off) == ' ' || byte_at(data, off) == '\t')
				off++;
		bpf_probe_read_kernel(nv->tracestate, TS_MAX, &data[off & (MAX_CAPTURE - 1)]);
		nv->ts_len = tracestate_len(nv, off < s->st.n ? s->st.n - off : 0);
	}
}

/* A traced thread read n bytes on sk. When they start a request (start),
 * it now serves that request; when they continue the headers of the
 * request it serves (TCP may deliver them in pieces), the scan goes on. The
 * context is decided once traceparent or the end of headers is seen, and
 * reported in that read's event. */
static __always_inline void on_request_read(const __u8 *data, __u32 n, __u64 sk, __u8 state, int start,
					    struct trace_ctx *out)
{
	struct ctx_key k;
	current_ctx_key(&k, state);
	struct srv_ctx *cur = bpf_map_lookup_elem(&server_ctx, &k);
	if (!start && !(cur && cur->hdr_pending && cur->sock == sk))
		return;

	struct hdr_scan s;
	scan_headers(&s, data, n, !start);
	int decided = s.st.tp_off || s.st.hdr_end || n >= HDR_SCAN;

	if (!start) {
		if (decided && cur)
			decide_ctx(data, &s, out, cur);
		return;
	}
	__u8 outstanding = 0;
	if (cur) {
		outstanding = cur->outstanding;
		/* A new request on the same socket: the previous one there was
		 * answered even if we missed its response. */
		if (cur->sock == sk && outstanding > 0)
			outstanding--;
	}
	if (k.goid)
		bpf_map_delete_elem(&go_writer, &k); /* a reused goroutine struct, now a server */
	__u32 zero = 0;
	struct srv_ctx *nv = bpf_map_lookup_elem(&ctx_scratch, &zero); /* larger than the stack */
	if (!nv)
		return;
	nv->outstanding = outstanding < 255 ? outstanding + 1 : 255;
	nv->sock = sk;
	if (decided) {
		decide_ctx(data, &s, out, nv);
	} else {
		nv->valid = 0; /* not usable until decided */
		nv->hdr_pending = 1;
	}
	bpf_map_update_elem(&server_ctx, &k, nv, BPF_ANY);
}

/* A traced thread wrote bytes starting a response on sk. */
static __always_inline void on_response_write(__u64 sk, __u8 state)
{
	struct ctx_key k;
	current_ctx_key(&k, state);
	struct srv_ctx *cur = bpf_map_lookup_elem(&server_ctx, &k);
	if (!cur)
		return;
	if (cur->outstanding > 0)
		cur->outstanding--;
	if (cur->sock == sk)
		cur->valid = 0; /* the latest request is answered */
}

volatile const __u8 inject_enabled = 0;

/* Branch-free (v < 16): a branch per digit, unrolled over 48 digits,
 * spilled enough registers to fill half of the 512-byte stack. */
static __always_inline __u8 hexdigit(__u8 v)
{
	return '0' + v + (((9 - (__s32)v) >> 31) & ('a' - '0' - 10));
}

static __always_inline void put_hex(__u8 *dst, const __u8 *src, int len)
{
#pragma unroll
	for (int i = 0; i < len; i++) {
		dst[2 * i] = hexdigit(src[i] >> 4);
		dst[2 * i + 1] = hexdigit(src[i] & 15);
	}
}

/* The 55 characters of a version-00 traceparent value, for every place
 * that writes one (HTTP/1 line, HTTP/2 field, Kafka record header). */
static __always_inline void put_traceparent(__u8 *dst, const __u8 *trace_id, const __u8 *span_id, __u8 sampled)
{
	__builtin_memcpy(dst, "00-", 3);
	put_hex(dst + 3, trace_id, 16);
	dst[35] = '-';
	put_hex(dst + 36, span_id, 8);
	dst[52] = '-';
	dst[53] = '0';
	dst[54] = sampled ? '1' : '0';
}

/* Whether the request a thread (or goroutine) serves can parent its calls:
 * one request outstanding on it (an event loop serving several at once
 * gets no link, never a wrong one) and its ids decided. */
static __always_inline int ctx_usable(struct srv_ctx *cur)
{
	return cur && cur->valid && cur->outstanding == 1;
}

/* A call (HTTP, SQL, ...) made while serving cur: a new client span, child
 * of cur's server span. */
static __always_inline void client_ctx(struct srv_ctx *cur, struct trace_ctx *out)
{
	struct trace_ctx c = {};
	c.kind = CTX_CLIENT;
	c.ctx_flags = CTXF_HAS_PARENT;
	c.trace_flags = cur->trace_flags;
	__builtin_memcpy(c.trace_id, cur->trace_id, 16);
	__builtin_memcpy(c.parent_id, cur->span_id, 8);
	random_bytes(c.span_id, 2);
	*out = c;
}
