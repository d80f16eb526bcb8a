/* Kafka: a traceparent record header in the Produce requests of traced
 * processes (--kafka-inject), so producer -> broker -> consumer of
 * unmodified services is one trace.
 *
 * At sys_enter of a send, kafka_plan_send recognises a Produce request by
 * its first bytes and decides the context of its PRODUCER span (a child of
 * the request the writing thread/goroutine serves, else a new root under
 * the kernel sampler); userspace gets those ids in the event. In the
 * writer's sendmsg, kafka_inject_msg (sk_msg, see inject.h) copies the
 * message to scratch memory, rewrites it there and replaces the message
 * with the rewrite: every record gets the header `traceparent` = the
 * PRODUCER span's context, and every field that counts those bytes is
 * updated (record length and header count varints, batch length, batch
 * CRC32C, the partition's records size, the request size).
 *
 * All or nothing per message, and only what is verified: one Produce
 * request (v3..v13) that is the whole message and at most KI_SRC bytes,
 * one topic, magic-2 batches, uncompressed, no control batches, no
 * record already carrying traceparent, no tagged fields. Any doubt leaves
 * the message exactly as written (counted in kafka_counters). */
#pragma once

#include "http.h"

volatile const __u8 kafka_inject_enabled = 0;

#define KI_SRC 4096       /* largest Produce request rewritten (power of two) */
#define KI_DST 8192       /* largest rewrite (power of two) */
#define KI_MAX_RECORDS 32 /* records per request (each grows by <= KI_HDR_LEN + 1) */
#define KI_MAX_BATCHES 8
#define KI_MAX_EDITS 128  /* 1 + batches*3 + records*3 */
#define KI_HDR_LEN 68     /* varint 11, "traceparent", varint 55, the 55-byte value */
#define KI_STEPS 1024     /* parse steps: a partition, batch, record or header each */

/* kafka_counters indices. */
enum kafka_counter {
	KC_INJECTED = 0, /* Produce requests rewritten */
	KC_UNTOUCHED = 1, /* planned, left as written: outside what is verified */
	KC_HAD_TP = 2,    /* left as written: a record already carries traceparent */
	KC_FAILED = 3,    /* the kernel refused a push/pull: left as written */
	KC_MAX = 4,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KC_MAX);
	__type(key, __u32);
	__type(value, __u64);
} kafka_counters SEC(".maps");

static __always_inline void kcount(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&kafka_counters, &idx);
	if (v)
		*v += 1;
}

/* The Produce request a thread is writing now (keyed by pid_tgid). */
struct kafka_plan {
	__u32 local_port;  /* host order */
	__u32 remote_port; /* network order, as sk_msg_md has it */
	__u32 done;        /* set once the message was rewritten */
	__u8 trace_id[16];
	__u8 span_id[8];
	__u8 trace_flags;
	__u8 _pad[7];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct kafka_plan);
} kafka_plans SEC(".maps");

static __always_inline __u32 be16_at(const __u8 *b)
{
	return (__u32)b[0] << 8 | b[1];
}

static __always_inline __u32 be32_at(const __u8 *b)
{
	return (__u32)b[0] << 24 | (__u32)b[1] << 16 | (__u32)b[2] << 8 | b[3];
}

struct ki_iovec {
	__u64 base;
	__u64 len;
};

/* The first 8 bytes a send writes: from its buffer (iovp 0), or from its
 * iovecs, where Java clients pass the 4-byte size prefix on its own. */
static __always_inline int kafka_send_head(__u64 buf, __u64 count, __u64 iovp, __u64 iovcnt, __u8 *h)
{
	if (!iovp)
		return count >= 8 && !bpf_probe_read_user(h, 8, (void *)buf);
	struct ki_iovec iov[2] = {};
	if (bpf_probe_read_user(&iov[0], sizeof(iov[0]), (void *)iovp))
		return 0;
	if (iov[0].len >= 8)
		return !bpf_probe_read_user(h, 8, (void *)iov[0].base);
	if (iov[0].len != 4 || iovcnt < 2 ||
	    bpf_probe_read_user(&iov[1], sizeof(iov[1]), (void *)(iovp + sizeof(iov[0]))) || iov[1].len < 4)
		return 0;
	return !bpf_probe_read_user(h, 4, (void *)iov[0].base) && !bpf_probe_read_user(h + 4, 4, (void *)iov[1].base);
}

/* A traced thread starts a send (a buffer buf of count bytes, or iovcnt
 * iovecs at iovp). When it writes a Produce request small enough to
 * rewrite, decides its PRODUCER context into out and plans the rewrite;
 * 1 if planned. */
