package http

import (
	"net/netip"
	"sync"

	"go.opentelemetry.io/otel/attribute"

	"github.com/tracer-agent/tracer-agent/probes/probe"
)

// Per-span allocations were most of the agent's CPU (malloc and the GC
// they drive), and many clients open a connection per request. So a
// parser's buffers and caches outlive its connection: closed parsers go
// back to a pool (probe.Recycler) and the next connection starts from
// one, with all connection state reset.

var parserPool = sync.Pool{New: func() any { return new(parser) }}

// newParser returns a parser for conn, reusing a recycled one if any.
func newParser(conn probe.Conn) *parser {
	return parserPool.Get().(*parser).init(conn)
}

// init gives a new or reset parser its connection.
func (p *parser) init(conn probe.Conn) *parser {
	p.conn = conn
	for d := range p.streams {
		p.streams[d].p, p.streams[d].dir = p, probe.Direction(d)
	}
	return p
}

// Recycle implements probe.Recycler: the owner has closed p and drops it.
func (p *parser) Recycle() {
	p.reset()
	parserPool.Put(p)
}

// maxKeptBuf caps the head buffer a recycled stream keeps: a rare huge
// head must not pin 16 KiB in every pooled parser.
const maxKeptBuf = 4 << 10

// reused is what a parser keeps across connections: buffers and caches,
// never connection state.
type reused struct {
	out     []probe.Span
	attrs   []attribute.KeyValue // the Attrs of out's spans
	free    []*pending           // cleared requests, for requestHead
	queues  [2]fifo
	scratch []byte // span name and url.full being built
	values  strCache
	names   strCache
	// lastName is the last span name and the method and path it is for:
	// requests on a connection, and the connections that follow, repeat.
	lastName struct{ method, path, name string }
	urls     strCache
	addrs    addrCache
}

// reset forgets the connection: all of connState (so a field added there
// is reset by default) and what the queues still hold. Caches stay.
func (p *parser) reset() {
	p.newOutput()
	clear(p.attrs[:cap(p.attrs)]) // keep no strings of the old connection alive
	for d := range p.queues {
		for p.queues[d].len() > 0 {
			p.release(p.queues[d].pop())
		}
	}
	var bufs [2][]byte
	for d, s := range p.streams {
		if cap(s.buf) <= maxKeptBuf {
			bufs[d] = s.buf[:0]
		}
	}
	p.connState = connState{}
	for d := range p.streams {
		p.streams[d].buf = bufs[d]
	}
}

// newOutput starts the spans of a call: the caller is done with the
// previous call's spans and their Attrs.
func (p *parser) newOutput() {
	clear(p.out)
	p.out = p.out[:0]
	p.attrs = p.attrs[:0]
}

// newPending returns a zero request, recycled when possible.
func (k *reused) newPending() *pending {
	if n := len(k.free); n > 0 {
		r := k.free[n-1]
		k.free = k.free[:n-1]
		return r
	}
	return new(pending)
}

// maxFreePending bounds the requests a parser keeps for reuse: one or two
// are in flight on most connections, pipelining bursts are rare.
const maxFreePending = 4

// release takes back a request that was emitted and is referenced no more.
func (k *reused) release(r *pending) {
	if len(k.free) < maxFreePending {
		*r = pending{}
		k.free = append(k.free, r)
	}
}

// fifo is a queue of requests that reuses its backing array.
type fifo struct {
	items []*pending
	head  int
}

func (q *fifo) len() int { return len(q.items) - q.head }

func (q *fifo) push(r *pending) {
	if q.head > 0 && len(q.items) == cap(q.items) {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	q.items = append(q.items, r)
}

// pop removes the oldest request; the queue must not be empty.
func (q *fifo) pop() *pending {
	r := q.items[q.head]
	q.items[q.head] = nil
	if q.head++; q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	}
	return r
}

// maxCached is the longest string a strCache keeps: longer ones are rare
// (and would pin memory in every pooled parser).
const maxCached = 128

// strCache turns bytes into strings without allocating when they repeat:
// Host, User-Agent, polled paths, span names (routes are low-cardinality
// by design). Two-way set associative: a miss replaces the older of its
// set's two slots.
type strCache [16]string

func (c *strCache) get(b []byte) string {
	n := len(b)
	if n == 0 || n > maxCached {
		return string(b)
	}
	i := 2 * ((uint(n) + 7*uint(b[n-1]) + 31*uint(b[n/2]) + 131*uint(b[n/4])) % uint(len(c)/2))
	switch string(b) { // compares without converting
	case c[i]:
		return c[i]
	case c[i+1]:
		c[i], c[i+1] = c[i+1], c[i]
		return c[i]
	}
	c[i+1] = c[i]
	c[i] = string(b)
	return c[i]
}

// addrCache formats socket addresses once: a connection's peer, and the
// same peer or local address of the connections that follow.
type addrCache [2]struct {
	addr netip.Addr
	text string
}

func (c *addrCache) text(a netip.Addr) string {
	for i := range c {
		if c[i].text != "" && c[i].addr == a {
			return c[i].text
		}
	}
	c[1] = c[0]
	c[0].addr, c[0].text = a, a.Unmap().String()
	return c[0].text
}
