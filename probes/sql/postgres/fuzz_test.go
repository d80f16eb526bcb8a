package postgres

import (
	"testing"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"github.com/tracer-agent/tracer-agent/probes/probe/probetest"
	"github.com/tracer-agent/tracer-agent/probes/sql"
)

// FuzzParser drives a parser with arbitrary bytes (the program format of
// probetest.Fuzz), checking on top that kept bodies and the matching state
// stay bounded.
func FuzzParser(f *testing.F) {
	probetest.AddCaptureSeeds(f, '>', 0) // the client sends messages
	f.Add(cat([]byte{1, 8}, sslRequest(), []byte{0, 1, 'N', 1, 14}, query("SELECT 1"), []byte{0x41, 3}, []byte("C\x00\x00")))
	f.Add(cat([]byte{1, 30}, parse("", "SELECT 1"), syncMsg(), []byte{0xff, 5}, []byte("E\x00\x00\x00\x09")))

	f.Fuzz(func(t *testing.T, prog []byte) {
		p := newParser(probe.Conn{PID: 1}, sql.Options{})
		probetest.Fuzz{Parsers: []probe.Parser{p}, After: func() {
			for _, s := range []*stream{&p.client, &p.server} {
				if cap(s.cur.body) > maxKeep {
					t.Fatalf("kept %d bytes", cap(s.cur.body))
				}
			}
			if len(p.m.queue) > maxQueue || len(p.m.stmts) > maxStatements || len(p.m.portals) > maxPortals {
				t.Fatalf("state grew: queue %d stmts %d portals %d", len(p.m.queue), len(p.m.stmts), len(p.m.portals))
			}
		}}.Run(t, prog)
	})
}
