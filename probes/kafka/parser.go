package kafka

import (
	"encoding/binary"
	"time"

	"github.com/tracer-agent/tracer-agent/probes/probe"
)

// maxPending bounds requests awaiting a response on one connection.
const maxPending = 256

// pending is a request we will decode the response of.
type pending struct {
	corr    int32
	key     int16
	version int16
	from    origin
	produce *produceReq
}

// parser follows one client connection: requests the process sends,
// responses it reads. Kafka answers a connection's requests in order, but
// matching by correlation id also survives requests we did not track and
// responses lost to capture gaps.
type parser struct {
	conn     probe.Conn
	shared   *shared
	streams  [2]stream
	pending  []*pending
	clientID string
	group    string
	out      []probe.Span
}

func newParser(conn probe.Conn, sh *shared) *parser {
	if sh == nil {
		sh = newShared()
	}
	p := &parser{conn: conn, shared: sh}
	p.streams[probe.Recv].dir = probe.Recv
	p.streams[probe.Send].dir = probe.Send
	return p
}

func (p *parser) Feed(c probe.Chunk) []probe.Span {
	switch c.Dir {
	case probe.Send:
		p.streams[c.Dir].feed(&c, p.resyncRequest, p.request)
	case probe.Recv:
		p.streams[c.Dir].feed(&c, p.resyncResponse, p.response)
	}
	return p.flush()
}

func (p *parser) flush() []probe.Span {
	out := p.out
	p.out = nil
	return out
}

// resyncRequest: after a gap, a write that starts a request restarts framing.
func (p *parser) resyncRequest(b []byte) bool {
	return looksLikeRequest(b, len(b), 1) || p.plausibleBigRequest(b)
}

func (p *parser) plausibleBigRequest(b []byte) bool {
	// A large write captured only in part: the header still must be sane.
	return len(b) >= 14 && looksLikeRequest(b, minSplitWrite, 1)
}

// resyncResponse: a read that starts with a sane size and the correlation
// id of a request we are waiting for.
func (p *parser) resyncResponse(b []byte) bool {
	if len(b) < 8 {
		return false
	}
	size := int(int32(binary.BigEndian.Uint32(b)))
	if size < 4 || size > maxMessage {
		return false
	}
	return p.find(int32(binary.BigEndian.Uint32(b[4:]))) >= 0
}

func (p *parser) find(corr int32) int {
	for i, r := range p.pending {
		if r.corr == corr {
			return i
		}
	}
	return -1
}

// request decodes a request header and the bodies spans need.
func (p *parser) request(m *message) {
	r := reader{b: m.body}
	key, ver, corr := r.int16(), r.int16(), r.int32()
	if r.bad || !validVersion(key, ver) {
		return
	}
	hv := requestHeaderVersion(key, ver)
	if hv >= 1 {
		// client_id is a nullable STRING with an int16 length even in
		// header v2 (clients send it before knowing the broker's versions).
		// Compared as bytes first: most requests repeat the same id.
		n := int(r.int16())
		if n < -1 {
			return
		}
		if id := r.take(max(n, 0)); n > 0 && n <= 1024 && id != nil && string(id) != p.clientID {
			p.clientID = string(id)
		}
	}
	if hv >= 2 {
		r.flex = true
		r.tags()
	}
	if r.bad {
		return
	}
	r.flex = flexible(key, ver)
	req := &pending{corr: corr, key: key, version: ver, from: m.from}
	switch key {
	case apiProduce:
		budget := inflateBudget
		req.produce = decodeProduceRequest(&r, ver, m.cut, &budget)
		if req.produce == nil {
			return
		}
		if req.produce.acks == 0 {
			p.emitProduce(req, m.end) // no response will come
			return
		}
	case apiFetch, apiMetadata:
	default:
		if g := groupOf(key, ver, &r); g != "" {
			p.group = g
			if p.clientID != "" {
				p.shared.learnGroup(clientKey{p.conn.PID, p.clientID}, g)
			}
		}
		return
	}
	if len(p.pending) >= maxPending {
		p.drop(1, m.from.start)
	}
	p.pending = append(p.pending, req)
}

// drop forgets the n oldest pending requests: their responses were lost.
// A produce still gets its span, without offsets.
func (p *parser) drop(n int, at time.Time) {
	for _, r := range p.pending[:n] {
		if r.produce != nil {
			p.emitProduce(r, maxTime(r.from.end, at))
		}
	}
	clear(p.pending[:n])
	p.pending = p.pending[n:]
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// response matches a response to its request and decodes it.
func (p *parser) response(m *message) {
	r := reader{b: m.body}
	corr := r.int32()
	i := p.find(corr)
	if r.bad || i < 0 {
		return
	}
	req := p.pending[i]
	// Earlier requests were answered in bytes we did not see.
	p.drop(i, req.from.start)
	p.pending[0] = nil
	p.pending = p.pending[1:]
	if responseHeaderFlexible(req.key, req.version) {
		r.flex = true
		r.tags()
	}
	r.flex = flexible(req.key, req.version)
	switch req.key {
	case apiProduce:
		decodeProduceResponse(&r, req.version, req.produce)
		p.emitProduce(req, m.end)
	case apiFetch:
		budget := inflateBudget
		topics, topErr := decodeFetchResponse(&r, req.version, m.cut, &budget)
		p.emitFetch(req, topics, topErr, m.end)
	case apiMetadata:
		decodeMetadataResponse(&r, req.version, p.shared.learnTopic)
	}
}

// Close reports produce requests that never got an answer.
func (p *parser) Close(at time.Time) []probe.Span {
	p.drop(len(p.pending), at)
	p.pending = nil
	for d := range p.streams {
		p.streams[d] = stream{dir: probe.Direction(d)}
	}
	return p.flush()
}
