package http

import (
	"bytes"
	"time"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"go.opentelemetry.io/otel/trace"
)

// Buffer caps keep one connection's memory bounded whatever the peer sends.
const (
	maxHead    = 16 << 10 // start line + headers, per direction
	maxLine    = 4 << 10  // one chunk-size line (chunk extensions included)
	maxTrailer = 16 << 10 // all trailer lines of one chunked body
)

// state is where a direction's byte stream is relative to message framing.
type state uint8

const (
	stLost       state = iota // out of sync: wait for a chunk that starts a message
	stIdle                    // at a message boundary
	stHead                    // collecting start line + headers in buf
	stBodyLen                 // inside a Content-Length body
	stChunkSize               // reading a chunk-size line
	stChunkData               // inside chunk data
	stChunkCRLF               // the CRLF after chunk data
	stTrailer                 // trailer lines after the last chunk
	stUntilClose              // response body delimited by connection close
	stLostBody                // response lost mid-body: ends at next message or close
)

// origin is where a message's first byte came from.
type origin struct {
	start  time.Time
	tid    uint32
	ctx    trace.SpanContext // kernel-decided ids of the span (see probe.Chunk)
	parent trace.SpanContext
	fwd    bool // probe.Chunk.Forwarded
}

// stream frames one direction of a connection into messages and reports
// them to the parser. It copies what it keeps: Chunk.Data aliases a ring.
type stream struct {
	p   *parser
	dir probe.Direction
	st  state

	buf       []byte // head bytes, or the current chunk-size/trailer line
	remaining int64  // bytes left in a Content-Length body or chunk
	trailer   int    // trailer bytes seen, to cap them
	cr        bool   // saw the CR of a chunk's trailing CRLF

	// current message
	resp      bool
	chunked   bool
	bodySize  int64
	bodyKnown bool
	first     origin
	req       *pending // request being read (requests) or answered (responses)
	lastEnd   time.Time
	cur       *probe.Chunk
}

func (s *stream) feed(c *probe.Chunk) {
	s.cur = c
	if s.st == stHead && c.Ctx.IsValid() {
		// The kernel decides a request's ids once it has seen its
		// traceparent or the end of its headers, which may come in a later
		// read than the request line.
		s.first.ctx, s.first.parent, s.first.fwd = c.Ctx, c.Parent, c.Forwarded
	}
	data := c.Data
	gap := c.Len - len(data)
	if gap < 0 {
		gap = 0
	}
	switch s.st {
	case stLost:
		if !mayStartMessage(data) {
			return
		}
		s.st = stIdle
	case stUntilClose:
		// An unknown-length response ends where the next message begins.
		if startsMessage(data) {
			s.finishResponse(c.Start)
		}
	case stLostBody:
		if startsMessage(data) {
			s.finishResponse(s.lastEnd)
		}
	}
	// Each step consumes bytes or moves to a state that will; the guard is a
	// belt against a framing bug turning into a hang.
	for guard := 2*len(data) + 8; len(data) > 0 && guard > 0 && !s.p.dead; guard-- {
		data = data[s.step(data):]
	}
	if gap > 0 && !s.p.dead {
		s.skip(gap)
	}
	if s.st == stLostBody && s.chunked && gap == 0 && endsChunked(c.Data) {
		// A lost chunked body whose syscall ends with the last-chunk marker
		// most likely ended there: keep-alive spans should not stretch.
		s.finishResponse(c.End)
	}
	s.lastEnd = c.End
}

// arrival is when a message's first bytes were there: a write hands them
// over at syscall entry, but a read may block long before they arrive (a
// thread waiting on a keep-alive connection), so it has them at exit.
func arrival(c *probe.Chunk) time.Time {
	if c.Dir == probe.Recv {
		return c.End
	}
	return c.Start
}

// takeBody consumes body bytes of a known remaining length.
func (s *stream) takeBody(data []byte) int64 {
	n := min(int64(len(data)), s.remaining)
	s.remaining -= n
	s.bodySize += n
	return n
}

func endsChunked(b []byte) bool {
	return bytes.Equal(b, []byte("0\r\n\r\n")) || bytes.HasSuffix(b, []byte("\n0\r\n\r\n"))
}