static __always_inline int kafka_plan_send(int fd, __u64 buf, __u64 count, __u64 iovp, __u64 iovcnt,
					   struct srv_ctx *cur, struct trace_ctx *out)
{
	if (!kafka_inject_enabled)
		return 0;
	__u8 h[8];
	if (!kafka_send_head(buf, count, iovp, iovcnt, h))
		return 0;
	__u32 size = be32_at(h), key = be16_at(h + 4), ver = be16_at(h + 6);
	if (key != 0 || ver < 3 || ver > 13 || size < 64 || size + 4 > KI_SRC)
		return 0;
	struct sock *sk = tcp_sock_of_fd(fd);
	if (!sk)
		return 0;
	struct trace_ctx c = {};
	if (ctx_usable(cur)) {
		client_ctx(cur, &c);
	} else {
		c.kind = CTX_CLIENT; /* a new root: producers mostly write from background threads */
		random_bytes(c.trace_id, 4);
		random_bytes(c.span_id, 2);
		c.trace_flags = sample(c.trace_id);
	}
	*out = c;
	struct kafka_plan p = {};
	p.local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
	p.remote_port = BPF_CORE_READ(sk, __sk_common.skc_dport);
	__builtin_memcpy(p.trace_id, c.trace_id, 16);
	__builtin_memcpy(p.span_id, c.span_id, 8);
	p.trace_flags = c.trace_flags;
	__u64 id = bpf_get_current_pid_tgid();
	bpf_map_update_elem(&kafka_plans, &id, &p, BPF_ANY);
	return 1;
}

/* At sys_exit: whether the planned rewrite happened; forgets the plan. */
static __always_inline void kafka_plan_finish(__u64 id, struct trace_ctx *c)
{
	struct kafka_plan *p = bpf_map_lookup_elem(&kafka_plans, &id);
	if (!p)
		return;
	if (p->done)
		c->ctx_flags |= CTXF_INJECTED;
	bpf_map_delete_elem(&kafka_plans, &id);
}

