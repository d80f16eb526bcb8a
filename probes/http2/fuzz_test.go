package http2

import (
	"testing"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"github.com/tracer-agent/tracer-agent/probes/probe/probetest"
)

// FuzzParser drives a parser with arbitrary bytes (the program format of
// probetest.Fuzz), checking on top that streams and HPACK tables stay
// bounded.
func FuzzParser(f *testing.F) {
	// The server sends responses. Small seeds keep the fuzzer's
	// minimisation fast (the 20 KB upload would stall it for a long time).
	probetest.AddCaptureSeeds(f, '<', 4096)
	f.Add([]byte("\x00\x18" + clientPreface + "\x00\x0e\x00\x00\x05\x01\x04\x00\x00\x00\x01\x82\x84\x86\x41\x8a\x01\x10\x00\x00\x08\x01\x05\x00\x00\x00\x01\x88"))

	f.Fuzz(func(t *testing.T, prog []byte) {
		p := newParser(probe.Conn{PID: 1})
		probetest.Fuzz{Parsers: []probe.Parser{p}, After: func() {
			if len(p.streams) > maxStreams {
				t.Fatalf("%d streams", len(p.streams))
			}
			for d := range p.dirs {
				if h := p.dirs[d].hp; h != nil && h.allowed > maxTableSize {
					t.Fatalf("table allowed %d", h.allowed)
				}
			}
		}}.Run(t, prog)
	})
}
