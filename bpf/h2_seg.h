/* HTTP/2 header segments: every frame header and every non-DATA payload
 * of an HTTP/2 socket's syscalls, also past the captured prefix.
 *
 * A gRPC connection carries many streams: one read or write of 32 KiB
 * holds dozens of HEADERS blocks among DATA frames, most of them beyond
 * --capture-bytes. A header block the agent does not see desynchronises
 * its HPACK decoder, so later requests lose their names. Here the kernel
 * keeps each direction's frame position across syscalls (h2_seg_dir in
 * h2_sock) and sends, in EV_H2_SEGS events just before the data event,
 * records {offset, length, bytes} of what lies beyond the prefix but for
 * DATA payloads: frame headers, header blocks, control frames. The agent
 * joins them to the data event and feeds them to the same framer at
 * their offsets (probes/http2), skipping only DATA bytes.
 *
 * Plain buffers only (read/write/recvfrom/sendto, as Go's net package
 * uses); an iovec syscall on the socket, a walk that runs out of steps or
 * a failed read marks the direction lost: no more segments there (the
 * framer then loses sync as before, counted). A full ring loses the
 * segments, not the position. */
#pragma once

#include "common.h"
#include "h2.h"
#include "h2_stream.h"

#define H2_SEG_STEPS 1024 /* frame headers and payload runs per syscall */
#define H2_SEG_REC 4096   /* bytes per record (a 16 KiB frame takes four) */
#define H2_SEG_END (MAX_CAPTURE * 2 - H2_SEG_REC - 8) /* last record start */

struct h2_seg_walk {
	struct data_event *ev; /* the data event (its header and prefix) */
	struct data_event *se; /* the EV_H2_SEGS event being filled */
	struct h2_seg_dir *sd;
	__u64 buf; /* the syscall's user buffer */
	__u64 sk;
	__u32 ret, got, pos;
	__u32 full;   /* out of room: the rest is not recorded */
	__u32 decide; /* a Go server's reads: decide each new stream's ids (h2_stream.h) */
};

static __always_inline void h2_seg_flush(struct h2_seg_walk *w)
{
	h2_seg_send(w->se, &w->ev->hdr);
}

/* Records bytes [off, off+n) of the syscall, as far as they lie past the
 * prefix (four records at most: a frame of the default 16 KiB). */
static __always_inline void h2_seg_put(struct h2_seg_walk *w, __u32 off, __u32 n)
{
	if (off + n <= w->got || w->full)
		return;
	if (off < w->got) {
		n -= w->got - off;
		off = w->got;
	}
#pragma unroll
	for (int i = 0; i < 4; i++) {
		if (!n)
			return;
		if (w->se->hdr.segs > H2_SEG_END)
			h2_seg_flush(w);
		/* 64-bit: a 32-bit value is zero-extended into a copy, and the
		 * verifier then sees the bound on the copy only. */
		__u64 at = w->se->hdr.segs;
		__u64 k = n > H2_SEG_REC ? H2_SEG_REC : n;
		asm volatile("" : "+r"(at), "+r"(k)); /* keep the checks below on these registers */
		if (at > H2_SEG_END || k > H2_SEG_REC)
			return;
		struct h2_seg_rec r = {.off = off, .len = k};
		__builtin_memcpy(&w->se->data[at], &r, sizeof(r));
		if (bpf_probe_read_user(&w->se->data[at + sizeof(r)], k, (void *)(w->buf + off))) {
			w->full = 1;
			return;
		}
		w->se->hdr.segs += sizeof(r) + k;
		off += k;
		n -= k;
	}
	if (n)
		w->full = 1;
}

/* Notes a request HEADERS frame (or, tail, the last piece of one) for
 * h2_stream_opens; beyond H2_MAX_OPENS a read's streams decide nothing. */
static __always_inline void h2_seg_note(__u32 start, __u32 len, __u32 sid, __u32 flags, __u32 tail)
{
	__u32 zero = 0;
	struct h2_opens *os = bpf_map_lookup_elem(&h2_opens_scratch, &zero);
	if (!os || os->n >= H2_MAX_OPENS)
		return;
	struct h2_frame_at *f = &os->f[os->n & (H2_MAX_OPENS - 1)];
	f->start = start;
	f->len = len;
	f->sid = sid;
	f->flags = flags;
	f->tail = tail;
	os->n++;
}

/* A HEADERS frame header just read whole at w->pos - H2_HDR: when it opens
 * a stream of a Go server, it is noted for h2_stream_opens. */
