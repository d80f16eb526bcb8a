package http2

import (
	"encoding/binary"
	"time"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"go.opentelemetry.io/otel/trace"
)

// maxControl caps the payload kept of SETTINGS, RST_STREAM and GOAWAY
// frames (GOAWAY debug data and long SETTINGS are not needed).
const maxControl = 64 * 6

// origin is the chunk a request's HEADERS frame started in.
type origin struct {
	start  time.Time
	tid    uint32
	ctx    trace.SpanContext // kernel-decided ids of the span (see probe.Chunk)
	parent trace.SpanContext
	exact  bool // ctx is the stream's own (probe.Chunk.Streams), not the syscall's base
}

// arrival is when a frame's first bytes were there: a write hands them
// over at syscall entry, but a read may block long before they arrive (a
// thread waiting on an idle connection), so it has them at exit.
func arrival(c *probe.Chunk) time.Time {
	if c.Dir == probe.Recv {
		return c.End
	}
	return c.Start
}

// block is a header block being received (HEADERS/PUSH_PROMISE plus
// CONTINUATION frames up to END_HEADERS).
type block struct {
	open      bool
	stream    uint32
	endStream bool
	push      bool
	from      origin
}

// direction cuts one direction's byte stream into frames. It keeps no
// reference to chunk data: header block bytes go straight into the HPACK
// decoder, control payloads are copied into a small fixed buffer.
type direction struct {
	p   *parser
	dir probe.Direction
	hp  *hpackState

	synced  bool                 // at a known position in the frame sequence
	preface int                  // client preface bytes still to skip
	seen    int64                // bytes this direction moved so far (captured or not)
	zero    bool                 // synced from the direction's first byte with no loss since
	losses  int                  // times the frame sequence was lost
	first   [frameHeaderLen]byte // the direction's first bytes, while fewer than a frame header
	firstN  int

	hdr     [frameHeaderLen]byte
	hdrN    int
	hdrFrom origin // chunk the current frame header began in
	inFrame bool
	fh      frameHeader
	off     uint32 // payload bytes of fh consumed
	padLen  uint32
	padSeen bool   // the pad length byte was captured
	frag    uint32 // where the header block fragment starts in the payload
	ctl     [maxControl]byte
	ctlN    int
	ctlLost bool
	blk     block

	cur *probe.Chunk
}

func (d *direction) feed(c *probe.Chunk) {
	d.cur = c
	data := c.Data
	gap := max(c.Len-len(data), 0)
	seen := d.seen
	d.seen += int64(max(c.Len, len(data)))
	if !(seen == 0 && d.p.maybePreface(d, c)) && !d.synced {
		var from0, wait bool
		if data, from0, wait = d.joinFirst(data, seen, gap); wait {
			return
		}
		if looksLikeFrames(data, false) {
			d.synced, d.zero = true, from0
			d.clearFrame()
			if d.hp == nil {
				// From the first byte after the client preface: nothing missed.
				d.hp = d.p.newHPACK(d.dir, !(from0 && d.p.clientKnown))
			}
		}
	}
	if d.blk.open && c.Dir == probe.Send && c.Ctx.IsValid() && !d.blk.from.ctx.IsValid() {
		// A write's ids belong to the request it sends. (A read's ids are
		// decided only for a HEADERS frame whole in that read: never an
		// open block's.)
		d.blk.from.ctx, d.blk.from.parent = c.Ctx, c.Parent
	}
	d.consume(data)
	// The kernel's segments past the prefix (frame headers, header blocks,
	// control frames): only DATA payload is skipped between them.
	pos := len(c.Data)
	for _, s := range c.Segs {
		if !d.synced || s.Off < pos || s.Off+len(s.Data) > c.Len {
			break // out of order or out of range: treat the rest as lost
		}
		if s.Off > pos {
			d.skip(s.Off - pos)
		}
		d.consume(s.Data)
		pos = s.Off + len(s.Data)
	}
	if gap := c.Len - pos; gap > 0 && d.synced {
		d.skip(gap)
	}
}

func (d *direction) consume(data []byte) {
	for len(data) > 0 && d.synced {
		data = data[d.step(data):]
	}
}

