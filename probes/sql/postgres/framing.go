package postgres

import (
	"encoding/binary"
	"time"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"go.opentelemetry.io/otel/trace"
)

const (
	// maxMessage is the largest length a message may claim; the server
	// rejects anything over 1 GiB (MaxAllocSize).
	maxMessage = 1 << 30
	// maxKeep caps the body bytes kept of one message; the rest is
	// skipped by length, so a huge INSERT or DataRow never buffers.
	maxKeep = 16 << 10
)

// origin is the syscall where a message's first byte travelled.
type origin struct {
	start  time.Time
	tid    uint32
	ctx    trace.SpanContext
	parent trace.SpanContext
}

// message is one framed protocol message. body holds at most maxKeep
// bytes, and only for the types the parser reads (see keeps).
type message struct {
	typ   byte // 0: an untyped startup-phase packet
	body  []byte
	cut   bool // body is a prefix (capped or not captured)
	first origin
	end   time.Time // End of the syscall that carried the last byte
}

// fstate is where a stream is relative to message boundaries.
type fstate uint8

const (
	fHeader fstate = iota // reading a type byte + length (or length only)
	fBody                 // reading (or skipping) a body
	fLost                 // out of sync: wait for a chunk that starts a message
)

// stream frames one direction. It copies the bytes it keeps.
type stream struct {
	dir probe.Direction
	st  fstate
	// untyped: the next message is a startup-phase packet (no type byte).
	untyped bool
	// sslReply: the next byte is the single-byte answer to an SSLRequest
	// or GSSENCRequest.
	sslReply bool

	hdr  [5]byte
	nhdr int
	need int // body bytes still to come
	cur  message
	keep bool
	// lostEnd is the End of the chunk where the stream lost sync.
	lostEnd time.Time
}

// sink receives framed messages; it may change the streams' modes.
type sink interface {
	message(s *stream, m *message)
	sslAnswer(s *stream, b byte, c *probe.Chunk)
	dead() bool
}

func (s *stream) hdrLen() int {
	if s.untyped {
		return 4
	}
	return 5
}

// feed frames one chunk, delivering completed messages to k.
func (s *stream) feed(c *probe.Chunk, k sink) {
	data := c.Data
	gap := max(c.Len-len(data), 0)
	for len(data) > 0 && !k.dead() {
		switch s.st {
		case fLost:
			return // resynchronisation happens only at a chunk start (parser)
		case fHeader:
			if s.sslReply && s.nhdr == 0 {
				s.sslReply = false
				if b := data[0]; b == 'N' || b == 'S' || b == 'G' {
					data = data[1:]
					k.sslAnswer(s, b, c)
					continue
				}
				// Anything else (an old server's ErrorResponse) is a message.
			}
			if s.nhdr == 0 {
				s.cur = message{first: origin{start: c.Start, tid: c.TID, ctx: c.Ctx, parent: c.Parent}}
			}
			n := copy(s.hdr[s.nhdr:s.hdrLen()], data)
			s.nhdr += n
			data = data[n:]
			if s.nhdr == s.hdrLen() {
				s.header()
				if s.st == fBody && s.need == 0 {
					s.deliver(c, k)
				}
			}
		case fBody:
			n := min(s.need, len(data))
			if s.keep {
				room := max(maxKeep-len(s.cur.body), 0)
				if n > room {
					s.cur.cut = true
				}
				s.cur.body = append(s.cur.body, data[:min(n, room)]...)
			}
			s.need -= n
			data = data[n:]
			if s.need == 0 {
				s.deliver(c, k)
			}
		}
	}
	if gap == 0 || k.dead() {
		return
	}
	// Bytes the syscall moved but the kernel did not capture.
	switch {
	case s.st == fBody && gap <= s.need:
		s.need -= gap
		s.cur.cut = true
		if s.need == 0 {
			s.deliver(c, k)
		}
	case s.st == fBody:
		s.cur.cut = true
		s.deliver(c, k)
		s.lose() // the rest of the gap starts a message we cannot see
	default:
		s.lose()
	}
}

// header validates a complete header and starts the body.
func (s *stream) header() {
	s.nhdr = 0
	var n int
	if s.untyped {
		s.cur.typ = 0
		n = int(binary.BigEndian.Uint32(s.hdr[:4]))
		if n < 8 || n > maxStartupSize {
			s.lose()
			return
		}
	} else {
		s.cur.typ = s.hdr[0]
		n = int(binary.BigEndian.Uint32(s.hdr[1:5]))
		if n < 4 || n > maxMessage || !knownType(s.dir, s.cur.typ) {
			s.lose()
			return
		}
	}
	s.need = n - 4
	s.keep = keeps(s.dir, s.cur.typ)
	s.cur.body = nil
	if s.keep {
		s.cur.body = make([]byte, 0, min(s.need, maxKeep))
	}
	s.st = fBody
}

func (s *stream) deliver(c *probe.Chunk, k sink) {
	m := s.cur
	m.end = c.End
	s.cur = message{}
	s.st = fHeader
	k.message(s, &m)
}

func (s *stream) lose() {
	s.st, s.nhdr, s.need, s.cur = fLost, 0, 0, message{}
}

// resync puts a lost stream back at a message boundary.
func (s *stream) resync() { s.st, s.nhdr, s.need, s.cur = fHeader, 0, 0, message{} }

// knownType lists the message types of protocol 3 per direction; an unknown
// type means the stream is out of sync (or not PostgreSQL).
func knownType(dir probe.Direction, t byte) bool {
	if dir == probe.Send { // frontend
		switch t {
		case 'Q', 'P', 'B', 'E', 'D', 'C', 'S', 'H', 'X', 'F', 'd', 'c', 'f', 'p':
			return true
		}
		return false
	}
	switch t { // backend
	case 'R', 'S', 'K', 'Z', 'T', 'D', 'C', 'E', 'N', 'I', '1', '2', '3', 't', 'n', 's',
		'G', 'H', 'W', 'd', 'c', 'A', 'V', 'v':
		return true
	}
	return false
}

// keeps reports whether the parser reads this message's body.
func keeps(dir probe.Direction, t byte) bool {
	if dir == probe.Send {
		switch t {
		case 0, 'Q', 'P', 'B', 'E', 'C':
			return true
		}
		return false
	}
	return t == 'C' || t == 'E'
}
