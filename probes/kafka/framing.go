package kafka

import (
	"encoding/binary"
	"time"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"go.opentelemetry.io/otel/trace"
)

// Caps that keep one connection's memory bounded whatever the peer sends.
const (
	maxKeep    = 64 << 10  // bytes kept per message; the rest is skipped by size
	maxMessage = 256 << 20 // larger size fields are garbage, not Kafka
	keepBuf    = 16 << 10  // buffers larger than this are released between messages
)

type state uint8

const (
	stSize state = iota // reading the 4-byte size prefix
	stBody              // inside a message of known size
	stLost              // out of sync: wait for a chunk that starts a message
)

// origin is where a message's first byte came from.
type origin struct {
	start  time.Time
	end    time.Time
	tid    uint32
	ctx    trace.SpanContext
	parent trace.SpanContext
}

// stream cuts one direction's bytes into size-prefixed messages. It keeps
// the first maxKeep bytes of each (copied: Chunk.Data aliases a ring) and
// counts the rest, captured or not, against the size field.
type stream struct {
	dir   probe.Direction
	st    state
	hdr   [4]byte
	nhdr  int
	size  int    // body size from the prefix
	got   int    // body bytes consumed so far (kept, dropped or unseen)
	buf   []byte // kept body prefix
	cut   bool   // buf is not the whole body
	first origin
}

// message is one framed request or response.
type message struct {
	body []byte // valid until the next feed of the stream
	cut  bool   // body is a prefix of the real message
	from origin
	end  time.Time // end of the syscall that completed it
}

// feed frames c and calls done for each message it completes. resync
// decides whether a chunk may start a message after sync was lost.
func (s *stream) feed(c *probe.Chunk, resync func([]byte) bool, done func(*message)) {
	data := c.Data
	gap := max(c.Len-len(data), 0)
	if s.st == stLost {
		if !resync(data) {
			return
		}
		s.reset()
	}
	for len(data) > 0 && s.st != stLost {
		switch s.st {
		case stSize:
			if s.nhdr == 0 {
				s.first = origin{start: c.Start, end: c.End, tid: c.TID, ctx: c.Ctx, parent: c.Parent}
			}
			n := copy(s.hdr[s.nhdr:], data)
			s.nhdr += n
			data = data[n:]
			if s.nhdr < 4 {
				continue
			}
			size := int(int32(binary.BigEndian.Uint32(s.hdr[:])))
			if size < 4 || size > maxMessage {
				s.lose()
				return
			}
			s.size, s.got, s.cut, s.st = size, 0, false, stBody
		case stBody:
			n := min(len(data), s.size-s.got)
			keep := min(n, maxKeep-len(s.buf))
			s.buf = append(s.buf, data[:keep]...)
			if keep < n {
				s.cut = true
			}
			s.got += n
			data = data[n:]
			if s.got == s.size {
				s.finish(c.End, done)
			}
		}
	}
	if gap == 0 || s.st == stLost {
		return
	}
	if s.st == stBody && gap <= s.size-s.got {
		s.got += gap
		s.cut = true
		if s.got == s.size {
			s.finish(c.End, done)
		}
		return
	}
	// The unseen bytes hold a message boundary we cannot see.
	if s.st == stBody {
		s.cut = true
		s.got = s.size
		s.finish(c.End, done)
	}
	s.lose()
}

func (s *stream) finish(end time.Time, done func(*message)) {
	m := message{body: s.buf, cut: s.cut, from: s.first, end: end}
	done(&m)
	s.reset()
}

func (s *stream) reset() {
	s.st, s.nhdr, s.size, s.got, s.cut = stSize, 0, 0, 0, false
	if cap(s.buf) > keepBuf {
		s.buf = nil
	} else {
		s.buf = s.buf[:0]
	}
}

func (s *stream) lose() {
	s.reset()
	s.st = stLost
}