// step consumes a prefix of data; it always consumes at least one byte.
func (d *direction) step(data []byte) int {
	if d.preface > 0 {
		at := len(clientPreface) - d.preface
		n := min(len(data), d.preface)
		if string(data[:n]) != clientPreface[at:at+n] {
			d.lose()
			return len(data)
		}
		d.preface -= n
		return n
	}
	if !d.inFrame {
		if d.hdrN == 0 {
			c := d.cur
			d.hdrFrom = origin{start: arrival(c), tid: c.TID, ctx: c.Ctx, parent: c.Parent}
		}
		n := copy(d.hdr[d.hdrN:], data)
		d.hdrN += n
		if d.hdrN == frameHeaderLen {
			d.startFrame()
		}
		return n
	}
	n := min(uint32(len(data)), d.fh.length-d.off)
	d.payload(data[:n])
	d.off += n
	if d.off == d.fh.length {
		d.endFrame()
	}
	return int(n)
}

func (d *direction) startFrame() {
	d.fh = parseFrameHeader(d.hdr[:])
	d.inFrame, d.off, d.padLen, d.padSeen, d.frag, d.ctlN, d.ctlLost = true, 0, 0, false, 0, 0, false
	fh := d.fh
	if !fh.plausible(false) || (d.blk.open && (fh.typ != frameContinuation || fh.stream != d.blk.stream)) {
		d.lose() // not a frame sequence we understand: resync later
		return
	}
	padded := fh.flags&flagPadded != 0
	switch fh.typ {
	case frameHeaders, framePushPromise:
		d.blk = block{open: true, stream: fh.stream, endStream: fh.flags&flagEndStream != 0, push: fh.typ == framePushPromise, from: d.hdrFrom}
		d.hp.begin()
		if padded {
			d.frag++
		}
		if fh.typ == framePushPromise {
			d.frag += 4 // promised stream id
		} else if fh.flags&flagPriority != 0 {
			d.frag += 5 // stream dependency + weight
		}
	}
	if fh.length == 0 {
		d.endFrame()
	}
}

// fragmentEnd is where the header block fragment (or DATA) stops: padding
// follows it.
func (d *direction) fragmentEnd() uint32 {
	if d.padLen > d.fh.length {
		return 0
	}
	return d.fh.length - d.padLen
}

// payload handles captured payload bytes starting at d.off.
func (d *direction) payload(b []byte) {
	fh := &d.fh
	if fh.flags&flagPadded != 0 && d.off == 0 && len(b) > 0 && hasPadding(fh.typ) {
		d.padLen, d.padSeen = uint32(b[0]), true
		if d.frag+d.padLen > fh.length {
			d.lostBlockBytes() // invalid padding (PROTOCOL_ERROR): headers unusable
		}
	}
	switch fh.typ {
	case frameHeaders, framePushPromise, frameContinuation:
		if !d.blk.open {
			return // CONTINUATION of a block we joined after: skip
		}
		lo, hi := max(d.off, d.frag), min(d.off+uint32(len(b)), d.fragmentEnd())
		if lo < hi {
			d.hp.fragment(b[lo-d.off : hi-d.off])
		}
	case frameSettings, frameRSTStream, frameGoAway:
		d.ctlN += copy(d.ctl[d.ctlN:], b)
	}
}

func hasPadding(typ uint8) bool {
	return typ == frameData || typ == frameHeaders || typ == framePushPromise
}

// lostBlockBytes: part of a header block was not seen.
func (d *direction) lostBlockBytes() {
	if d.blk.open {
		d.hp.lose()
	}
}

