package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/tracer-agent/tracer-agent/internal/otlptest"
)

// TestGRPCAndH2C: a grpc-go server and client (both traced, picked up at
// exec) give SERVER and CLIENT spans named after the method with the gRPC
// status; curl --http2-prior-knowledge against an h2c server gives an
// HTTP/2 SERVER span.
func TestGRPCAndH2C(t *testing.T) {
	requireE2E(t)
	rcv := otlptest.Start(t)
	ag := startAgent(t, rcv, "--exe", "*/e2e-grpcapp")
	srv := start(t, []string{"OTEL_SERVICE_NAME=grpc-server"}, grpcApp, "serve")
	port := portOf(t, srv)
	h2 := start(t, []string{"OTEL_SERVICE_NAME=h2c-server"}, grpcApp, "h2c")
	h2port := portOf(t, h2)
	run(t, []string{"OTEL_SERVICE_NAME=grpc-client"}, grpcApp, "call", "127.0.0.1:"+strconv.Itoa(port), "3")
	if out := curl(t, "--http2-prior-knowledge", "http://127.0.0.1:"+strconv.Itoa(h2port)+"/users/12"); !strings.Contains(out, "HTTP/2.0") {
		t.Fatalf("h2c answer %q", out)
	}
	const method = "grpc.health.v1.Health/Check"
	spans := rcv.WaitFor(t, 20*time.Second, "3 gRPC server and client spans and an h2c span", func(s []otlptest.Span) bool {
		return len(named(s, "grpc-server", method)) >= 3 && len(named(s, "grpc-client", method)) >= 3 && len(serverSpans(s, "h2c-server")) >= 1
	})
	ag.stop(t)
	for _, s := range append(named(spans, "grpc-server", method), named(spans, "grpc-client", method)...) {
		want := tracepb.Span_SPAN_KIND_SERVER
		if s.Service == "grpc-client" {
			want = tracepb.Span_SPAN_KIND_CLIENT
		}
		if s.Kind != want {
			t.Errorf("%s %q kind %v", s.Service, s.Name, s.Kind)
		}
		wantAttr(t, s, "rpc.system.name", "grpc")
		wantAttr(t, s, "rpc.method", method)
		wantAttr(t, s, "rpc.response.status_code", "OK")
	}
	h := serverSpans(spans, "h2c-server")[0]
	wantAttr(t, h, "network.protocol.version", "2")
	if h.Name != "GET /users/{id}" {
		t.Errorf("h2c span name %q", h.Name)
	}
}

func named(spans []otlptest.Span, service, name string) []otlptest.Span {
	return otlptest.Filter(spans, func(s otlptest.Span) bool { return s.Service == service && s.Name == name })
}

// TestGRPCManyStreams: grpc-go with 1, 16 and 64 calls in flight on one
// connection, each with metadata of its own (200 B, and 1500 B: HEADERS
// blocks past the captured prefix of 32 KiB reads and writes, the HPACK
// table churning). The kernel's header segments (bpf/h2_seg.h) keep every
// block: one SERVER and one CLIENT span per call, every one named after
// the method with its status, no span id twice, and every link a server
// span has goes to a client span of its trace.
func TestGRPCManyStreams(t *testing.T) {
	requireE2E(t)
	for _, pad := range []int{200, 1500} {
		for _, inflight := range []int{1, 16, 64} {
			t.Run(fmt.Sprintf("pad%d/inflight%d", pad, inflight), func(t *testing.T) {
				calls := 100 + 30*inflight
				rcv := otlptest.Start(t)
				ag := startAgent(t, rcv, "--exe", "*/e2e-grpcapp")
				srv := start(t, []string{"OTEL_SERVICE_NAME=grpc-server"}, grpcApp, "serve")
				addr := "127.0.0.1:" + strconv.Itoa(portOf(t, srv))
				run(t, []string{"OTEL_SERVICE_NAME=grpc-client"}, grpcApp, "load", addr,
					strconv.Itoa(inflight), strconv.Itoa(calls), strconv.Itoa(pad))
				const method = "grpc.health.v1.Health/Check"
				grpcSpans := func(s []otlptest.Span) []otlptest.Span {
					return otlptest.Filter(s, func(s otlptest.Span) bool { return strings.HasPrefix(s.Service, "grpc-") })
				}
				spans := rcv.WaitFor(t, 30*time.Second, "a server and a client span per call", func(s []otlptest.Span) bool {
					return len(grpcSpans(s)) >= 2*calls
				})
				time.Sleep(500 * time.Millisecond) // anything extra would show now
				ag.stop(t)
				spans = grpcSpans(rcv.Spans())
				if n, m := len(named(spans, "grpc-server", method)), len(named(spans, "grpc-client", method)); n != calls || m != calls || len(spans) != 2*calls {
					t.Fatalf("%d server and %d client spans named %s of %d spans, want %d each", n, m, method, len(spans), calls)
				}
				byID := map[string]otlptest.Span{}
				for _, s := range spans {
					if _, dup := byID[s.SpanID]; dup {
						t.Errorf("span id %s twice", s.SpanID)
					}
					byID[s.SpanID] = s
					wantAttr(t, s, "rpc.response.status_code", "OK")
				}
				linked := 0
				for _, s := range named(spans, "grpc-server", method) {
					if s.ParentID == "" {
						continue
					}
					p, ok := byID[s.ParentID]
					if !ok || p.Service != "grpc-client" || p.TraceID != s.TraceID {
						t.Errorf("server span %s: parent %s is not a client span of its trace", s.SpanID, s.ParentID)
					}
					linked++
				}
				t.Logf("%d calls: %d server spans linked to their client span (up to 256 HEADERS per write get a traceparent; blocks over 1 KiB none)", calls, linked)
			})
		}
	}
}
