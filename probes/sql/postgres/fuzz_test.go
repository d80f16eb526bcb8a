package postgres

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"github.com/tracer-agent/tracer-agent/probes/sql"
)

// FuzzParser drives a parser with arbitrary bytes. The input is a program:
// each op is [ctl][n] followed by n payload bytes. ctl bit 0 picks the
// direction; bits 1-7 add unseen bytes (Len > len(Data)) in growing steps.
func FuzzParser(f *testing.F) {
	matches, _ := filepath.Glob("testdata/*.bin")
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			continue
		}
		recs, _ := decodeCapture(b)
		var prog []byte
		for _, r := range recs {
			dir := byte(1) // '>' client→server: Send
			if r.dir == '<' {
				dir = 0
			}
			for data := r.data; len(data) > 0; {
				k := min(len(data), 255)
				prog = append(prog, dir, byte(k))
				prog = append(prog, data[:k]...)
				data = data[k:]
			}
		}
		f.Add(prog)
	}
	f.Add(cat([]byte{1, 8}, sslRequest(), []byte{0, 1, 'N', 1, 14}, query("SELECT 1"), []byte{0x41, 3}, []byte("C\x00\x00")))
	f.Add(cat([]byte{1, 30}, parse("", "SELECT 1"), syncMsg(), []byte{0xff, 5}, []byte("E\x00\x00\x00\x09")))

	f.Fuzz(func(t *testing.T, prog []byte) {
		p := newParser(probe.Conn{PID: 1}, sql.Options{})
		now := time.Unix(1000, 0)
		check := func(spans []probe.Span) {
			for _, s := range spans {
				if s.End.Before(s.Start) {
					t.Fatalf("span %q ends before it starts", s.Name)
				}
			}
		}
		for len(prog) >= 2 {
			ctl, n := prog[0], int(prog[1])
			prog = prog[2:]
			n = min(n, len(prog))
			data := append([]byte(nil), prog[:n]...)
			prog = prog[n:]
			extra := int(ctl>>1) * int(ctl>>1) * 37
			c := probe.Chunk{Dir: probe.Direction(ctl & 1), TID: uint32(n), Start: now, End: now.Add(time.Microsecond), Len: n + extra, Data: data}
			now = now.Add(time.Millisecond)
			check(p.Feed(c))
			for _, s := range []*stream{&p.client, &p.server} {
				if cap(s.cur.body) > maxKeep {
					t.Fatalf("kept %d bytes", cap(s.cur.body))
				}
			}
			if len(p.m.queue) > maxQueue || len(p.m.stmts) > maxStatements || len(p.m.portals) > maxPortals {
				t.Fatalf("state grew: queue %d stmts %d portals %d", len(p.m.queue), len(p.m.stmts), len(p.m.portals))
			}
		}
		check(p.Close(now))
	})
}
