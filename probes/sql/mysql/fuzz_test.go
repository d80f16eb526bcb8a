package mysql

import (
	"testing"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"github.com/tracer-agent/tracer-agent/probes/probe/probetest"
	"github.com/tracer-agent/tracer-agent/probes/sql"
)

// FuzzParser drives a parser with arbitrary bytes (the program format of
// probetest.Fuzz), with and without raw query text, checking on top that
// buffers, the queue and the statement table stay bounded.
func FuzzParser(f *testing.F) {
	probetest.AddCaptureSeeds(f, '>', 0) // the client sends commands
	f.Add([]byte("\x01\x0c\x08\x00\x00\x00\x03SELECT 1\x00\x05\x01\x00\x00\x01\x01\x02\x04\xff\xff\xff\x02"))

	f.Fuzz(func(t *testing.T, prog []byte) {
		for _, raw := range []bool{false, true} {
			p := newParser(probe.Conn{PID: 1}, sql.Options{RawQueryText: raw})
			probetest.Fuzz{Parsers: []probe.Parser{p}, After: func() {
				for d := range p.fr {
					if cap(p.fr[d].cur.data) > 2*maxKeep {
						t.Fatalf("buffer grew to %d", cap(p.fr[d].cur.data))
					}
				}
				if len(p.queue) > maxPending || len(p.stmts) > maxStmts {
					t.Fatalf("queue %d, statements %d", len(p.queue), len(p.stmts))
				}
			}}.Run(t, prog)
		}
	})
}
