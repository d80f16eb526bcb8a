/* Per-stream client contexts of HTTP/2 requests that a Go program writes
 * from a goroutine other than the caller's.
 *
 * grpc-go clients write every stream's HEADERS from the connection's
 * loopy-writer goroutine, and one write carries the HEADERS of many
 * callers' streams. A runtime hand-off (grpcgo.h) notes, per stream, the
 * CLIENT ids of the call, a child of the request its caller serves:
 *   go_h2_out[pid, writer goroutine, sid]
 * The write that carries the stream's request HEADERS (h2.h) takes them
 * (once): it injects exactly those ids and reports them to the agent as a
 * stream record (h2_stream.h's format, kind CLIENT) in the write's segment
 * event, so the CLIENT span carries them too. A stream without an entry is
 * a root as before. */
#pragma once

#include "http.h"

struct go_out_key {
	__u32 pid;
	__u32 sid;
	__u64 g; /* the writer goroutine (runtime.g) */
};

struct go_out {
	struct trace_ctx c;
	__u64 w;  /* the writer that took the stream (grpc-go: *loopyWriter) */
	__u64 ts; /* when */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct go_out_key);
	__type(value, struct go_out);
} go_h2_out SEC(".maps");

/* The writer each writer goroutine runs now: goroutine structs are reused,
 * so an entry a former writer on the same struct left (its connection
 * died before the write) names another writer and is not taken. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct ctx_key);
	__type(value, __u64);
} go_h2_writer SEC(".maps");

/* HEADERS are written within moments of being taken; an older entry is
 * a leftover, never a parent. */
#define GO_OUT_TTL_NS (10ull * 1000000000)

/* Takes the ids noted for stream sid of writer goroutine g (1: found). */
static __always_inline int go_stream_ctx(__u32 pid, __u64 g, __u32 sid, struct trace_ctx *out)
{
	struct go_out_key k = {.pid = pid, .sid = sid, .g = g};
	struct go_out *v = bpf_map_lookup_elem(&go_h2_out, &k);
	if (!v)
		return 0;
	struct ctx_key wk = {.pid = pid, .goid = g};
	__u64 *w = bpf_map_lookup_elem(&go_h2_writer, &wk);
	int ok = w && *w == v->w && bpf_ktime_get_ns() - v->ts < GO_OUT_TTL_NS;
	if (ok)
		*out = v->c;
	bpf_map_delete_elem(&go_h2_out, &k);
	return ok;
}

#define H2_REC_STREAM 0x80000000 /* segment record flag: {sid, H2_REC_STREAM | 40} + trace_ctx */

/* One stream record, laid out as a segment record (h2_stream.h):
 * {sid, H2_REC_STREAM | 40} then the ids. */
struct h2_out_rec {
	__u32 sid;
	__u32 len;
	struct trace_ctx c;
};

#define H2_OUT_RECS 256 /* streams with a caller's ids per write (more: roots) */

/* The records a write's plan makes (h2.h), sent by h2_out_emit
 * (h2_stream.h) at its entry: the agent joins them to the write's data
 * event as it does its segments. */
struct h2_out_recs {
	__u32 n;
	__u32 _pad;
	struct h2_out_rec r[H2_OUT_RECS];
};

/* Defined in h2_stream.h (a global function: verified once). */
int h2_out_emit(__u64 sk);
