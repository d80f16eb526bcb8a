package http2

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tracer-agent/tracer-agent/probes/probe"
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
			dir := byte(0)
			if b[0] == '<' {
				dir = 1
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
		// Small seeds keep the fuzzer's minimisation fast (the 20 KB upload
		// would stall it for a long time).
		if len(prog) > 4096 {
			prog = prog[:4096]
		}
		f.Add(prog)
	}
	f.Add([]byte("\x00\x18" + clientPreface + "\x00\x0e\x00\x00\x05\x01\x04\x00\x00\x00\x01\x82\x84\x86\x41\x8a\x01\x10\x00\x00\x08\x01\x05\x00\x00\x00\x01\x88"))

	f.Fuzz(func(t *testing.T, prog []byte) {
		p := newParser(probe.Conn{PID: 1})
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
			if len(p.streams) > maxStreams {
				t.Fatalf("%d streams", len(p.streams))
			}
			for d := range p.dirs {
				if h := p.dirs[d].hp; h != nil && h.allowed > maxTableSize {
					t.Fatalf("table allowed %d", h.allowed)
				}
			}
		}
		check(p.Close(now))
	})
}
