/* Go net/http clients: the request a handler goroutine sends is written by
 * the connection's writeLoop goroutine, not by the handler. Two uprobes
 * (off the per-syscall path: one per client request, one per connection)
 * carry the handler's server context over to that writer:
 *   (*persistConn).roundTrip  (handler goroutine, receiver pc)
 *       pconn_ctx[pc] = server_ctx[handler goroutine]
 *   (*persistConn).writeLoop  (writer goroutine, receiver pc)
 *       go_writer[writer goroutine] = pc
 * and the writer's write() finds its context through both. */
#pragma once

#include "goabi.h"
#include "golineage.h"


struct pconn_key {
	__u32 pid;
	__u32 _pad;
	__u64 pc; /* *persistConn */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct pconn_key);
	__type(value, struct srv_ctx);
} pconn_ctx SEC(".maps");


SEC("uprobe/go_persistconn_roundtrip")
int go_roundtrip(struct pt_regs *ctx)
{
	struct ctx_key k;
	if (!go_key(ctx, &k))
		return 0;
	struct pconn_key pk = {.pid = k.pid, .pc = GO_ARG1(ctx)};
	struct srv_ctx *cur = go_request_ctx(&k);
	if (!ctx_usable(cur)) {
		bpf_map_delete_elem(&pconn_ctx, &pk); /* no stale parent for this call */
		return 0;
	}
	bpf_map_update_elem(&pconn_ctx, &pk, cur, BPF_ANY);
	return 0;
}

SEC("uprobe/go_persistconn_writeloop")
int go_writeloop(struct pt_regs *ctx)
{
	struct ctx_key k;
	if (!go_key(ctx, &k))
		return 0;
	__u64 pc = GO_ARG1(ctx);
	bpf_map_update_elem(&go_writer, &k, &pc, BPF_ANY);
	/* Goroutine structs are reused: this one may have served a request
	 * before; as a writer it must not look like it still does, nor like
	 * the request it was started under (golineage.h). */
	bpf_map_delete_elem(&server_ctx, &k);
	bpf_map_delete_elem(&go_lineage, &k);
	return 0;
}

/* The server context of the request a Go writer goroutine is writing. */
static __always_inline struct srv_ctx *go_client_ctx(struct ctx_key *k)
{
	__u64 *pc = bpf_map_lookup_elem(&go_writer, k);
	if (!pc)
		return NULL;
	struct pconn_key pk = {.pid = k->pid, .pc = *pc};
	return bpf_map_lookup_elem(&pconn_ctx, &pk);
}
