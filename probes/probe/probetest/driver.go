// Package probetest is the shared test support of the protocol probes: a
// driver that feeds a Parser the way the agent does, splitters that cut
// captured records into syscall-sized pieces, the loader of the two-way
// capture files, a fuzz harness and span assertions.
//
// It is imported by _test.go files only; it lives outside them so that
// every probe package can share it.
package probetest

import (
	"net/netip"
	"time"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"go.opentelemetry.io/otel/trace"
)

// T0 is when driven connections start: a fixed time keeps spans stable.
var T0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// Conn is a connection of PID 42, FD 7 between two "ip:port" literals.
func Conn(local, remote string) probe.Conn {
	return probe.Conn{
		PID: 42, FD: 7, ID: 1,
		Local:  netip.MustParseAddrPort(local),
		Remote: netip.MustParseAddrPort(remote),
	}
}

// Clock hands out syscall times: each chunk starts at Now and lasts
// Latency; Now then moves on by Step. Drivers of several connections of
// one capture share a Clock so their chunks stay in capture order.
type Clock struct {
	Now     time.Time
	Latency time.Duration
	Step    time.Duration
}

// NewClock starts at T0 with 500µs syscalls one millisecond apart.
func NewClock() *Clock {
	return &Clock{Now: T0, Latency: 500 * time.Microsecond, Step: time.Millisecond}
}

// Next returns the next syscall's start and end and advances the clock.
func (c *Clock) Next() (start, end time.Time) {
	start = c.Now
	c.Now = c.Now.Add(c.Step)
	return start, start.Add(c.Latency)
}

// Driver feeds one connection's Parser with advancing times and collects
// the spans it returns.
type Driver struct {
	*Clock
	Parser probe.Parser
	Spans  []probe.Span
	// TID is the thread of the last chunk; each chunk takes the next one
	// unless FixedTID holds it still.
	TID      uint32
	FixedTID bool
	// Fill overwrites each chunk's Data after Feed: parsers must copy what
	// they keep, since Data aliases the kernel ring buffer.
	Fill byte
	// Last is the last chunk fed (its Data already overwritten).
	Last probe.Chunk
	// Observe, when set, sees every chunk before the parser does.
	Observe func(probe.Chunk)
	// Segments, when set, gives the chunk of b (captured bytes of it in
	// Data) its Segs, as the kernel would for an HTTP/2 socket.
	Segments func(dir probe.Direction, b []byte, captured int) []probe.Segment
}

// NewDriver drives p on its own clock, overwriting data with 'Z'.
func NewDriver(p probe.Parser) *Driver {
	return &Driver{Clock: NewClock(), Parser: p, Fill: 'Z'}
}

// Feed hands the parser one syscall's bytes b, of which the kernel captured
// the first captured (< 0 or > len(b): all), carrying kernel-decided ids
// ctx and their parent. It returns the chunk's start and end.
func (d *Driver) Feed(dir probe.Direction, b []byte, captured int, ctx, parent trace.SpanContext) (start, end time.Time) {
	if captured > len(b) || captured < 0 {
		captured = len(b)
	}
	ring := append([]byte(nil), b[:captured]...)
	if !d.FixedTID {
		d.TID++
	}
	start, end = d.Next()
	c := probe.Chunk{Dir: dir, TID: d.TID, Start: start, End: end, Len: len(b), Data: ring, Ctx: ctx, Parent: parent}
	if d.Segments != nil {
		for _, s := range d.Segments(dir, b, captured) {
			c.Segs = append(c.Segs, probe.Segment{Off: s.Off, Data: append([]byte(nil), s.Data...)})
		}
	}
	if d.Observe != nil {
		d.Observe(c)
	}
	d.keep(d.Parser.Feed(c))
	for i := range ring {
		ring[i] = d.Fill
	}
	for _, s := range c.Segs { // they alias the ring too
		for i := range s.Data {
			s.Data[i] = d.Fill
		}
	}
	d.Last = c
	return start, end
}

// Send feeds all of s without kernel ids.
func (d *Driver) Send(dir probe.Direction, s string) (start, end time.Time) {
	return d.Feed(dir, []byte(s), -1, trace.SpanContext{}, trace.SpanContext{})
}

// Close ends the connection now and returns when.
func (d *Driver) Close() time.Time {
	at := d.Now
	d.keep(d.Parser.Close(at))
	return at
}

// keep appends a call's spans to d.Spans with Attrs of their own: the
// parser may reuse them on its next call.
func (d *Driver) keep(spans []probe.Span) {
	for _, s := range spans {
		s.CloneAttrs()
		d.Spans = append(d.Spans, s)
	}
}
