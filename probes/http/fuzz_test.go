package http

import (
	"reflect"
	"testing"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"github.com/tracer-agent/tracer-agent/probes/probe/probetest"
)

// FuzzParser drives a parser with arbitrary bytes (the program format of
// probetest.Fuzz), checking on top that buffers and queues stay bounded,
// and that a recycled parser, left in whatever state another program put
// it, gives exactly the spans of a new one.
func FuzzParser(f *testing.F) {
	probetest.AddCaptureSeeds(f, '<', 0) // the server sends responses
	f.Add([]byte("\x00\x13GET / HTTP/1.1\r\n\r\n\x01\x30HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\x03\x05ffff\r"))

	conn := serverConn
	f.Fuzz(func(t *testing.T, prog []byte) {
		want := runFuzz(t, new(parser).init(conn), prog)

		dirty := new(parser).init(probetest.Conn("10.9.9.9:80", "10.8.8.8:1234"))
		for _, c := range fuzzChunks(prog[len(prog)/2:]) {
			dirty.Feed(c) // no Close: reset must not rely on it
		}
		dirty.reset()
		if got := runFuzz(t, dirty.init(conn), prog); !reflect.DeepEqual(got, want) {
			t.Fatalf("recycled parser: spans\n%+v\nwant\n%+v", got, want)
		}
	})
}

// runFuzz runs prog on p with the bounds checks and returns its spans.
func runFuzz(t *testing.T, p *parser, prog []byte) []probe.Span {
	var spans []probe.Span
	probetest.Fuzz{Parsers: []probe.Parser{p}, Span: func(s probe.Span) { spans = append(spans, s) }, After: func() {
		for d := range p.streams {
			s := &p.streams[d]
			if cap(s.buf) > 2*maxHead {
				t.Fatalf("buffer grew to %d", cap(s.buf))
			}
			if p.queues[d].len() > maxPending {
				t.Fatalf("queue grew to %d", p.queues[d].len())
			}
		}
	}}.Run(t, prog)
	return spans
}

// fuzzChunks is a rough reading of a fuzz program (direction and bytes
// only), to dirty a parser.
func fuzzChunks(prog []byte) []probe.Chunk {
	var out []probe.Chunk
	for len(prog) >= 2 {
		ctl, n := prog[0], min(int(prog[1]), len(prog)-2)
		data := prog[2 : 2+n]
		prog = prog[2+n:]
		out = append(out, probe.Chunk{Dir: probe.Direction(ctl & 1), Len: n + int(ctl>>1), Data: data})
	}
	return out
}
