package http

import (
	"testing"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"github.com/tracer-agent/tracer-agent/probes/probe/probetest"
)

// FuzzParser drives a parser with arbitrary bytes (the program format of
// probetest.Fuzz), checking on top that buffers and queues stay bounded.
func FuzzParser(f *testing.F) {
	probetest.AddCaptureSeeds(f, '<', 0) // the server sends responses
	f.Add([]byte("\x00\x13GET / HTTP/1.1\r\n\r\n\x01\x30HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\x03\x05ffff\r"))

	f.Fuzz(func(t *testing.T, prog []byte) {
		p := newParser(probe.Conn{PID: 1})
		probetest.Fuzz{Parsers: []probe.Parser{p}, After: func() {
			for d := range p.streams {
				s := &p.streams[d]
				if cap(s.buf) > 2*maxHead {
					t.Fatalf("buffer grew to %d", cap(s.buf))
				}
				if len(p.queues[d]) > maxPending {
					t.Fatalf("queue grew to %d", len(p.queues[d]))
				}
			}
		}}.Run(t, prog)
	})
}