static __always_inline void h2_seg_open(struct h2_seg_walk *w, struct h2_seg_dir *sd)
{
	__u32 sid = ((__u32)sd->hdr[5] << 24 | (__u32)sd->hdr[6] << 16 | (__u32)sd->hdr[7] << 8 | sd->hdr[8]) &
		    0x7fffffff;
	if (!(sid & 1) || sid <= sd->max_sid)
		return; /* a server's stream, or trailers */
	sd->max_sid = sid;
	__u32 flags = sd->hdr[4];
	h2_seg_note(w->pos - H2_HDR, sd->skip, sid, flags, 0);
	/* Split across syscalls: decided again from its last piece (h2_seg_step). */
	if (w->pos + sd->skip > w->ret && (flags & (H2F_END_HEADERS | H2F_PADDED)) == H2F_END_HEADERS)
		sd->pend_sid = sid;
}

/* bpf_loop callback: one frame header or one payload run at w->pos. */
static long h2_seg_step(__u64 i, void *arg)
{
	struct h2_seg_walk *w = arg;
	struct h2_seg_dir *sd = w->sd;
	if (w->pos >= w->ret || w->full)
		return 1;
	__u32 avail = w->ret - w->pos;
	if (sd->skip) {
		__u32 n = sd->skip < avail ? sd->skip : avail;
		if (sd->type != 0 /* DATA */)
			h2_seg_put(w, w->pos, n);
		sd->skip -= n;
		w->pos += n;
		if (!sd->skip && sd->pend_sid && w->decide) {
			/* A split request HEADERS frame ends here: its last piece is
			 * [0, w->pos) of this syscall. */
			h2_seg_note(0, w->pos, sd->pend_sid, H2F_END_HEADERS, 1);
			sd->pend_sid = 0;
		}
		return 0;
	}
	__u64 hn = sd->hn;
	__u64 k = H2_HDR - hn;
	if (k > avail)
		k = avail;
	asm volatile("" : "+r"(hn), "+r"(k));
	if (hn > 8 || k > H2_HDR || bpf_probe_read_user(&sd->hdr[hn], k, (void *)(w->buf + w->pos))) {
		sd->lost = 1;
		return 1;
	}
	h2_seg_put(w, w->pos, k);
	w->pos += k;
	sd->hn = hn + k;
	if (sd->hn < H2_HDR)
		return 1; /* the header continues in the next syscall */
	sd->hn = 0;
	sd->skip = (__u32)sd->hdr[0] << 16 | (__u32)sd->hdr[1] << 8 | sd->hdr[2];
	sd->type = sd->hdr[3];
	sd->pend_sid = 0;
	if (w->decide && hn == 0 && sd->type == H2_HEADERS)
		h2_seg_open(w, sd);
	return 0;
}

/* The segments of a syscall of ret bytes (buf: its plain buffer; 0 when
 * it used iovecs) on an HTTP/2 socket, after ev's captured prefix. */
__attribute__((noinline)) int h2_segments(struct data_event *ev, __u64 buf, __u32 ret, __u32 dir, __u32 state)
{
	if (!ev)
		return 0;
	__u64 sk = ev->hdr.sock_id;
	struct h2_sock *hs = bpf_map_lookup_elem(&h2_socks, &sk);
	if (!hs)
		return 0;
	struct h2_seg_dir *sd = &hs->seg[dir & 1];
	if (sd->lost)
		return 0;
	if (!buf) {
		sd->lost = 1;
		count(CNT_H2_SEG_LOST);
		return 0;
	}
	__u32 zero = 0;
	struct data_event *se = bpf_map_lookup_elem(&h2_seg_scratch, &zero);
	if (!se)
		return 0;
	se->hdr.segs = 0;
	struct h2_seg_walk w = {.ev = ev, .se = se, .sd = sd, .buf = buf, .sk = sk, .ret = ret,
				.got = ev->hdr.captured};
	w.decide = dir == DIR_RECV && hs->role == H2_SERVER && (state & TRACE_GO);
	if (w.decide) {
		struct h2_opens *os = bpf_map_lookup_elem(&h2_opens_scratch, &zero);
		if (!os)
			return 0;
		os->buf = buf;
		os->sk = sk;
		os->ret = ret;
		os->n = 0;
	}
	bpf_loop(H2_SEG_STEPS, h2_seg_step, &w, 0);
	if (w.full || w.pos < w.ret)
		sd->lost = 1; /* a failed read or out of steps: the position is gone */
	if (sd->lost)
		count(CNT_H2_SEG_LOST);
	h2_seg_flush(&w); /* what was recorded before a loss is still right */
	return 0;
}
