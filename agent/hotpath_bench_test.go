package agent

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/tracer-agent/tracer-agent/agent/conntrack"
	"github.com/tracer-agent/tracer-agent/agent/export"
	"github.com/tracer-agent/tracer-agent/probes/probe"
)

// BenchmarkHotPath is the agent's user-space cost per traced request of
// the bench's go workload (front SERVER span, its CLIENT call on a fresh
// connection, back SERVER span): chunks → conntrack → HTTP probe → export
// over OTLP/HTTP to a local endpoint that discards the body. cpu-µs/span
// is process CPU (all goroutines: parsing, SDK, batching, encoding, GC)
// divided by spans, the number make bench calls "agent CPU µs/span".
func BenchmarkHotPath(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	b.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	b.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")

	pipe, err := export.New(context.Background(), export.Config{
		Output: "otlp",
		Lookup: func(pid uint32) export.ServiceInfo {
			return export.ServiceInfo{PID: pid, ServiceName: fmt.Sprintf("svc-%d", pid), ExecutableName: "goserver"}
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	exported := 0
	conns := conntrack.New(probes(Config{}), maxConns, func(s probe.Span) { exported++; pipe.Export(s) })
	w := newRequestWorkload()

	b.ReportAllocs()
	cpu0 := processCPU()
	for b.Loop() {
		w.request(conns)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := pipe.Shutdown(ctx); err != nil {
		b.Fatal(err)
	}
	cpu := processCPU() - cpu0
	if st := pipe.Stats(); int(st.Sent) != exported || exported != 3*b.N {
		b.Fatalf("sent %d of %d spans, want %d", st.Sent, exported, 3*b.N)
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(exported), "cpu-µs/span")
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// requestWorkload replays what the kernel reports for one request of the
// bench's go workload, with the kernel-chosen trace contexts.
type requestWorkload struct {
	front, back    probe.Conn // front's accepted keep-alive conn; back's template
	out            probe.Conn // front's outbound conn template
	n              uint64
	frontReq       []byte
	outReq         []byte
	backResp       []byte
	frontResp      []byte
	now            time.Time
	traceID        trace.TraceID
	srvSpan, cliSp trace.SpanID
}

func newRequestWorkload() *requestWorkload {
	lo := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port) }
	w := &requestWorkload{
		front: probe.Conn{PID: 100, FD: 7, ID: 0xffff0001, Local: lo(8080), Remote: lo(40000)},
		out:   probe.Conn{PID: 100, FD: 9, Local: lo(50000), Remote: lo(9090)},
		back:  probe.Conn{PID: 200, FD: 8, Local: lo(9090), Remote: lo(50000)},
		frontReq: []byte("GET /call?url=http://127.0.0.1:9090/users/1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n" +
			"User-Agent: wrk\r\n\r\n"),
		outReq: []byte("GET /users/1 HTTP/1.1\r\nHost: 127.0.0.1:9090\r\nUser-Agent: Go-http-client/1.1\r\n" +
			"Traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\nAccept-Encoding: gzip\r\n\r\n"),
		backResp:  []byte("HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Type: text/plain; charset=utf-8\r\nDate: Wed, 26 Nov 2026 00:00:00 GMT\r\n\r\nuser 1\n"),
		frontResp: []byte("HTTP/1.1 200 OK\r\nContent-Length: 20\r\nContent-Type: text/plain; charset=utf-8\r\nDate: Wed, 26 Nov 2026 00:00:00 GMT\r\n\r\ndownstream said 200\n"),
		now:       time.Unix(1_790_000_000, 0),
	}
	return w
}

func (w *requestWorkload) sc(span uint64, remote bool) trace.SpanContext {
	var sid trace.SpanID
	for i := range 8 {
		sid[i] = byte(span >> (8 * i))
	}
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: w.traceID, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: remote})
}

func (w *requestWorkload) chunk(dir probe.Direction, tid uint32, data []byte, ctx, parent trace.SpanContext) probe.Chunk {
	w.now = w.now.Add(20 * time.Microsecond)
	return probe.Chunk{Dir: dir, TID: tid, Start: w.now, End: w.now.Add(5 * time.Microsecond), Len: len(data), Data: data, Ctx: ctx, Parent: parent}
}

func (w *requestWorkload) request(t *conntrack.Tracker) {
	w.n++
	w.traceID[0], w.traceID[8] = byte(w.n), byte(w.n>>8)
	w.traceID[15] = 1
	srv, cli, back := w.sc(3*w.n+1, false), w.sc(3*w.n+2, false), w.sc(3*w.n+3, false)
	out, bk := w.out, w.back
	out.ID, bk.ID = 0x1_0000_0000+2*w.n, 0x1_0000_0001+2*w.n
	t.Data(w.front, w.chunk(probe.Recv, 101, w.frontReq, srv, trace.SpanContext{}))
	t.Data(out, w.chunk(probe.Send, 102, w.outReq, cli, srv))
	t.Data(bk, w.chunk(probe.Recv, 201, w.outReq, back, cli.WithRemote(true)))
	t.Data(bk, w.chunk(probe.Send, 201, w.backResp, trace.SpanContext{}, trace.SpanContext{}))
	t.Data(out, w.chunk(probe.Recv, 103, w.backResp, trace.SpanContext{}, trace.SpanContext{}))
	t.Data(w.front, w.chunk(probe.Send, 101, w.frontResp, trace.SpanContext{}, trace.SpanContext{}))
	t.Closed(out.PID, out.ID, w.now)
	t.Closed(bk.PID, bk.ID, w.now)
}
