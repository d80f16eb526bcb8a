package mysql

import (
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/tracer-agent/tracer-agent/probes/probe"
)

const (
	// maxPhysical is the largest physical packet payload; a payload of
	// exactly this length is continued by the next packet.
	maxPhysical = 0xffffff
	// maxKeep bounds the bytes kept of one logical packet (query text,
	// greeting, ERR message): memory stays bounded whatever the peer sends.
	maxKeep = 8 << 10
)

// origin is the chunk where a packet's first header byte was.
type origin struct {
	start, end  time.Time
	tid         uint32
	ctx, parent trace.SpanContext
}

func originOf(c *probe.Chunk) origin {
	return origin{start: c.Start, end: c.End, tid: c.TID, ctx: c.Ctx, parent: c.Parent}
}

// packet is one logical packet (physical packets of maxPhysical bytes
// joined). data is the kept prefix, owned by the framer: valid only during
// the emit callback.
type packet struct {
	seq     byte   // sequence id of the first physical packet
	lastSeq byte   // and of the last
	length  int    // logical payload length
	data    []byte // first min(length, keep) bytes, fewer when partial
	partial bool   // some payload bytes were not captured
	from    origin
}

// framer cuts one direction's byte stream into packets. It copies what it
// keeps: Chunk.Data aliases a ring buffer.
type framer struct {
	hdr   [4]byte
	nhdr  int
	need  int // payload bytes left in the current physical packet
	cont  bool
	phys  int // current physical payload length
	cur   packet
	keep  int
	lost  bool // out of sync: the parser decides where to resume
	begun bool // cur has started (header of its first physical packet)
}

// reset puts the framer at a packet boundary.
func (f *framer) reset() {
	f.nhdr, f.need, f.cont, f.lost, f.begun = 0, 0, false, false, false
	f.cur.data = f.cur.data[:0]
}

// atBoundary reports whether no packet is in progress.
func (f *framer) atBoundary() bool { return !f.lost && !f.begun && f.nhdr == 0 }

// feed consumes one chunk's captured data and then gap unseen bytes,
// calling emit for each completed logical packet. keep is asked, at each
// packet start, how many payload bytes are worth keeping.
func (f *framer) feed(c *probe.Chunk, data []byte, gap int, keep func() int, emit func(*packet)) {
	for len(data) > 0 && !f.lost {
		if f.nhdr < 4 {
			if f.nhdr == 0 && !f.begun {
				f.cur = packet{data: f.cur.data[:0], from: originOf(c)}
				f.begun = true
				f.keep = min(max(keep(), 0), maxKeep)
			}
			n := copy(f.hdr[f.nhdr:], data)
			f.nhdr += n
			data = data[n:]
			if f.nhdr < 4 {
				break
			}
			f.phys = int(f.hdr[0]) | int(f.hdr[1])<<8 | int(f.hdr[2])<<16
			f.need = f.phys
			if !f.cont {
				f.cur.seq = f.hdr[3]
			}
			f.cur.lastSeq = f.hdr[3]
			if !f.cur.from.ctx.IsValid() && c.Ctx.IsValid() {
				f.cur.from.ctx, f.cur.from.parent = c.Ctx, c.Parent
			}
			if f.need == 0 {
				f.physDone(emit)
			}
			continue
		}
		n := min(f.need, len(data))
		// After a gap, later bytes are not contiguous with what was kept.
		if room := f.keep - len(f.cur.data); room > 0 && !f.cur.partial {
			f.cur.data = append(f.cur.data, data[:min(n, room)]...)
		}
		f.cur.length += n
		f.need -= n
		data = data[n:]
		if f.need == 0 {
			f.physDone(emit)
		}
	}
	if gap <= 0 || f.lost {
		return
	}
	if f.nhdr == 4 && f.need > 0 {
		n := min(gap, f.need)
		f.cur.partial = true
		f.cur.length += n
		f.need -= n
		gap -= n
		if f.need == 0 {
			f.physDone(emit)
		}
	}
	if gap > 0 {
		// Unseen bytes beyond the packet we were in: whatever they framed
		// is unknown.
		f.lost = true
	}
}

// physDone ends a physical packet; the logical one ends unless it was full.
func (f *framer) physDone(emit func(*packet)) {
	f.nhdr = 0
	if f.phys == maxPhysical {
		f.cont = true
		return
	}
	f.cont, f.begun = false, false
	emit(&f.cur)
	f.cur.data = f.cur.data[:0]
}