/* CRC-32C (Castagnoli, reflected 0x82F63B78): record batches' checksum. */
static const __u32 ki_crc32c[256] = {
	0x00000000, 0xf26b8303, 0xe13b70f7, 0x1350f3f4, 0xc79a971f, 0x35f1141c,
	0x26a1e7e8, 0xd4ca64eb, 0x8ad958cf, 0x78b2dbcc, 0x6be22838, 0x9989ab3b,
	0x4d43cfd0, 0xbf284cd3, 0xac78bf27, 0x5e133c24, 0x105ec76f, 0xe235446c,
	0xf165b798, 0x030e349b, 0xd7c45070, 0x25afd373, 0x36ff2087, 0xc494a384,
	0x9a879fa0, 0x68ec1ca3, 0x7bbcef57, 0x89d76c54, 0x5d1d08bf, 0xaf768bbc,
	0xbc267848, 0x4e4dfb4b, 0x20bd8ede, 0xd2d60ddd, 0xc186fe29, 0x33ed7d2a,
	0xe72719c1, 0x154c9ac2, 0x061c6936, 0xf477ea35, 0xaa64d611, 0x580f5512,
	0x4b5fa6e6, 0xb93425e5, 0x6dfe410e, 0x9f95c20d, 0x8cc531f9, 0x7eaeb2fa,
	0x30e349b1, 0xc288cab2, 0xd1d83946, 0x23b3ba45, 0xf779deae, 0x05125dad,
	0x1642ae59, 0xe4292d5a, 0xba3a117e, 0x4851927d, 0x5b016189, 0xa96ae28a,
	0x7da08661, 0x8fcb0562, 0x9c9bf696, 0x6ef07595, 0x417b1dbc, 0xb3109ebf,
	0xa0406d4b, 0x522bee48, 0x86e18aa3, 0x748a09a0, 0x67dafa54, 0x95b17957,
	0xcba24573, 0x39c9c670, 0x2a993584, 0xd8f2b687, 0x0c38d26c, 0xfe53516f,
	0xed03a29b, 0x1f682198, 0x5125dad3, 0xa34e59d0, 0xb01eaa24, 0x42752927,
	0x96bf4dcc, 0x64d4cecf, 0x77843d3b, 0x85efbe38, 0xdbfc821c, 0x2997011f,
	0x3ac7f2eb, 0xc8ac71e8, 0x1c661503, 0xee0d9600, 0xfd5d65f4, 0x0f36e6f7,
	0x61c69362, 0x93ad1061, 0x80fde395, 0x72966096, 0xa65c047d, 0x5437877e,
	0x4767748a, 0xb50cf789, 0xeb1fcbad, 0x197448ae, 0x0a24bb5a, 0xf84f3859,
	0x2c855cb2, 0xdeeedfb1, 0xcdbe2c45, 0x3fd5af46, 0x7198540d, 0x83f3d70e,
	0x90a324fa, 0x62c8a7f9, 0xb602c312, 0x44694011, 0x5739b3e5, 0xa55230e6,
	0xfb410cc2, 0x092a8fc1, 0x1a7a7c35, 0xe811ff36, 0x3cdb9bdd, 0xceb018de,
	0xdde0eb2a, 0x2f8b6829, 0x82f63b78, 0x709db87b, 0x63cd4b8f, 0x91a6c88c,
	0x456cac67, 0xb7072f64, 0xa457dc90, 0x563c5f93, 0x082f63b7, 0xfa44e0b4,
	0xe9141340, 0x1b7f9043, 0xcfb5f4a8, 0x3dde77ab, 0x2e8e845f, 0xdce5075c,
	0x92a8fc17, 0x60c37f14, 0x73938ce0, 0x81f80fe3, 0x55326b08, 0xa759e80b,
	0xb4091bff, 0x466298fc, 0x1871a4d8, 0xea1a27db, 0xf94ad42f, 0x0b21572c,
	0xdfeb33c7, 0x2d80b0c4, 0x3ed04330, 0xccbbc033, 0xa24bb5a6, 0x502036a5,
	0x4370c551, 0xb11b4652, 0x65d122b9, 0x97baa1ba, 0x84ea524e, 0x7681d14d,
	0x2892ed69, 0xdaf96e6a, 0xc9a99d9e, 0x3bc21e9d, 0xef087a76, 0x1d63f975,
	0x0e330a81, 0xfc588982, 0xb21572c9, 0x407ef1ca, 0x532e023e, 0xa145813d,
	0x758fe5d6, 0x87e466d5, 0x94b49521, 0x66df1622, 0x38cc2a06, 0xcaa7a905,
	0xd9f75af1, 0x2b9cd9f2, 0xff56bd19, 0x0d3d3e1a, 0x1e6dcdee, 0xec064eed,
	0xc38d26c4, 0x31e6a5c7, 0x22b65633, 0xd0ddd530, 0x0417b1db, 0xf67c32d8,
	0xe52cc12c, 0x1747422f, 0x49547e0b, 0xbb3ffd08, 0xa86f0efc, 0x5a048dff,
	0x8ecee914, 0x7ca56a17, 0x6ff599e3, 0x9d9e1ae0, 0xd3d3e1ab, 0x21b862a8,
	0x32e8915c, 0xc083125f, 0x144976b4, 0xe622f5b7, 0xf5720643, 0x07198540,
	0x590ab964, 0xab613a67, 0xb831c993, 0x4a5a4a90, 0x9e902e7b, 0x6cfbad78,
	0x7fab5e8c, 0x8dc0dd8f, 0xe330a81a, 0x115b2b19, 0x020bd8ed, 0xf0605bee,
	0x24aa3f05, 0xd6c1bc06, 0xc5914ff2, 0x37faccf1, 0x69e9f0d5, 0x9b8273d6,
	0x88d28022, 0x7ab90321, 0xae7367ca, 0x5c18e4c9, 0x4f48173d, 0xbd23943e,
	0xf36e6f75, 0x0105ec76, 0x12551f82, 0xe03e9c81, 0x34f4f86a, 0xc69f7b69,
	0xd5cf889d, 0x27a40b9e, 0x79b737ba, 0x8bdcb4b9, 0x988c474d, 0x6ae7c44e,
	0xbe2da0a5, 0x4c4623a6, 0x5f16d052, 0xad7d5351,
};

/* A change to the message, in offset order: the original bytes
 * [off, off+oldw) become the encoding of val. */
enum ki_edit_kind {
	KE_INT32 = 1,   /* big-endian int32 */
	KE_UVARINT = 2, /* unsigned varint (a compact length + 1) */
	KE_VARINT = 3,  /* zigzag varint of a non-negative val */
	KE_INSERT = 4,  /* the traceparent header, inserted at off (oldw 0) */
	KE_CRC = 5,     /* a batch's CRC, computed once rebuilt; val = the batch's new length */
};

struct ki_edit {
	__u32 off;
	__u32 oldw;
	__u32 kind;
	__u32 val;
};

/* What the parser expects next. */
enum ki_state {
	KS_PART = 0,   /* a partition (or the end of the topic) */
	KS_BATCH = 1,  /* a record batch (or the end of the partition's records) */
	KS_RECORD = 2, /* a record (or the end of the batch) */
	KS_HEADER = 3, /* a record header (or the end of the record) */
	KS_DONE = 4,
	KS_FAIL = 5,
	KS_HAD_TP = 6, /* a record already carries traceparent */
};

/* ki_rewrite's answer when a record already has a traceparent header. */
#define KI_HAD_TP 1

