/* Data events written straight into the ring: the payload is copied from
 * user memory once, into a record reserved with its exact size
 * (bpf_ringbuf_reserve_dynptr + bpf_probe_read_user_dynptr, Linux 6.16+),
 * instead of into a per-CPU scratch and then again into the ring
 * (bpf_ringbuf_output). Kernels without the kfunc keep the two copies:
 * cilium/ebpf resolves the weak kfunc to 0 and the verifier drops the
 * branch not taken. */
#pragma once

#include "common.h"

extern int bpf_probe_read_user_dynptr(struct bpf_dynptr *dptr, __u32 off, __u32 size,
				      const void *unsafe_ptr__ign) __ksym __weak;

#define EV_HDR_SIZE sizeof(struct event_hdr)

static __always_inline int ring_zero_copy(void)
{
	return bpf_probe_read_user_dynptr != NULL; /* bpf_ksym_exists (libbpf 1.1 lacks it) */
}

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

/* Where gathered iovecs go: the ring record (zc: dp) or ev->data. A flag,
 * not a NULL dp: the verifier cannot tell a stack pointer from NULL, and
 * would check the record's release on paths that never reserve it. */
struct iov_gather {
	struct bpf_dynptr *dp;
	struct data_event *ev;
	__u64 iovp;
	__u32 iovcnt, limit;
	__u32 zc;
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
	long err;
	if (g->zc)
		err = bpf_probe_read_user_dynptr(g->dp, EV_HDR_SIZE + off, n, (void *)iov.base);
	else
		err = bpf_probe_read_user(&g->ev->data[off & (MAX_CAPTURE - 1)], n, (void *)iov.base);
	if (err)
		return 1;
	g->ev->hdr.captured = off + n;
	return 0;
}

/* Copies up to `limit` bytes described by an iovec array. */
static __always_inline __u32 gather_iov(int zc, struct bpf_dynptr *dp, struct data_event *ev, __u64 iovp,
					__u32 iovcnt, __u32 limit)
{
	struct iov_gather g = {.dp = dp, .ev = ev, .iovp = iovp, .iovcnt = iovcnt, .limit = limit, .zc = zc};
	ev->hdr.captured = 0;
	bpf_loop(MAX_IOV, gather_one, &g, 0);
	return ev->hdr.captured;
}

/* Copies up to `limit` payload bytes of a syscall (kind: enum io_kind, ptr
 * its buffer, iovec array or msghdr) to the record dp after its header
 * (zc), or to ev->data. Returns the bytes copied. */
static __always_inline __u32 copy_payload(int zc, struct bpf_dynptr *dp, struct data_event *ev, __u8 kind,
					  __u64 ptr, __u32 iovcnt, __u32 limit)
{
	if (kind == IO_BUF) {
		__u32 n = limit & (MAX_CAPTURE * 2 - 1);
		if (n > MAX_CAPTURE)
			n = MAX_CAPTURE;
		long err = zc ? bpf_probe_read_user_dynptr(dp, EV_HDR_SIZE, n, (void *)ptr)
			      : bpf_probe_read_user(ev->data, n, (void *)ptr);
		return err ? 0 : n;
	}
	if (kind == IO_IOV)
		return gather_iov(zc, dp, ev, ptr, iovcnt, limit);
	struct user_msghdr_min m = {};
	if (bpf_probe_read_user(&m, sizeof(m), (void *)ptr))
		return 0;
	return gather_iov(zc, dp, ev, m.iov, (__u32)m.iovlen, limit);
}

/* The record's payload, copied back to ev->data for the in-kernel scans:
 * the HTTP/1 header scans read HDR_SCAN bytes, but the HTTP/2 frame walks
 * (h2.h) read all `got` of them, and stale bytes of an earlier event there
 * would be taken for frames. A copy from the cache-hot record is cheap. */
static __always_inline void payload_prefix(struct bpf_dynptr *dp, struct data_event *ev, __u32 got)
{
	__u32 n = got > MAX_CAPTURE ? MAX_CAPTURE : got;
	/* Keeps the mask (redundant to the compiler) that bounds n for the
	 * verifier. */
	asm volatile("" : "+r"(n));
	bpf_dynptr_read(ev->data, n & (MAX_CAPTURE * 2 - 1), dp, EV_HDR_SIZE, 0);
}
