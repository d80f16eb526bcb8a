/* grpc-go servers: the transport goroutine reads every stream's HEADERS,
 * and each stream is handled on another goroutine (a new one per stream,
 * or a NumStreamWorkers worker). Three uprobes, per connection or per
 * RPC, never per syscall, hand each stream's ids (h2_stream.h) to the
 * goroutine that handles it:
 *   (*http2Server).HandleStreams  receiver t: transport t serves the
 *       socket of its conn's fd
 *   (*Server).handleStream(t, stream)  handler goroutine: it now serves
 *       stream's request (stream id at the attach cookie's offset)
 *   (*http2Server).writeStatus    handler goroutine, the RPC's end: it
 *       serves nothing any more (the goroutine may exit and its struct be
 *       reused, or a worker take the next stream) */
#pragma once

#include "gohttp.h"
#include "h2_stream.h"
#include "h2_out.h"


/* HandleStreams runs for the connection's life on the goroutine that
 * reads it: t's conn (a net.Conn whose data is a *net.TCPConn, whose
 * first word is its *netFD) holds the fd. Offsets in the attach cookie
 * (agent/capture/grpcgo.go): 16-31 http2Server.conn, 32-47 netFD's fd.
 * Only a socket the kernel knows as an HTTP/2 server's is taken (a TLS
 * conn reads as some other fd, never as such a socket). */
SEC("uprobe/go_grpc_reader")
int go_grpc_reader(struct pt_regs *ctx)
{
	struct ctx_key k;
	if (!go_key(ctx, &k))
		return 0;
	/* A reused goroutine struct, or one a request started: it serves no request. */
	bpf_map_delete_elem(&server_ctx, &k);
	bpf_map_delete_elem(&go_lineage, &k);
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u64 t = GO_ARG1(ctx), conn = 0, nfd = 0;
	__s64 fd = -1;
	if (bpf_probe_read_user(&conn, 8, (void *)(t + ((cookie >> 16) & 0xffff) + 8)) || !conn ||
	    bpf_probe_read_user(&nfd, 8, (void *)conn) || !nfd ||
	    bpf_probe_read_user(&fd, 8, (void *)(nfd + ((cookie >> 32) & 0xffff))) || fd < 0 || fd > 0x7fffffff)
		return 0;
	struct sock *s = task_sock_of_fd(bpf_get_current_task_btf(), (int)fd);
	__u64 sk = (__u64)s;
	struct h2_sock *hs = s ? bpf_map_lookup_elem(&h2_socks, &sk) : NULL;
	if (!hs || hs->role != H2_SERVER)
		return 0;
	struct go_h2conn_key ck = {.pid = k.pid, .t = t};
	bpf_map_update_elem(&go_h2conns, &ck, &sk, BPF_ANY);
	return 0;
}

/* handleStream(t ServerTransport, stream *ServerStream): t is an
 * interface (itab, data) after the receiver, so its data pointer is the
 * third word of arguments and stream the fourth. */
SEC("uprobe/go_grpc_handle")
int go_grpc_handle(struct pt_regs *ctx)
{
	struct ctx_key k;
	if (!go_key(ctx, &k))
		return 0;
	bpf_map_delete_elem(&server_ctx, &k);
	struct go_h2conn_key ck = {.pid = k.pid, .t = GO_ARG3(ctx)};
	__u64 *sk = bpf_map_lookup_elem(&go_h2conns, &ck);
	__u32 sid = 0;
	__u64 id_off = bpf_get_attach_cookie(ctx) & 0xffff;
	if (!sk || bpf_probe_read_user(&sid, 4, (void *)(GO_ARG4(ctx) + id_off)))
		return 0;
	struct h2_stream_key sk2 = {.pid = k.pid, .sid = sid, .sk = *sk};
	struct trace_ctx *c = bpf_map_lookup_elem(&h2_streams, &sk2);
	__u32 zero = 0;
	struct srv_ctx *nv = bpf_map_lookup_elem(&ctx_scratch, &zero);
	if (!c || !nv)
		return 0;
	serve_ctx(nv, c);
	nv->outstanding = 1;
	nv->sock = *sk;
	bpf_map_update_elem(&server_ctx, &k, nv, BPF_ANY);
	bpf_map_delete_elem(&h2_streams, &sk2); /* one handler per stream */
	return 0;
}