struct ki_scratch {
	__u8 src[KI_SRC * 2]; /* the message; x2 so masked offset + length stay inside */
	__u8 dst[KI_DST * 2]; /* its rewrite */
	__u8 hdr[KI_HDR_LEN + 4];
	struct ki_edit edits[KI_MAX_EDITS];
	__u32 crc_at[KI_MAX_BATCHES]; /* dst offsets of the rebuilt batches' CRC fields */
	__u32 crc_len[KI_MAX_BATCHES];
	__u32 src_crc_at[KI_MAX_BATCHES]; /* the original batches' CRC fields, checked first */
	__u32 src_crc_len[KI_MAX_BATCHES];
	__u64 val; /* the last varint read */
	__u32 slen;
	/* parser */
	__u32 pos, state, flex, nedits, nbatches, nrecords;
	__u32 parts_left, recs_left, hdrs_left;
	__u32 rec_end, batch_end, record_end; /* ends of the partition's records, the batch, the record */
	__u32 e_part, e_batch, e_crc, e_len;  /* edits whose values are known when those end */
	__u32 part_grow, batch_grow, total_grow;
	/* builder */
	__u32 cur, dpos, ncrc, bad;
};

/* Per CPU: sk_msg runs the whole rewrite in one program invocation. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ki_scratch);
} ki_scratch_map SEC(".maps");

/* Hides what the compiler knows of x, so a mask after it stays in the
 * program for the verifier (which does not follow every comparison). */
#define KI_OPAQUE(x) asm volatile("" : "+r"(x))

#define KI_SMASK (KI_SRC - 1)
#define KI_DMASK (KI_DST - 1)
#define KI_EMASK (KI_MAX_EDITS - 1)

/* Reads an unsigned varint of at most max bytes at pos into s->val;
 * returns its width, 0 when malformed or past the message. */
__attribute__((noinline)) int ki_uvarint(struct ki_scratch *s, __u32 max)
{
	if (!s)
		return 0;
	__u64 v = 0;
	__u32 pos = s->pos;
	for (int i = 0; i < 10; i++) {
		if (i >= max || pos + i >= s->slen)
			return 0;
		__u8 b = s->src[(pos + i) & KI_SMASK];
		v |= (__u64)(b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			s->val = v;
			s->pos = pos + i + 1;
			return i + 1;
		}
	}
	return 0;
}

/* A zigzag varint (record fields); -2 when malformed. */
static __always_inline __s64 ki_varint(struct ki_scratch *s, __u32 max)
{
	if (!ki_uvarint(s, max))
		return -2;
	__u64 v = s->val;
	__s64 x = (__s64)(v >> 1) ^ -(__s64)(v & 1);
	return x < -1 ? -2 : x;
}

static __always_inline __u32 uv_width(__u64 v)
{
	return v < (1 << 7) ? 1 : v < (1 << 14) ? 2 : v < (1 << 21) ? 3 : v < (1 << 28) ? 4 : 5;
}

static __always_inline int ki_need(struct ki_scratch *s, __u32 n)
{
	return s->pos + n <= s->slen;
}

static __always_inline const __u8 *ki_at(struct ki_scratch *s)
{
	return &s->src[s->pos & KI_SMASK];
}

/* Skips n bytes that must end within limit. */
static __always_inline int ki_skip(struct ki_scratch *s, __s64 n, __u32 limit)
{
	if (n < 0 || n > KI_SRC || s->pos + n > limit)
		return 0;
	s->pos += n;
	return 1;
}

/* Skips a record's varint-length bytes (null: -1). */
static __always_inline int ki_skip_varbytes(struct ki_scratch *s, __u32 end)
{
	__s64 n = ki_varint(s, 5);
	return n == -1 || (n >= 0 && ki_skip(s, n, end));
}

static __always_inline int ki_edit(struct ki_scratch *s, __u32 off, __u32 oldw, __u32 kind, __u32 val)
{
	__u32 n = s->nedits;
	if (n >= KI_MAX_EDITS)
		return -1;
	struct ki_edit *e = &s->edits[n & KI_EMASK];
	e->off = off;
	e->oldw = oldw;
	e->kind = kind;
	e->val = val;
	s->nedits = n + 1;
	return n;
}

/* Flexible versions: an empty tagged-field section (anything else is
 * left alone). */
static __always_inline int ki_no_tags(struct ki_scratch *s)
{
	return !s->flex || (ki_uvarint(s, 5) && s->val == 0);
}

/* An array count: int32, or compact (uvarint n+1); -2 when malformed. */
static __always_inline __s64 ki_count(struct ki_scratch *s)
{
	if (s->flex)
		return ki_uvarint(s, 5) ? (__s64)s->val - 1 : -2;
	if (!ki_need(s, 4))
		return -2;
	__s32 n = (__s32)be32_at(ki_at(s));
	s->pos += 4;
	return n;
}

