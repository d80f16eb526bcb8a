/* Searching an HPACK header block (copied into a bounded buffer) for a
 * traceparent: its name in any form (h2.h: the app propagates itself),
 * or our own field's plain value (h2_stream.h: the ids a Go server's
 * stream was sent). Included by h2.h, after its limits. */
#pragma once

static const __u8 h2_tp_huff[8] = {0x4d, 0x83, 0x21, 0x6b, 0x1d, 0x85, 0xa9, 0x3f};

/* A search of a header block copied into h2_walk.blk, by bpf_loop (a
 * bounded loop would be verified once per position, in every program). */
struct h2_search {
	__u8 *blk;
	__u32 n;     /* block bytes */
	__u32 found; /* name: 1; value: its offset + 1 */
};

/* bpf_loop callback: a traceparent name, plain or Huffman, at position j? */
static long h2_name_cb(__u64 j, void *arg)
{
	struct h2_search *s = arg;
	__u32 p = (__u32)j & (H2_BLOCK_MAX - 1);
	if (p + 12 > s->n)
		return 1;
	__u8 *b = s->blk;
	__u8 c = b[p];
	if (c != 0x0b && c != 0x88)
		return 0;
	__u64 x = 0, y = 0, huff = 0;
	__builtin_memcpy(&x, &b[p + 1], 8);
	__builtin_memcpy(&y, &b[p + 9], 3);
	__builtin_memcpy(&huff, h2_tp_huff, 8);
	if ((c == 0x88 && x == huff) ||
	    (c == 0x0b && x == LOWER8('t', 'r', 'a', 'c', 'e', 'p', 'a', 'r') && y == LOWER8('e', 'n', 't', 0, 0, 0, 0, 0))) {
		s->found = 1;
		return 1;
	}
	return 0;
}

/* bpf_loop callback: our traceparent field ("\x0btraceparent" + a plain
 * 55-byte value, any literal kind) with its name at position j + 1? */
static long h2_value_cb(__u64 j, void *arg)
{
	struct h2_search *s = arg;
	__u32 p = ((__u32)j & (H2_BLOCK_MAX - 1)) + 1;
	if (p + 13 + 55 > s->n)
		return 1;
	__u8 *b = s->blk;
	if (b[p] != 0x0b || b[p + 12] != 55)
		return 0;
	__u64 x = 0, y = 0;
	__builtin_memcpy(&x, &b[p + 1], 8);
	__builtin_memcpy(&y, &b[p + 9], 3);
	__u8 kind = b[p - 1];
	if (x == LOWER8('t', 'r', 'a', 'c', 'e', 'p', 'a', 'r') && y == LOWER8('e', 'n', 't', 0, 0, 0, 0, 0) &&
	    (kind == 0x00 || kind == 0x10 || kind == 0x40)) {
		s->found = p + 13 + 1;
		return 1;
	}
	return 0;
}