// skip accounts for n bytes the syscall moved but the kernel did not capture.
func (d *direction) skip(n int) {
	d.zero = false
	if d.preface > 0 {
		if n <= d.preface {
			d.preface -= n
			return
		}
		n -= d.preface
		d.preface = 0
		d.lose() // frame bytes we cannot see
		return
	}
	if !d.inFrame {
		d.lose() // a frame header (or part of it) we cannot see
		return
	}
	rem := d.fh.length - d.off
	take := uint32(min(int64(n), int64(rem)))
	switch d.fh.typ {
	case frameHeaders, framePushPromise, frameContinuation:
		// Lost bytes matter when they hold the pad length or overlap the
		// fragment; lost priority fields or padding are harmless.
		padded := d.fh.flags&flagPadded != 0 && hasPadding(d.fh.typ)
		if padded && (d.off == 0 || !d.padSeen) || d.off < d.fragmentEnd() && d.off+take > d.frag {
			d.lostBlockBytes()
		}
	case frameSettings, frameRSTStream, frameGoAway:
		d.ctlLost = true
	}
	d.off += take
	if d.off == d.fh.length {
		d.endFrame()
	}
	if int64(n) > int64(take) {
		d.lose() // the gap runs into frames we cannot see
	}
}

func (d *direction) endFrame() {
	fh, padLen, padSeen, ctl, ctlLost := d.fh, d.padLen, d.padSeen, d.ctl[:d.ctlN], d.ctlLost
	d.clearFrame()
	switch fh.typ {
	case frameData:
		size, known := int64(fh.length), true
		if fh.flags&flagPadded != 0 {
			size -= 1 + int64(padLen)
			known = padSeen && size >= 0
			size = max(size, 0)
		}
		d.p.onData(d.dir, fh.stream, size, known, fh.flags&flagEndStream != 0)
	case frameHeaders, framePushPromise, frameContinuation:
		if fh.typ == frameHeaders && d.blk.open {
			// The kernel's ids for the stream come with the syscall its
			// HEADERS frame ends in (bpf/h2_stream.h).
			for _, sc := range d.cur.Streams {
				if sc.ID == fh.stream {
					d.blk.from.ctx, d.blk.from.parent, d.blk.from.exact = sc.Ctx, sc.Parent, true
				}
			}
		}
		if fh.flags&flagEndHeaders != 0 && d.blk.open {
			d.endBlock()
		}
	case frameSettings:
		if fh.flags&flagAck == 0 && !ctlLost {
			d.settings(ctl)
		}
	case frameRSTStream:
		code, known := uint32(0), len(ctl) >= 4 && !ctlLost
		if known {
			code = binary.BigEndian.Uint32(ctl)
		}
		d.p.onRST(d.dir, fh.stream, code, known)
	case frameGoAway:
		if len(ctl) >= 8 {
			d.p.onGoAway(d.dir, binary.BigEndian.Uint32(ctl)&0x7fffffff)
		}
	}
}

// settings applies SETTINGS_HEADER_TABLE_SIZE: this direction's sender
// bounds the table of the blocks it receives, i.e. the other direction's.
func (d *direction) settings(p []byte) {
	for ; len(p) >= 6; p = p[6:] {
		if binary.BigEndian.Uint16(p) == settingHeaderTableSize {
			v := binary.BigEndian.Uint32(p[2:])
			d.p.tableSize[1-d.dir] = v
			if o := d.p.dirs[1-d.dir].hp; o != nil {
				o.setAllowed(v)
			}
		}
	}
}

func (d *direction) endBlock() {
	b := d.blk
	d.blk = block{}
	h, ok := d.hp.end()
	if !b.push {
		d.p.onHeaders(d.dir, b.stream, b.endStream, h, ok, b.from)
	}
}

// clearFrame returns to a frame boundary.
func (d *direction) clearFrame() {
	d.inFrame, d.hdrN, d.off, d.padLen, d.padSeen, d.frag, d.ctlN, d.ctlLost = false, 0, 0, 0, false, 0, 0, false
}

// lose gives up the frame sequence until a chunk starts with frames again.
// A header block in progress is reported with unknown headers (its stream
// id and END_STREAM flag are known), and the HPACK table is dropped: the
// bytes we will not see may hold header blocks.
func (d *direction) lose() {
	d.synced, d.zero, d.preface = false, false, 0
	d.losses++
	d.clearFrame()
	d.p.bodiesUnknown(d.dir)
	if d.hp == nil {
		return
	}
	d.hp.lose()
	if d.blk.open {
		d.endBlock()
	}
}