/* Skips a (nullable) string: int16 length, or compact (uvarint n+1). */
static __always_inline int ki_skip_str(struct ki_scratch *s, int nullable)
{
	__s64 n;
	if (s->flex) {
		if (!ki_uvarint(s, 5))
			return 0;
		n = (__s64)s->val - 1;
	} else {
		if (!ki_need(s, 2))
			return 0;
		n = (__s16)be16_at(ki_at(s));
		s->pos += 2;
	}
	if (n == -1)
		return nullable;
	return ki_skip(s, n, s->slen);
}

/* The request header and body up to the partitions of its one topic. */
__attribute__((noinline)) int ki_head(struct ki_scratch *s)
{
	if (!s)
		return 0;
	__u32 slen = s->slen;
	if (slen < 64 || slen > KI_SRC)
		return 0;
	const __u8 *b = s->src;
	__u32 ver = be16_at(b + 6);
	if (be32_at(b) + 4 != slen || be16_at(b + 4) != 0 || ver < 3 || ver > 13)
		return 0;
	s->flex = ver >= 9;
	s->nedits = s->nbatches = s->nrecords = s->total_grow = 0;
	if (ki_edit(s, 0, 4, KE_INT32, slen - 4) != 0)
		return 0;
	__s32 idlen = (__s16)be16_at(b + 12); /* client_id: int16 length even in header v2 */
	s->pos = 14;
	if (idlen > 0 && !ki_skip(s, idlen, slen))
		return 0;
	if (idlen < -1 || !ki_no_tags(s) || !ki_skip_str(s, 1) /* transactional_id */ || !ki_skip(s, 6, slen))
		return 0; /* acks, timeout */
	if (ki_count(s) != 1)
		return 0; /* one topic: one PRODUCER span carries the context */
	if (ver >= 13 ? !ki_skip(s, 16, slen) : !ki_skip_str(s, 0))
		return 0; /* topic id or name */
	__s64 np = ki_count(s);
	if (np < 1 || np > KI_MAX_BATCHES)
		return 0;
	s->parts_left = np;
	s->state = KS_PART;
	return 1;
}

/* A partition: its records size field, or the end of the request. */
static __always_inline int ki_part(struct ki_scratch *s)
{
	if (s->parts_left == 0) {
		/* topic and request tagged fields, then the end */
		if (!ki_no_tags(s) || !ki_no_tags(s) || s->pos != s->slen)
			return KS_FAIL;
		return KS_DONE;
	}
	if (!ki_skip(s, 4, s->slen)) /* partition index */
		return KS_FAIL;
	__u32 at = s->pos;
	__s64 n;
	int e;
	if (s->flex) {
		int w = ki_uvarint(s, 5);
		n = (__s64)s->val - 1;
		if (!w || n < 0 || n > KI_SRC)
			return KS_FAIL;
		e = ki_edit(s, at, w, KE_UVARINT, s->val);
	} else {
		n = ki_count(s); /* records: int32 length */
		if (n < 0 || n > KI_SRC)
			return KS_FAIL;
		e = ki_edit(s, at, 4, KE_INT32, n);
	}
	if (e < 0 || s->pos + n > s->slen)
		return KS_FAIL;
	s->rec_end = s->pos + n;
	s->e_part = e;
	s->part_grow = 0;
	return KS_BATCH;
}

/* A record batch header, or the end of the partition's records. */
static __always_inline int ki_batch(struct ki_scratch *s)
{
	if (s->pos == s->rec_end) {
		struct ki_edit *e = &s->edits[s->e_part & KI_EMASK];
		__u32 nv = e->val + s->part_grow;
		s->total_grow += s->part_grow;
		if (e->kind == KE_UVARINT)
			s->total_grow += uv_width(nv) - e->oldw;
		e->val = nv;
		if (!ki_no_tags(s))
			return KS_FAIL;
		s->parts_left--;
		return KS_PART;
	}
	if (s->pos + 61 > s->rec_end || s->nbatches >= KI_MAX_BATCHES)
		return KS_FAIL;
	const __u8 *b = ki_at(s);
	__u32 blen = be32_at(b + 8), attrs = be16_at(b + 21), nrec = be32_at(b + 57);
	if (blen < 49 || blen > KI_SRC || s->pos + 12 + blen > s->rec_end || b[16] != 2)
		return KS_FAIL;
	if (attrs & 0x27) /* compressed, or a control batch */
		return KS_FAIL;
	if (nrec < 1 || nrec > KI_MAX_RECORDS || s->nrecords + nrec > KI_MAX_RECORDS)
		return KS_FAIL;
	int eb = ki_edit(s, s->pos + 8, 4, KE_INT32, blen);
	int ec = ki_edit(s, s->pos + 17, 4, KE_CRC, 0);
	if (eb < 0 || ec < 0)
		return KS_FAIL;
	s->e_batch = eb;
	s->e_crc = ec;
	s->src_crc_at[s->nbatches & (KI_MAX_BATCHES - 1)] = s->pos + 17;
	s->src_crc_len[s->nbatches & (KI_MAX_BATCHES - 1)] = blen - 9; /* from attributes to the end */
	s->batch_end = s->pos + 12 + blen;
	s->recs_left = nrec;
	s->nrecords += nrec;
	s->nbatches++;
	s->batch_grow = 0;
	s->pos += 61;
	return KS_RECORD;
}

