package http2

import (
	"sort"
	"strconv"
	"time"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"go.opentelemetry.io/otel/trace"
)

// maxStreams bounds the streams followed per connection: a peer that never
// ends streams (or frames we lost) must not grow memory. Servers usually
// allow 100-250 concurrent streams.
const maxStreams = 512

// stream is one request/response exchange (RFC 9113 §5).
type stream struct {
	id     uint32
	kind   trace.SpanKind
	reqDir probe.Direction
	from   origin

	// req holds the request fields decoded (all of them when reqComplete;
	// those before the failure otherwise: present fields are always right).
	req         headers
	reqComplete bool

	gotResp bool // a final response HEADERS frame (even undecodable) arrived
	status  int  // :status, 0 when unknown
	respCT  string
	grpc    grpcStatus

	reqBody, respBody           int64
	reqBodyKnown, respBodyKnown bool
	reqEnd, respEnd             bool
	reqLosses                   int // request direction's losses when the stream opened

	rst      bool
	rstCode  uint32
	rstKnown bool
	rstBy    probe.Direction
	goaway   bool
}

// grpcStatus is what the trailers (or a trailers-only response) said.
type grpcStatus struct {
	code    string // raw grpc-status value
	message string // raw (percent-encoded) grpc-message
}

// parser follows the streams of one connection.
type parser struct {
	conn probe.Conn
	dirs [2]direction

	clientDir   probe.Direction
	clientKnown bool
	tableSize   [2]uint32 // SETTINGS_HEADER_TABLE_SIZE bounding each direction's decoder

	streams map[uint32]*stream
	maxID   [2]uint32 // highest stream id each direction opened
	out     []probe.Span
	cur     *probe.Chunk
	dead    bool
}

func newParser(conn probe.Conn) *parser {
	p := &parser{conn: conn, streams: map[uint32]*stream{}}
	for d := range p.dirs {
		p.dirs[d] = direction{p: p, dir: probe.Direction(d)}
	}
	return p
}

func (p *parser) Feed(c probe.Chunk) []probe.Span {
	if p.dead || c.Dir > probe.Send || c.Len < 0 {
		return nil
	}
	p.cur = &c
	p.dirs[c.Dir].feed(&c)
	p.dirs[c.Dir].cur, p.cur = nil, nil // do not keep the caller's chunk alive
	return p.flush()
}

func (p *parser) flush() []probe.Span {
	out := p.out
	p.out = nil
	return out
}

func (p *parser) newHPACK(dir probe.Direction, joined bool) *hpackState {
	h := newHPACK(joined)
	if v := p.tableSize[dir]; v != 0 {
		h.setAllowed(v)
	}
	return h
}

// maybePreface recognises the client preface at the very start of a
// direction (a prefix of it counts: the rest is checked as it arrives).
// The connection is then new: both directions start at a frame boundary
// with empty HPACK tables.
func (p *parser) maybePreface(d *direction, c *probe.Chunk) bool {
	n := min(len(c.Data), len(clientPreface))
	if n == 0 || string(c.Data[:n]) != clientPreface[:n] {
		return false
	}
	d.synced, d.zero, d.preface = true, true, len(clientPreface)
	d.clearFrame()
	d.hp = p.newHPACK(d.dir, false)
	p.clientDir, p.clientKnown = d.dir, true
	o := &p.dirs[1-d.dir]
	switch {
	case o.seen == 0:
		o.synced, o.zero = true, true
		o.clearFrame()
		o.hp = p.newHPACK(o.dir, false)
	case o.zero && o.hp != nil && o.hp.lost == 0:
		// The server's SETTINGS came first (it may write before reading):
		// it was synced from its first byte, so its table is whole.
		o.hp.degraded = false
	}
	return true
}

func (p *parser) end() time.Time {
	if p.cur == nil {
		return time.Time{}
	}
	return p.cur.End
}

