// Package http turns HTTP/1.x bytes of one TCP connection into client and
// server spans. Callers import it as httpprobe.
//
// Layout: framing.go cuts each direction's byte stream into messages,
// head.go parses start lines and headers, parser.go matches requests with
// responses (FIFO per role), span.go builds the OpenTelemetry span, route.go
// guesses a low-cardinality route from a path.
package http

import (
	"github.com/tracer-agent/tracer-agent/probes/probe"
)

// Options configures the HTTP probe. Empty for now; kept so callers need not
// change when options appear.
type Options struct{}

type httpProbe struct{ opts Options }

// New returns the HTTP/1.x probe.
func New(opts Options) probe.Probe { return &httpProbe{opts: opts} }

func (*httpProbe) Name() string { return "http" }

// Detect reports whether the chunk starts with a request line of a known
// method. A connection first seen mid-response is not claimed: the tracker
// tries again with the next chunk, which will start a request.
func (*httpProbe) Detect(c *probe.Chunk) bool {
	if c == nil {
		return false
	}
	_, ok := knownMethodPrefix(c.Data)
	return ok
}

func (*httpProbe) NewParser(conn probe.Conn) probe.Parser { return newParser(conn) }