/* A record up to its headers, or the end of the batch. */
static __always_inline int ki_record(struct ki_scratch *s)
{
	if (s->recs_left == 0) {
		if (s->pos != s->batch_end)
			return KS_FAIL;
		struct ki_edit *e = &s->edits[s->e_batch & KI_EMASK];
		e->val += s->batch_grow;
		s->edits[s->e_crc & KI_EMASK].val = e->val;
		s->part_grow += s->batch_grow;
		return KS_BATCH;
	}
	__u32 at = s->pos;
	__s64 len = ki_varint(s, 5);
	__u32 w = s->pos - at;
	if (len < 6 || len > KI_SRC || s->pos + len > s->batch_end)
		return KS_FAIL;
	__u32 end = s->pos + len;
	s->record_end = end;
	int el = ki_edit(s, at, w, KE_VARINT, len);
	if (el < 0)
		return KS_FAIL;
	s->e_len = el;
	/* attributes, timestamp delta, offset delta */
	if (!ki_skip(s, 1, end) || !ki_uvarint(s, 10) || !ki_uvarint(s, 5))
		return KS_FAIL;
	if (!ki_skip_varbytes(s, end) || !ki_skip_varbytes(s, end)) /* key, value */
		return KS_FAIL;
	at = s->pos;
	__s64 hc = ki_varint(s, 5);
	/* The count must keep its one-byte encoding. */
	if (hc < 0 || hc > 62 || s->pos != at + 1 || s->pos > end)
		return KS_FAIL;
	if (ki_edit(s, at, 1, KE_VARINT, hc + 1) < 0)
		return KS_FAIL;
	s->hdrs_left = hc;
	s->recs_left--;
	return KS_HEADER;
}

/* One record header, or the end of the record (where ours goes). */
static __always_inline int ki_header(struct ki_scratch *s)
{
	__u32 end = s->record_end;
	if (s->hdrs_left == 0) {
		if (s->pos != end || ki_edit(s, end, 0, KE_INSERT, 0) < 0)
			return KS_FAIL;
		struct ki_edit *e = &s->edits[s->e_len & KI_EMASK];
		__u32 nv = e->val + KI_HDR_LEN;
		e->val = nv;
		/* the length is re-encoded minimally; it may grow a byte */
		s->batch_grow += KI_HDR_LEN + uv_width((__u64)nv << 1) - e->oldw;
		return KS_RECORD;
	}
	__s64 kl = ki_varint(s, 5);
	if (kl < 0 || s->pos + kl > end)
		return KS_FAIL;
	if (kl == 11) {
		const __u8 *k = ki_at(s);
		__u64 w0 = 0;
		__builtin_memcpy(&w0, k, 8);
		if (w0 == LOWER8('t', 'r', 'a', 'c', 'e', 'p', 'a', 'r') && k[8] == 'e' && k[9] == 'n' && k[10] == 't')
			return KS_HAD_TP;
	}
	s->pos += kl;
	if (!ki_skip_varbytes(s, end)) /* value */
		return KS_FAIL;
	s->hdrs_left--;
	return KS_HEADER;
}

/* One parse step; 1 when parsing is over. */
__attribute__((noinline)) int ki_parse_step(struct ki_scratch *s)
{
	if (!s)
		return 1;
	int next = KS_FAIL;
	switch (s->state) {
	case KS_PART: next = ki_part(s); break;
	case KS_BATCH: next = ki_batch(s); break;
	case KS_RECORD: next = ki_record(s); break;
	case KS_HEADER: next = ki_header(s); break;
	}
	s->state = next;
	return next >= KS_DONE;
}

/* Copies the original bytes from the build cursor up to upto. */
static __always_inline int ki_copy(struct ki_scratch *s, __u32 upto)
{
	__u32 cur = s->cur, dpos = s->dpos;
	if (upto < cur || upto > s->slen)
		return 0;
	__u32 n = upto - cur;
	if (n == 0)
		return 1;
	/* n < KI_SRC: an edit at 0 always precedes. */
	if (n >= KI_SRC || dpos + n > KI_DST)
		return 0;
	KI_OPAQUE(n);
	bpf_probe_read_kernel(&s->dst[dpos & KI_DMASK], n & KI_SMASK, &s->src[cur & KI_SMASK]);
	s->dpos = dpos + n;
	s->cur = upto;
	return 1;
}