SEC("uprobe/go_grpc_status")
int go_grpc_status(struct pt_regs *ctx)
{
	struct ctx_key k;
	if (go_key(ctx, &k))
		bpf_map_delete_elem(&server_ctx, &k);
	return 0;
}

/* grpc-go clients: a call's goroutine queues its stream's HEADERS (a
 * *clientHeaders) on the transport's control buffer, and the connection's
 * loopy-writer goroutine writes them, many callers' in one write. Two
 * uprobes, per RPC, carry the caller's request over (h2_out.h):
 *   NewStream's call of (*controlBuffer).executeAndPut(f, hdr)  the
 *       caller, before hdr is queued (on the call instruction:
 *       executeAndPut itself runs for every frame queued):
 *       go_grpc_hdrs[hdr] = the call's CLIENT ids, a child of the request
 *       the caller serves
 *   (*loopyWriter).clientHeaderHandler(l, hdr)  the writer, before it
 *       encodes hdr, whose stream id the caller's f set (cookie: its
 *       offset): go_h2_out[writer, sid] = go_grpc_hdrs[hdr] */
struct go_hdr_key {
	__u32 pid;
	__u32 _pad;
	__u64 hdr;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct go_hdr_key);
	__type(value, struct trace_ctx);
} go_grpc_hdrs SEC(".maps");

/* executeAndPut(c, f, it cbItem): it's data pointer is the fourth word. */
SEC("uprobe/go_grpc_put")
int go_grpc_put(struct pt_regs *ctx)
{
	struct ctx_key k;
	if (!go_key(ctx, &k))
		return 0;
	struct go_hdr_key hk = {.pid = k.pid, .hdr = GO_ARG4(ctx)};
	struct srv_ctx *cur = go_request_ctx(&k);
	if (!ctx_usable(cur)) {
		bpf_map_delete_elem(&go_grpc_hdrs, &hk); /* a former hdr at this address: not this call's */
		return 0;
	}
	struct trace_ctx c;
	client_ctx(cur, &c);
	bpf_map_update_elem(&go_grpc_hdrs, &hk, &c, BPF_ANY);
	return 0;
}

SEC("uprobe/go_grpc_hdr")
int go_grpc_hdr(struct pt_regs *ctx)
{
	struct ctx_key k;
	if (!go_key(ctx, &k))
		return 0;
	/* The writer serves no request, whatever its goroutine struct did before. */
	bpf_map_delete_elem(&server_ctx, &k);
	bpf_map_delete_elem(&go_writer, &k);
	bpf_map_delete_elem(&go_lineage, &k);
	__u64 l = GO_ARG1(ctx);
	__u64 *was = bpf_map_lookup_elem(&go_h2_writer, &k);
	if (!was || *was != l)
		bpf_map_update_elem(&go_h2_writer, &k, &l, BPF_ANY);
	struct go_hdr_key hk = {.pid = k.pid, .hdr = GO_ARG2(ctx)};
	struct trace_ctx *c = bpf_map_lookup_elem(&go_grpc_hdrs, &hk);
	if (!c)
		return 0;
	__u32 sid = 0;
	if (!bpf_probe_read_user(&sid, 4, (void *)(hk.hdr + (bpf_get_attach_cookie(ctx) & 0xffff))) && (sid & 1)) {
		struct go_out_key ok = {.pid = k.pid, .sid = sid, .g = k.goid};
		struct go_out v = {.c = *c, .w = l, .ts = bpf_ktime_get_ns()};
		bpf_map_update_elem(&go_h2_out, &ok, &v, BPF_ANY);
	}
	bpf_map_delete_elem(&go_grpc_hdrs, &hk);
	return 0;
}
