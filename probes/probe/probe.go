// Package probe holds the contract between the kernel capture (agent) and the
// protocol probes (probes/<proto>): what one connection is, what one syscall's
// bytes look like, and the protocol-neutral span record a probe produces.
//
// Probes never see the kernel or the exporter: they turn ordered Chunks of one
// connection into Spans. That keeps them testable on captured bytes alone.
package probe

import (
	"net/netip"
	"slices"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Direction of bytes relative to the traced process.
type Direction uint8

const (
	Recv Direction = iota // the process read these bytes from the socket
	Send                  // the process wrote these bytes to the socket
)

func (d Direction) String() string {
	if d == Send {
		return "send"
	}
	return "recv"
}

// Conn is one TCP connection of a traced process, as the kernel saw it.
type Conn struct {
	PID    uint32
	FD     int32
	ID     uint64         // kernel socket identity, unique while the socket lives
	Local  netip.AddrPort // the traced process's end
	Remote netip.AddrPort // the peer
}

// Chunk is what one syscall moved on a connection.
type Chunk struct {
	Dir   Direction
	TID   uint32
	Start time.Time // syscall entry
	End   time.Time // syscall exit
	// Len is how many bytes the syscall really moved; Data holds the first
	// len(Data) <= Len of them (the kernel captures a bounded prefix).
	Len  int
	Data []byte
	// Segs are further known bytes past Data, in offset order: for HTTP/2
	// sockets the kernel records every frame header and non-DATA payload
	// (header blocks, control frames) beyond the prefix, so only DATA
	// payload is ever missing. Other probes can ignore them.
	Segs []Segment
	// Streams are the kernel's ids for HTTP/2 streams whose request
	// HEADERS frame starts in this chunk, for servers whose handlers run
	// apart from the reader (Go: bpf/h2_stream.h). They win over Ctx.
	Streams []StreamCtx
	// Ctx is the trace context the kernel decided for the request this
	// syscall starts: for a request read, the SERVER span's own ids; for a
	// request written, the CLIENT span's ids (the ones injected into it as
	// traceparent, when the kernel did). Invalid when none.
	Ctx trace.SpanContext
	// Parent is Ctx's parent: the caller of a request read (remote), or the
	// SERVER span a request written belongs to.
	Parent trace.SpanContext
	// Forwarded: the request written carries, unchanged, the traceparent of
	// a request its process received (a proxy passing headers on). Ctx is
	// then the kernel's client span of that request, not the header's id.
	Forwarded bool
}

// StreamCtx is the SERVER span the kernel decided for HTTP/2 stream ID:
// its own ids, and its remote caller's when it had one.
type StreamCtx struct {
	ID     uint32
	Ctx    trace.SpanContext
	Parent trace.SpanContext
}

// Segment is bytes of a syscall at offset Off (from its first byte).
type Segment struct {
	Off  int
	Data []byte
}

// Truncated reports whether the kernel captured fewer bytes than moved.
func (c *Chunk) Truncated() bool { return len(c.Data) < c.Len }

// Span is a protocol-neutral finished operation a probe observed. The
// exporter turns it into an OpenTelemetry span of the process's service.
type Span struct {
	PID   uint32
	TID   uint32
	Kind  trace.SpanKind
	Name  string
	Start time.Time
	End   time.Time
	Attrs []attribute.KeyValue
	// Error marks status ERROR; StatusMessage is optional detail.
	Error         bool
	StatusMessage string

	// SpanContext is this span's identity when it is already known (for
	// example chosen by the kernel so it could be propagated); when invalid
	// the exporter generates ids.
	SpanContext trace.SpanContext
	// Parent is the parent span's context (remote or local); invalid = root.
	Parent trace.SpanContext
	// Links are related spans that are not the parent, e.g. the producers of
	// the messages a consumer received.
	Links []trace.SpanContext
}

// CloneAttrs gives s its own copy of its Attrs, for keeping it past the
// parser call that returned it.
func (s *Span) CloneAttrs() { s.Attrs = slices.Clone(s.Attrs) }

// Parser consumes one connection's chunks in order and returns the spans
// they complete. Implementations must never panic on malformed input, and
// must copy what they keep of Chunk.Data: it aliases the kernel ring buffer
// and is only valid during Feed.
//
// The returned slice, and the Spans' Attrs, are only valid until the next
// call on the parser (it may reuse their backing arrays): a caller that
// keeps a span past that copies its Attrs (CloneAttrs). The agent's OTLP
// output encodes each span on arrival and keeps nothing.
type Parser interface {
	Feed(c Chunk) []Span
	// Close flushes what is pending when the connection ends.
	Close(at time.Time) []Span
}

// Recycler is a Parser that can be reused for another connection: after
// Close, the owner may call Recycle once and must then drop the parser.
type Recycler interface {
	Recycle()
}

// Probe is one protocol: it recognises a connection from its first bytes
// and builds a Parser for it.
type Probe interface {
	Name() string
	// Detect reports whether the first captured chunk of a connection looks
	// like this protocol.
	Detect(c *Chunk) bool
	NewParser(conn Conn) Parser
}