static __always_inline __u32 ki_put_uvarint(struct ki_scratch *s, __u32 at, __u64 v)
{
	__u8 *d = &s->dst[at & KI_DMASK];
#pragma unroll
	for (int i = 0; i < 5; i++) {
		__u8 b = v & 0x7f;
		v >>= 7;
		d[i] = v ? b | 0x80 : b;
		if (!v)
			return i + 1;
	}
	return 5;
}

/* Writes edit i (after the original bytes before it); past the last edit,
 * the rest of the original. 1 when done. */
__attribute__((noinline)) int ki_build_edit(struct ki_scratch *s, __u32 i)
{
	if (!s)
		return 1;
	if (i >= s->nedits || i >= KI_MAX_EDITS) {
		if (!ki_copy(s, s->slen))
			s->bad = 1;
		return 1;
	}
	KI_OPAQUE(i);
	struct ki_edit *e = &s->edits[i & KI_EMASK];
	if (!ki_copy(s, e->off)) {
		s->bad = 1;
		return 1;
	}
	__u32 at = s->dpos, val = e->val, w = 0;
	__u8 *d = &s->dst[at & KI_DMASK];
	switch (e->kind) {
	case KE_CRC: {
		__u32 n = s->ncrc;
		if (n >= KI_MAX_BATCHES || val < 9) {
			s->bad = 1;
			return 1;
		}
		s->crc_at[n & (KI_MAX_BATCHES - 1)] = at;
		s->crc_len[n & (KI_MAX_BATCHES - 1)] = val - 9; /* from attributes to the end */
		s->ncrc = n + 1;
		val = 0;
	}
		/* fallthrough: a placeholder */
	case KE_INT32:
		d[0] = val >> 24;
		d[1] = val >> 16;
		d[2] = val >> 8;
		d[3] = val;
		w = 4;
		break;
	case KE_UVARINT:
		w = ki_put_uvarint(s, at, val);
		break;
	case KE_VARINT:
		w = ki_put_uvarint(s, at, (__u64)val << 1);
		break;
	case KE_INSERT:
		bpf_probe_read_kernel(d, KI_HDR_LEN, s->hdr);
		w = KI_HDR_LEN;
		break;
	default:
		s->bad = 1;
		return 1;
	}
	s->dpos = at + w;
	s->cur = e->off + e->oldw;
	if (s->dpos > KI_DST) {
		s->bad = 1;
		return 1;
	}
	return 0;
}

struct ki_ref {
	struct ki_scratch *s;
};

static long ki_parse_cb(__u64 i, void *arg)
{
	return ki_parse_step(((struct ki_ref *)arg)->s) ? 1 : 0;
}

static long ki_build_cb(__u64 i, void *arg)
{
	return ki_build_edit(((struct ki_ref *)arg)->s, (__u32)i) ? 1 : 0;
}

struct ki_crc_run {
	const __u8 *buf; /* s->src or s->dst */
	__u32 pos, end, crc, _pad;
};

/* CRC-32C of 8 more bytes. */
static long ki_crc_cb(__u64 i, void *arg)
{
	struct ki_crc_run *c = arg;
	__u32 p = c->pos + (__u32)i * 8, crc = c->crc;
	int more = 1;
#pragma unroll
	for (int k = 0; k < 8; k++) {
		if (p + k >= c->end) {
			more = 0;
			break;
		}
		__u8 b = c->buf[(p + k) & KI_DMASK];
		crc = ki_crc32c[(crc ^ b) & 0xff] ^ (crc >> 8);
	}
	c->crc = crc;
	return !more;
}

/* CRC-32C of buf[pos:pos+len] (buf: s->src or s->dst). */
static __always_inline __u32 ki_crc_of(const __u8 *buf, __u32 pos, __u32 len)
{
	struct ki_crc_run c = {.buf = buf, .pos = pos, .end = pos + len, .crc = 0xffffffff};
	bpf_loop(KI_DST / 8, ki_crc_cb, &c, 0);
	return c.crc ^ 0xffffffff;
}

/* Checks the original batches' CRCs (a corrupt batch must stay corrupt,
 * not be re-signed) and fills in those of the rebuilt ones; 0 on a
 * mismatch. */
__attribute__((noinline)) int ki_crcs(struct ki_scratch *s)
{
	if (!s)
		return 0;
	for (int b = 0; b < KI_MAX_BATCHES; b++) {
		if (b >= s->ncrc)
			break;
		__u32 at = s->src_crc_at[b], len = s->src_crc_len[b];
		if (at + 4 + len > s->slen || ki_crc_of(s->src, at + 4, len) != be32_at(&s->src[at & KI_SMASK]))
			return 0;
		at = s->crc_at[b];
		len = s->crc_len[b];
		if (at + 4 + len > s->dpos)
			return 0;
		__u32 crc = ki_crc_of(s->dst, at + 4, len);
		__u8 *d = &s->dst[at & KI_DMASK];
		d[0] = crc >> 24;
		d[1] = crc >> 16;
		d[2] = crc >> 8;
		d[3] = crc;
	}
	return 1;
}

