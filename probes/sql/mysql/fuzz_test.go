package mysql

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
		// Captures translated into the op format, 255-byte pieces.
		var prog []byte
		for len(b) >= 5 {
			dir := byte(probe.Recv)
			if b[0] == '>' {
				dir = byte(probe.Send)
			}
			n := int(b[1])<<24 | int(b[2])<<16 | int(b[3])<<8 | int(b[4])
			if 5+n > len(b) {
				break
			}
			data := b[5 : 5+n]
			for len(data) > 0 {
				k := min(len(data), 255)
				prog = append(prog, dir, byte(k))
				prog = append(prog, data[:k]...)
				data = data[k:]
			}
			b = b[5+n:]
		}
		f.Add(prog)
	}
	f.Add([]byte("\x01\x0c\x08\x00\x00\x00\x03SELECT 1\x00\x05\x01\x00\x00\x01\x01\x02\x04\xff\xff\xff\x02"))

	f.Fuzz(func(t *testing.T, prog []byte) {
		for _, raw := range []bool{false, true} {
			p := newParser(probe.Conn{PID: 1}, sql.Options{RawQueryText: raw})
			now := time.Unix(1000, 0)
			check := func(spans []probe.Span) {
				for _, s := range spans {
					if s.End.Before(s.Start) {
						t.Fatalf("span %q ends before it starts", s.Name)
					}
				}
			}
			prog := prog
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
				for d := range p.fr {
					if cap(p.fr[d].cur.data) > 2*maxKeep {
						t.Fatalf("buffer grew to %d", cap(p.fr[d].cur.data))
					}
				}
				if len(p.queue) > maxPending || len(p.stmts) > maxStmts {
					t.Fatalf("queue %d, statements %d", len(p.queue), len(p.stmts))
				}
			}
			check(p.Close(now))
		}
	})
}
