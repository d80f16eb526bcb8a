package kafka

import (
	"testing"
	"time"

	"github.com/tracer-agent/tracer-agent/probes/probe"
)

// FuzzParser drives two connections of one probe with arbitrary bytes. The
// input is a program: each op is [ctl][n] followed by n payload bytes. ctl
// bit 0 picks the direction, bit 1 the connection; bits 2-7 add unseen
// bytes (Len > len(Data)) in growing steps.
func FuzzParser(f *testing.F) {
	// Seeds: each captured connection on its own (small seeds keep the
	// fuzzer's minimization fast), in the op format, 255-byte pieces.
	for _, c := range captures {
		progs := map[int][]byte{}
		for _, r := range loadCapture(f, c.file) {
			ctl := byte(0)
			if r.dir == '<' {
				ctl |= 1
			}
			prog := progs[r.conn]
			for data := r.data; len(data) > 0; {
				k := min(len(data), 255)
				prog = append(prog, ctl, byte(k))
				prog = append(prog, data[:k]...)
				data = data[k:]
			}
			progs[r.conn] = prog
		}
		for _, prog := range progs {
			f.Add(prog)
		}
	}
	f.Add([]byte("\x00\x0e\x00\x00\x00\x0a\x00\x00\x00\x07\x00\x00\x00\x01\xff\xff\x01\x08\x00\x00\x00\x04\x00\x00\x00\x01"))

	f.Fuzz(func(t *testing.T, prog []byte) {
		sh := newShared()
		ps := [2]*parser{newParser(probe.Conn{PID: 1, ID: 1}, sh), newParser(probe.Conn{PID: 1, ID: 2}, sh)}
		now := time.Unix(1000, 0)
		check := func(spans []probe.Span) {
			for _, s := range spans {
				if s.End.Before(s.Start) {
					t.Fatalf("span %q ends before it starts", s.Name)
				}
				if len(s.Links) > maxLinks {
					t.Fatalf("%d links", len(s.Links))
				}
			}
		}
		for len(prog) >= 2 {
			ctl, n := prog[0], int(prog[1])
			prog = prog[2:]
			n = min(n, len(prog))
			data := append([]byte(nil), prog[:n]...)
			prog = prog[n:]
			extra := int(ctl>>2) * int(ctl>>2) * 37
			p := ps[ctl>>1&1]
			c := probe.Chunk{Dir: probe.Direction(ctl & 1), TID: uint32(n), Start: now, End: now.Add(time.Microsecond), Len: n + extra, Data: data}
			now = now.Add(time.Millisecond)
			check(p.Feed(c))
			clear(data) // the parser must not keep aliases
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
		}
		if len(sh.topics) > maxTopicIDs || len(sh.groups) > maxGroups {
			t.Fatalf("shared maps %d/%d", len(sh.topics), len(sh.groups))
		}
		for _, p := range ps {
			check(p.Close(now))
		}
	})
}