/* Rewrites s->src[0:slen] into s->dst with a traceparent header (s->hdr)
 * in every record. Returns the new length; 0 when the message is not one
 * this verifies (untouched); KI_HAD_TP when a record has one already. */
__attribute__((noinline)) int ki_rewrite(struct ki_scratch *s)
{
	if (!s || !ki_head(s))
		return 0;
	struct ki_ref r = {.s = s};
	bpf_loop(KI_STEPS, ki_parse_cb, &r, 0);
	if (s->state == KS_HAD_TP)
		return KI_HAD_TP;
	__u32 dlen = s->slen + s->total_grow;
	if (s->state != KS_DONE || dlen > KI_DST || dlen <= s->slen)
		return 0;
	s->edits[0].val = dlen - 4; /* the request size */
	s->cur = s->dpos = s->ncrc = s->bad = 0;
	bpf_loop(KI_MAX_EDITS + 1, ki_build_cb, &r, 0);
	if (s->bad || s->dpos != dlen || s->cur != s->slen || s->ncrc != s->nbatches || !ki_crcs(s))
		return 0;
	return dlen;
}

/* The header ki_rewrite appends: `traceparent` = the plan's context. */
static __always_inline void ki_fill_header(struct ki_scratch *s, struct kafka_plan *p)
{
	__u8 *h = s->hdr;
	h[0] = 22; /* zigzag 11 */
	__builtin_memcpy(h + 1, "traceparent", 11);
	h[12] = 110; /* zigzag 55 */
	put_traceparent(h + 13, p->trace_id, p->span_id, p->trace_flags);
}

/* sk_msg: replaces the Produce request planned for this thread with its
 * rewrite. Returns 1 when the message was this plan's (whatever came of
 * it), 0 to let other injections look at it. */
static __always_inline int kafka_inject_msg(struct sk_msg_md *msg)
{
	if (!kafka_inject_enabled)
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	struct kafka_plan *p = bpf_map_lookup_elem(&kafka_plans, &id);
	if (!p || p->done)
		return 0;
	__u32 rp = msg->remote_port;
	if (msg->local_port != p->local_port || (rp != p->remote_port && (rp >> 16) != p->remote_port))
		return 0;
	p->done = 2; /* one try per write */
	__u32 size = msg->size;
	if (size < 64 || size > KI_SRC) {
		kcount(KC_UNTOUCHED);
		return 1;
	}
	if (bpf_msg_pull_data(msg, 0, size, 0)) {
		kcount(KC_FAILED);
		return 1;
	}
	__u8 *data = msg->data, *end = msg->data_end;
	__u32 zero = 0;
	struct ki_scratch *s = bpf_map_lookup_elem(&ki_scratch_map, &zero);
	if (!s || data + size > end) {
		kcount(KC_FAILED);
		return 1;
	}
	if (bpf_probe_read_kernel(s->src, size, data)) {
		kcount(KC_FAILED);
		return 1;
	}
	s->slen = size;
	ki_fill_header(s, p);
	int dlen = ki_rewrite(s);
	if (dlen == KI_HAD_TP) {
		kcount(KC_HAD_TP);
		return 1;
	}
	if (dlen <= (int)size || dlen > KI_DST) {
		kcount(KC_UNTOUCHED);
		return 1;
	}
	__u32 grow = dlen - size;
	/* Pushed inside the message, then the whole rewrite is written over
	 * it: where the new bytes go does not matter. */
	if (bpf_msg_push_data(msg, 4, grow, 0)) {
		kcount(KC_FAILED);
		return 1;
	}
	if (bpf_msg_pull_data(msg, 0, dlen, 0) || msg->size != (__u32)dlen)
		goto undo;
	data = msg->data;
	end = msg->data_end;
	if (data + (dlen & KI_DMASK) > end || dlen < 8)
		goto undo;
	/* Nothing is written until the whole rewrite fits: these checks are
	 * for the verifier. */
	for (__u32 i = 0; i < KI_DST / 8; i++) {
		__u32 o = i * 8;
		if (o + 8 > (__u32)dlen || data + o + 8 > end)
			break;
		*(__u64 *)(data + o) = *(__u64 *)&s->dst[o];
	}
	__u32 t = (dlen - 8) & KI_DMASK;
	if (data + t + 8 <= end)
		*(__u64 *)(data + t) = *(__u64 *)&s->dst[t];
	p->done = 1;
	kcount(KC_INJECTED);
	return 1;
undo:
	bpf_msg_pop_data(msg, 4, grow, 0);
	kcount(KC_FAILED);
	return 1;
}
