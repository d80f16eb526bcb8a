package http

import (
	"time"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"go.opentelemetry.io/otel/trace"
)

// maxPending bounds queued requests per role: a peer that never answers
// (or garbage that parses as requests) must not grow memory.
const maxPending = 64

// pending is a request waiting for (or receiving) its response.
type pending struct {
	h    head
	kind trace.SpanKind
	from origin

	reqBody       int64
	reqBodyKnown  bool
	status        int
	respBody      int64
	respBodyKnown bool
	answered      bool
}

// parser matches requests with responses on one connection. Requests the
// process receives are answered by what it sends (server role) and vice
// versa (client role); each role has its own FIFO, which is what HTTP/1.x
// keep-alive and pipelining guarantee.
type parser struct {
	conn    probe.Conn
	streams [2]stream
	// queues[d] holds requests that travelled in direction d, oldest first.
	queues [2][]*pending
	out    []probe.Span
	dead   bool // upgraded or tunnelled: no longer HTTP/1.x
	// chunk holds the chunk being fed, so the stream can point at it
	// without Feed's argument escaping to the heap (an allocation per call).
	chunk probe.Chunk
	peer  string // peerAddr's cache
}

// peerAddr is the remote address as text, formatted once per connection
// (keep-alive connections carry many requests).
func (p *parser) peerAddr() string {
	if p.peer == "" && p.conn.Remote.IsValid() {
		p.peer = p.conn.Remote.Addr().Unmap().String()
	}
	return p.peer
}

func newParser(conn probe.Conn) *parser {
	p := &parser{conn: conn}
	for d := range p.streams {
		p.streams[d] = stream{p: p, dir: probe.Direction(d)}
	}
	return p
}

func (p *parser) Feed(c probe.Chunk) []probe.Span {
	if p.dead || c.Dir > probe.Send {
		return nil
	}
	p.chunk = c
	p.streams[c.Dir].feed(&p.chunk)
	p.streams[c.Dir].cur = nil
	p.chunk = probe.Chunk{} // do not keep the caller's chunk (and ring memory) alive
	return p.flush()
}

func (p *parser) flush() []probe.Span {
	out := p.out
	p.out = nil
	return out
}

// requestHead queues a request whose head has just been parsed.
func (p *parser) requestHead(s *stream, h *head) *pending {
	kind := trace.SpanKindServer
	if s.dir == probe.Send {
		kind = trace.SpanKindClient
	}
	r := &pending{h: *h, kind: kind, from: s.first}
	q := &p.queues[s.dir]
	if len(*q) >= maxPending {
		old := (*q)[0]
		*q = (*q)[1:]
		p.emit(old, s.first.start)
	}
	*q = append(*q, r)
	return r
}

// responseHead pairs a final response with the oldest unanswered request
// that travelled the other way; it returns that request's method ("" when
// the response answers nothing we saw).
func (p *parser) responseHead(s *stream, h *head) string {
	q := &p.queues[1-s.dir]
	s.req = nil
	if len(*q) == 0 {
		return ""
	}
	r := (*q)[0]
	(*q)[0] = nil
	*q = (*q)[1:]
	r.answered, r.status = true, h.status
	s.req = r
	return r.h.method
}

func (p *parser) emit(r *pending, end time.Time) {
	p.out = append(p.out, buildSpan(p.conn, p.peerAddr(), r, end))
}

// Close ends responses delimited by the connection's end and reports the
// requests that never got an answer.
func (p *parser) Close(at time.Time) []probe.Span {
	for d := range p.streams {
		s := &p.streams[d]
		if !s.resp || s.req == nil {
			continue
		}
		switch s.st {
		case stUntilClose:
			s.bodyKnown = true
			s.finishResponse(at)
		case stLostBody:
			s.finishResponse(s.lastEnd)
		case stBodyLen, stChunkSize, stChunkData, stChunkCRLF, stTrailer:
			s.bodyKnown = false // cut short by the close
			s.finishResponse(at)
		}
	}
	for d := range p.queues {
		for _, r := range p.queues[d] {
			p.emit(r, at)
		}
		p.queues[d] = nil
	}
	for d := range p.streams {
		p.streams[d] = stream{p: p, dir: probe.Direction(d)}
	}
	p.dead = true
	return p.flush()
}
