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
	connState
	// reused holds queues[d], the requests that travelled in direction d
	// (oldest first), and the buffers and caches kept across connections.
	reused
}

// connState is what a parser knows of its connection (reset as a whole
// when the parser is recycled).
type connState struct {
	conn    probe.Conn
	streams [2]stream
	dead    bool // upgraded or tunnelled: no longer HTTP/1.x
	// chunk holds the chunk being fed, so the stream can point at it
	// without Feed's argument escaping to the heap (an allocation per call).
	chunk probe.Chunk
}

// peerAddr is the remote address as text, formatted once per peer.
func (p *parser) peerAddr() string {
	if !p.conn.Remote.IsValid() {
		return ""
	}
	return p.addrs.text(p.conn.Remote.Addr())
}

func (p *parser) Feed(c probe.Chunk) []probe.Span {
	p.newOutput()
	if p.dead || c.Dir > probe.Send {
		return nil
	}
	p.chunk = c
	p.streams[c.Dir].feed(&p.chunk)
	p.streams[c.Dir].cur = nil
	p.chunk = probe.Chunk{} // do not keep the caller's chunk (and ring memory) alive
	return p.flush()
}

// flush returns the spans completed by this call (valid until the next).
func (p *parser) flush() []probe.Span {
	if len(p.out) == 0 {
		return nil
	}
	return p.out
}

// requestHead queues a request whose head has just been parsed.
func (p *parser) requestHead(s *stream, h *head) *pending {
	kind := trace.SpanKindServer
	if s.dir == probe.Send {
		kind = trace.SpanKindClient
	}
	q := &p.queues[s.dir]
	if q.len() >= maxPending {
		p.emit(q.pop(), s.first.start)
	}
	r := p.newPending()
	r.h, r.kind, r.from = *h, kind, s.first
	q.push(r)
	return r
}

// responseHead pairs a final response with the oldest unanswered request
// that travelled the other way; it returns that request's method ("" when
// the response answers nothing we saw).
func (p *parser) responseHead(s *stream, h *head) string {
	q := &p.queues[1-s.dir]
	s.req = nil
	if q.len() == 0 {
		return ""
	}
	r := q.pop()
	r.answered, r.status = true, h.status
	s.req = r
	return r.h.method
}

// emit reports r's span; r is recycled, so no stream may still point at it
// (a request stream still reading the body of a request already answered).
func (p *parser) emit(r *pending, end time.Time) {
	p.out = append(p.out, p.buildSpan(r, end))
	for d := range p.streams {
		if p.streams[d].req == r {
			p.streams[d].req = nil
		}
	}
	p.release(r)
}

// Close ends responses delimited by the connection's end and reports the
// requests that never got an answer.
func (p *parser) Close(at time.Time) []probe.Span {
	p.newOutput()
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
		for p.queues[d].len() > 0 {
			p.emit(p.queues[d].pop(), at)
		}
	}
	for d := range p.streams {
		p.streams[d] = stream{p: p, dir: probe.Direction(d), buf: p.streams[d].buf[:0]}
	}
	p.dead = true
	return p.flush()
}
