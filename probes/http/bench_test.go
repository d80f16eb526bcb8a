package http

import (
	"fmt"
	"testing"
	"time"

	"github.com/tracer-agent/tracer-agent/probes/probe"
)

// BenchmarkParser is one client exchange of the bench's go workload per
// op: a request with traceparent and its response, on a new connection
// (the go client opens one per call) or on a keep-alive one.
func BenchmarkParser(b *testing.B) {
	req := []byte("GET /users/1 HTTP/1.1\r\nHost: 127.0.0.1:9090\r\nUser-Agent: Go-http-client/1.1\r\n" +
		"Traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\nAccept-Encoding: gzip\r\n\r\n")
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Type: text/plain; charset=utf-8\r\n" +
		"Date: Wed, 26 Nov 2026 00:00:00 GMT\r\n\r\nuser 1\n")
	t0 := time.Unix(1_790_000_000, 0)
	for _, newConn := range []bool{true, false} {
		b.Run(fmt.Sprintf("newconn=%v", newConn), func(b *testing.B) {
			pr := New(Options{})
			p := pr.NewParser(serverConn)
			spans := 0
			b.ReportAllocs()
			for b.Loop() {
				p.Feed(probe.Chunk{Dir: send, Start: t0, End: t0, Len: len(req), Data: req})
				spans += len(p.Feed(probe.Chunk{Dir: recv, Start: t0, End: t0, Len: len(resp), Data: resp}))
				if newConn {
					spans += len(p.Close(t0))
					p.(probe.Recycler).Recycle()
					p = pr.NewParser(serverConn)
				}
			}
			if spans != b.N {
				b.Fatalf("%d spans for %d exchanges", spans, b.N)
			}
		})
	}
}
