package e2e

import (
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
