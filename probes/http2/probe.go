// Package http2 turns cleartext HTTP/2 (h2c) and gRPC bytes of one TCP
// connection into client and server spans.
//
// Layout: frame.go knows the 9-byte frame header and the strict check used
// to recognise a connection joined mid-way; framing.go cuts each direction
// into frames (preface, padding, CONTINUATION, uncaptured gaps); hpack.go
// decodes header blocks with one HPACK decoder per direction; parser.go
// follows streams from request HEADERS to END_STREAM/RST_STREAM/GOAWAY;
// span.go and grpc.go build the OpenTelemetry span.
package http2

import (
	"bytes"

	"github.com/tracer-agent/tracer-agent/probes/probe"
)

// Options configures the HTTP/2 probe. Empty for now; kept so callers need
// not change when options appear.
type Options struct{}

type h2Probe struct{ opts Options }

// New returns the HTTP/2 (h2c) and gRPC probe.
func New(opts Options) probe.Probe { return &h2Probe{opts: opts} }

func (*h2Probe) Name() string { return "http2" }

// Detect claims a connection whose first captured chunk is the client
// preface (sent: the process is the client; received: it is the server),
// or, for a connection older than the agent, a chunk that parses strictly
// as whole HTTP/2 frames starting with SETTINGS, HEADERS or DATA.
func (*h2Probe) Detect(c *probe.Chunk) bool {
	if c == nil || c.Dir > probe.Send {
		return false
	}
	if len(c.Data) >= len(clientPreface) {
		return bytes.HasPrefix(c.Data, []byte(clientPreface)) || looksLikeFrames(c.Data, true)
	}
	// A short capture of the preface itself is still the preface.
	if len(c.Data) >= 8 && c.Len >= len(clientPreface) && bytes.HasPrefix([]byte(clientPreface), c.Data) {
		return true
	}
	return looksLikeFrames(c.Data, true)
}

func (*h2Probe) NewParser(conn probe.Conn) probe.Parser { return newParser(conn) }