// step consumes a prefix of data according to the state; it returns how
// many bytes it consumed (0 only when it changed state).
func (s *stream) step(data []byte) int {
	switch s.st {
	case stIdle:
		if data[0] == '\r' || data[0] == '\n' {
			return 1 // RFC 9112 §2.2: ignore empty lines before a message
		}
		if !isTchar(data[0]) {
			s.st = stLost
			return len(data)
		}
		s.first = origin{start: arrival(s.cur), tid: s.cur.TID, ctx: s.cur.Ctx, parent: s.cur.Parent, fwd: s.cur.Forwarded}
		s.buf = s.buf[:0]
		s.st = stHead
		return 0
	case stHead:
		return s.stepHead(data)
	case stBodyLen:
		n := s.takeBody(data)
		if s.remaining == 0 {
			s.messageDone()
		}
		return int(n)
	case stChunkSize, stTrailer:
		return s.stepLine(data)
	case stChunkData:
		n := s.takeBody(data)
		if s.remaining == 0 {
			s.st, s.cr = stChunkCRLF, false
		}
		return int(n)
	case stChunkCRLF:
		switch {
		case data[0] == '\r' && !s.cr:
			s.cr = true
		case data[0] == '\n':
			s.st, s.buf = stChunkSize, s.buf[:0]
		default:
			s.loseBody()
			return len(data)
		}
		return 1
	case stUntilClose:
		s.bodySize += int64(len(data))
		return len(data)
	}
	return len(data) // stLost, stLostBody: discard
}

// stepHead buffers head bytes until the empty line, or until the cap, in
// which case the partial head is still used.
func (s *stream) stepHead(data []byte) int {
	old := len(s.buf)
	n := min(len(data), maxHead-old)
	if old == 0 {
		if end := headEnd(data[:n], 0); end >= 0 {
			s.gotHead(data[:end], false) // whole head in one syscall: no copy
			return end
		}
	}
	s.buf = append(s.buf, data[:n]...)
	from := max(0, old-3)
	if end := headEnd(s.buf, from); end >= 0 {
		consumed := end - old
		s.gotHead(s.buf[:end], false)
		return consumed
	}
	if len(s.buf) >= maxHead {
		s.gotHead(s.buf, true)
		if s.st != stLost {
			// Where the message really ends is unknown: resync.
			s.loseBody()
		}
		return len(data)
	}
	return n
}

// headEnd returns the index just past the empty line ending the head, or -1.
func headEnd(b []byte, from int) int {
	for i := from; i < len(b); i++ {
		j := bytes.IndexByte(b[i:], '\n') // vectorised: heads are mostly not newlines
		if j < 0 {
			return -1
		}
		i += j
		if i+1 < len(b) && b[i+1] == '\n' {
			return i + 2
		}
		if i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n' {
			return i + 3
		}
	}
	return -1
}

// stepLine reads one chunk-size or trailer line.
func (s *stream) stepLine(data []byte) int {
	i := bytes.IndexByte(data, '\n')
	take := len(data)
	if i >= 0 {
		take = i
	}
	limit := maxLine
	if s.st == stTrailer {
		limit = maxTrailer - s.trailer
		s.trailer += take + 1
	}
	if len(s.buf)+take > limit {
		s.loseBody()
		return len(data)
	}
	s.buf = append(s.buf, data[:take]...)
	if i < 0 {
		return len(data)
	}
	line := bytes.TrimSuffix(s.buf, []byte("\r"))
	s.buf = s.buf[:0]
	if s.st == stTrailer {
		if len(line) == 0 {
			s.messageDone()
		}
		return i + 1
	}
	size, ok := chunkSize(line)
	switch {
	case !ok:
		s.loseBody()
		return len(data)
	case size == 0:
		s.st, s.trailer = stTrailer, 0
	default:
		s.st, s.remaining = stChunkData, size
	}
	return i + 1
}

// chunkSize parses "1a2b[;ext...]" (RFC 9112 §7.1).
func chunkSize(line []byte) (int64, bool) {
	var n int64
	digits := 0
	for _, c := range line {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		case c == ';' || c == ' ' || c == '\t':
			return n, digits > 0
		default:
			return 0, false
		}
		if digits++; digits > 15 {
			return 0, false // would overflow int64: garbage
		}
		n = n<<4 | int64(d)
	}
	return n, digits > 0
}

