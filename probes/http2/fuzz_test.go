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

// FuzzSegments feeds chunks whose bytes past a prefix come as segments
// (bpf/h2_seg.h) at arbitrary offsets, overlapping, out of order or past
// the chunk: never a panic, streams bounded.
func FuzzSegments(f *testing.F) {
	f.Add([]byte("\x05\x02\x03\x04\x09" + clientPreface + "\x00\x0e\x00\x00\x05\x01\x04\x00\x00\x00\x01\x82\x84\x86\x41\x8a\x01\x10\x00\x00\x08\x01\x05\x00\x00\x00\x01\x88"))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 5 {
			return
		}
		p := newParser(probe.Conn{PID: 1})
		ctl, body := in[:5], in[5:]
		for i := 0; len(body) > 0 && i < 8; i++ {
			n := min(len(body), int(ctl[i%5])*4+1)
			b := body[:n]
			body = body[n:]
			prefix := min(len(b), int(ctl[(i+1)%5]))
			c := probe.Chunk{Dir: probe.Direction(ctl[i%5] & 1), TID: 1, Len: len(b) + int(ctl[(i+2)%5]), Data: b[:prefix]}
			for off := prefix + int(ctl[(i+3)%5]%16); off < len(b); off += 1 + int(ctl[(i+4)%5]%32) {
				end := min(len(b), off+1+int(ctl[(i+2)%5]%64))
				c.Segs = append(c.Segs, probe.Segment{Off: off - int(ctl[(i+4)%5]%3), Data: b[off:end]})
			}
			p.Feed(c)
			if len(p.streams) > maxStreams {
				t.Fatalf("%d streams", len(p.streams))
			}
		}
	})
}
