/* Payload capture: copies a syscall's bytes (a buffer, or an iovec array
 * of up to UIO_MAXIOV entries) from user memory into the per-CPU scratch
 * event, which exit_io scans in the kernel and then writes to the ring.
 *
 * (A one-copy variant straight into a ring record, via
 * bpf_ringbuf_reserve_dynptr + bpf_probe_read_user_dynptr, measured no
 * faster here and had to copy the payload back for the HTTP/2 frame walks
 * anyway, so it was dropped.) */
#pragma once

#include "common.h"

/* Layouts of the user-space structures we read. */
struct user_iovec {
	__u64 base;
	__u64 len;
};

struct user_msghdr_min {
	__u64 name;
	__s32 namelen;
	__s32 _pad;
	__u64 iov;
	__u64 iovlen;
};

struct iov_gather {
	struct data_event *ev;
	__u64 iovp;
	__u32 iovcnt, limit;
};

/* bpf_loop callback: appends iovec i. The running offset lives in the map
 * value (ev->hdr.captured), which the verifier does not track, so every
 * iteration has the same state and the callback is verified once. */
static long gather_one(__u64 i, void *arg)
{
	struct iov_gather *g = arg;
	__u32 off = g->ev->hdr.captured;
	if (i >= g->iovcnt || off >= g->limit)
		return 1;
	struct user_iovec iov = {};
	if (bpf_probe_read_user(&iov, sizeof(iov), (void *)(g->iovp + i * sizeof(iov))))
		return 1;
	__u64 n = iov.len;
	if (n > g->limit - off)
		n = g->limit - off;
	if (n > MAX_CAPTURE)
		n = MAX_CAPTURE;
	if (bpf_probe_read_user(&g->ev->data[off & (MAX_CAPTURE - 1)], n, (void *)iov.base))
		return 1;
	g->ev->hdr.captured = off + n;
	return 0;
}

/* Copies up to `limit` bytes described by an iovec array into ev->data. */
static __always_inline __u32 gather_iov(struct data_event *ev, __u64 iovp, __u32 iovcnt, __u32 limit)
{
	struct iov_gather g = {.ev = ev, .iovp = iovp, .iovcnt = iovcnt, .limit = limit};
	ev->hdr.captured = 0;
	bpf_loop(MAX_IOV, gather_one, &g, 0);
	return ev->hdr.captured;
}

/* Copies up to `limit` payload bytes of a syscall (kind: enum io_kind, ptr
 * its buffer, iovec array or msghdr) to ev->data. Returns the bytes copied. */
static __always_inline __u32 copy_payload(struct data_event *ev, __u8 kind, __u64 ptr, __u32 iovcnt,
					  __u32 limit)
{
	if (kind == IO_BUF) {
		__u32 n = limit & (MAX_CAPTURE * 2 - 1);
		if (n > MAX_CAPTURE)
			n = MAX_CAPTURE;
		return bpf_probe_read_user(ev->data, n, (void *)ptr) ? 0 : n;
	}
	if (kind == IO_IOV)
		return gather_iov(ev, ptr, iovcnt, limit);
	struct user_msghdr_min m = {};
	if (bpf_probe_read_user(&m, sizeof(m), (void *)ptr))
		return 0;
	return gather_iov(ev, m.iov, (__u32)m.iovlen, limit);
}