// gotHead decides the body framing of a freshly parsed head.
func (s *stream) gotHead(b []byte, partial bool) {
	h, ok := parseHead(b, partial, &s.p.values)
	if !ok {
		s.st = stLost
		return
	}
	s.resp, s.chunked = h.response, false
	s.bodySize, s.bodyKnown = 0, true
	if !h.response {
		s.req = s.p.requestHead(s, &h)
		switch {
		case partial:
			s.bodyKnown = false
			s.messageDone()
			s.st = stLost
		case h.chunked:
			s.startChunked()
		case h.contentLength > 0:
			s.st, s.remaining = stBodyLen, h.contentLength
		case h.otherTE:
			// Unframeable request body (RFC 9112 §6.3): give up on this direction.
			s.bodyKnown = false
			s.messageDone()
			s.st = stLost
		default:
			s.messageDone()
		}
		return
	}
	if h.status >= 100 && h.status < 200 && h.status != 101 {
		s.st = stIdle // interim response (100 Continue, 103 ...): no body, no match
		return
	}
	method := s.p.responseHead(s, &h)
	noBody := method == "HEAD" || h.status < 200 || h.status == 204 || h.status == 304
	switch {
	case partial:
		s.bodyKnown = false
		s.messageDone()
		s.st = stLost
	case h.status == 101 || (method == "CONNECT" && h.status < 300):
		// The connection stops being HTTP (upgrade or tunnel).
		s.bodyKnown = false
		s.messageDone()
		s.p.dead = true
	case noBody:
		s.bodyKnown = false
		s.messageDone()
	case h.chunked:
		s.startChunked()
	case h.contentLength >= 0 && !h.otherTE:
		s.st, s.remaining = stBodyLen, h.contentLength
		if h.contentLength == 0 {
			s.messageDone()
		}
	default:
		s.st = stUntilClose
	}
}

func (s *stream) startChunked() {
	s.st, s.chunked, s.buf = stChunkSize, true, s.buf[:0]
}

// skip accounts for bytes a syscall moved that the kernel did not capture.
func (s *stream) skip(gap int) {
	g := int64(gap)
	switch s.st {
	case stIdle:
		s.st = stLost // a new message starts in bytes we cannot see
	case stHead:
		s.gotHead(s.buf, true)
		if s.st != stLost {
			s.loseBody()
		}
	case stBodyLen:
		switch {
		case g < s.remaining:
			s.remaining -= g
			s.bodySize += g
		default:
			over := g > s.remaining
			s.bodySize += s.remaining
			s.remaining = 0
			s.messageDone()
			if over {
				s.st = stLost // bytes past the body start a message we cannot see
			}
		}
	case stChunkData:
		switch {
		case g < s.remaining:
			s.remaining -= g
			s.bodySize += g
		case g == s.remaining:
			s.bodySize += g
			s.remaining = 0
			s.st, s.cr = stChunkCRLF, false
		default:
			s.loseBody()
		}
	case stChunkSize, stChunkCRLF, stTrailer:
		s.loseBody()
	case stUntilClose:
		s.bodySize += g
	}
}

// loseBody gives up framing the current message: a request is already
// queued and only loses its body size; a response waits for the next
// message or close to end.
func (s *stream) loseBody() {
	s.bodyKnown = false
	s.buf = s.buf[:0]
	if s.resp && s.req != nil {
		s.st = stLostBody
		return
	}
	if !s.resp {
		s.messageDone()
	}
	s.st = stLost
}

// messageDone reports a complete message and returns to a boundary.
func (s *stream) messageDone() {
	s.st = stIdle
	s.buf = s.buf[:0]
	if s.resp {
		s.finishResponse(s.cur.End)
		return
	}
	if s.req != nil {
		s.req.reqBody, s.req.reqBodyKnown = s.bodySize, s.bodyKnown
		s.req = nil
	}
}

// finishResponse emits the span of the request this response answers.
func (s *stream) finishResponse(end time.Time) {
	if s.st == stUntilClose || s.st == stLostBody {
		s.st = stIdle
	}
	if s.req == nil {
		return
	}
	s.req.respBody, s.req.respBodyKnown = s.bodySize, s.bodyKnown
	s.p.emit(s.req, end)
	s.req = nil
}