// onHeaders handles a complete header block; ok is false when it could not
// be decoded entirely (h then holds the fields decoded before the failure).
func (p *parser) onHeaders(dir probe.Direction, id uint32, endStream bool, h headers, ok bool, from origin) {
	if !p.clientKnown {
		switch {
		case h.method != "":
			p.clientDir, p.clientKnown = dir, true
		case h.status != "":
			p.clientDir, p.clientKnown = 1-dir, true
		}
	}
	st := p.streams[id]
	if st == nil {
		// A new stream: client-initiated ids are odd and increase (RFC 9113
		// §5.1.1). Anything else is a response or trailers of a stream we
		// never saw open (joined mid-way) or already ended.
		isReq := p.clientKnown && dir == p.clientDir
		if h.method != "" || h.status != "" {
			isReq = h.method != "" && h.status == ""
		}
		if !isReq || id%2 == 0 || id <= p.maxID[dir] {
			return
		}
		p.maxID[dir] = id
		st = &stream{id: id, reqDir: dir, from: from, req: h, reqComplete: ok, reqBodyKnown: true, respBodyKnown: true}
		st.kind = trace.SpanKindServer
		if dir == probe.Send {
			st.kind = trace.SpanKindClient
		}
		st.reqLosses = p.dirs[dir].losses
		p.add(st)
		st.reqEnd = endStream
		return
	}
	if dir == st.reqDir { // request trailers
		if endStream {
			st.reqEnd = true
			p.maybeDone(st)
		}
		return
	}
	if !st.gotResp {
		code, err := strconv.Atoi(h.status)
		if err == nil && code >= 100 && code < 200 && !endStream {
			return // interim response (RFC 9113 §8.1)
		}
		if err == nil && code >= 100 && code <= 999 {
			st.status = code
		}
	}
	if h.contentType != "" && st.respCT == "" {
		st.respCT = h.contentType
	}
	if h.grpcStatus != "" {
		st.grpc = grpcStatus{code: h.grpcStatus, message: h.grpcMessage}
	}
	st.gotResp = true
	if endStream {
		st.respEnd = true
		p.maybeDone(st)
	}
}

func (p *parser) onData(dir probe.Direction, id uint32, size int64, known, endStream bool) {
	st := p.streams[id]
	if st == nil {
		return
	}
	if dir == st.reqDir {
		st.reqBody += size
		st.reqBodyKnown = st.reqBodyKnown && known
		st.reqEnd = st.reqEnd || endStream
	} else {
		st.respBody += size
		st.respBodyKnown = st.respBodyKnown && known
		st.respEnd = st.respEnd || endStream
	}
	p.maybeDone(st)
}

// bodiesUnknown: frames of dir were lost, and DATA of any open stream may
// be among them, so no body size in that direction can be trusted.
func (p *parser) bodiesUnknown(dir probe.Direction) {
	for _, st := range p.streams {
		if dir == st.reqDir {
			st.reqBodyKnown = false
		} else {
			st.respBodyKnown = false
		}
	}
}

func (p *parser) onRST(dir probe.Direction, id uint32, code uint32, known bool) {
	st := p.streams[id]
	if st == nil {
		return
	}
	st.rst, st.rstCode, st.rstKnown, st.rstBy = true, code, known, dir
	p.finish(st, p.end())
}

// onGoAway ends the streams the GOAWAY's receiver opened above the last
// stream id the sender processed (RFC 9113 §6.8).
func (p *parser) onGoAway(dir probe.Direction, last uint32) {
	for _, st := range p.sorted() {
		if st.reqDir != dir && st.id > last {
			st.goaway = true
			p.finish(st, p.end())
		}
	}
}

// maybeDone ends a stream closed in both directions. When request frames
// were lost since the stream opened, its END_STREAM may be among them: the
// end of the response is then taken as the end.
func (p *parser) maybeDone(st *stream) {
	reqEnd := st.reqEnd || p.dirs[st.reqDir].losses != st.reqLosses
	if reqEnd && st.respEnd {
		p.finish(st, p.end())
	}
}

func (p *parser) add(st *stream) {
	if len(p.streams) >= maxStreams {
		oldest := p.sorted()[0]
		p.finish(oldest, st.from.start)
	}
	p.streams[st.id] = st
}

func (p *parser) finish(st *stream, end time.Time) {
	delete(p.streams, st.id)
	p.out = append(p.out, buildSpan(p.conn, st, end))
}

// sorted returns the open streams, oldest first.
func (p *parser) sorted() []*stream {
	out := make([]*stream, 0, len(p.streams))
	for _, st := range p.streams {
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// Close reports the streams still open when the connection ends.
func (p *parser) Close(at time.Time) []probe.Span {
	if p.dead {
		return nil
	}
	for _, st := range p.sorted() {
		p.finish(st, at)
	}
	p.dead = true
	return p.flush()
}
