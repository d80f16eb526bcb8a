package kafka

import (
	"testing"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"github.com/tracer-agent/tracer-agent/probes/probe/probetest"
)

// FuzzParser drives two connections of one probe with arbitrary bytes (the
// program format of probetest.Fuzz with two lanes: ctl bit 1 picks the
// connection), checking on top that links, buffers, pending requests and
// the maps shared by the connections stay bounded.
func FuzzParser(f *testing.F) {
	// Seeds: each captured connection on its own (small seeds keep the
	// fuzzer's minimization fast) on lane 0; reads ('<') as Send, as the
	// seeds always were.
	for _, c := range captures {
		var order []int
		perConn := map[int][]probetest.Record{}
		for _, r := range loadCapture(f, c.file) {
			if _, ok := perConn[r.conn]; !ok {
				order = append(order, r.conn)
			}
			perConn[r.conn] = append(perConn[r.conn], probetest.Record{Dir: r.dir, Data: r.data})
		}
		for _, conn := range order {
			f.Add(probetest.Program(perConn[conn], '<'))
		}
	}
	f.Add([]byte("\x00\x0e\x00\x00\x00\x0a\x00\x00\x00\x07\x00\x00\x00\x01\xff\xff\x01\x08\x00\x00\x00\x04\x00\x00\x00\x01"))

	f.Fuzz(func(t *testing.T, prog []byte) {
		sh := newShared()
		ps := [2]*parser{newParser(probe.Conn{PID: 1, ID: 1}, sh), newParser(probe.Conn{PID: 1, ID: 2}, sh)}
		probetest.Fuzz{
			Parsers: []probe.Parser{ps[0], ps[1]},
			Span: func(s probe.Span) {
				if len(s.Links) > maxLinks {
					t.Fatalf("%d links", len(s.Links))
				}
			},
			After: func() {
				for _, p := range ps {
					for d := range p.streams {
						if c := cap(p.streams[d].buf); c > 2*maxKeep {
							t.Fatalf("buffer grew to %d", c)
						}
					}
					if len(p.pending) > maxPending {
						t.Fatalf("%d pending", len(p.pending))
					}
				}
				if len(sh.topics) > maxTopicIDs || len(sh.groups) > maxGroups {
					t.Fatalf("shared maps %d/%d", len(sh.topics), len(sh.groups))
				}
			},
		}.Run(t, prog)
	})
}
