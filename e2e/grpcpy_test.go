package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/tracer-agent/tracer-agent/internal/otlptest"
	"github.com/tracer-agent/tracer-agent/internal/testenv"
)

// rpcWant is the spans one service must have for one method and status.
type rpcWant struct {
	service string
	method  string // rpc.method; the span name unless "_OTHER"
	code    string // rpc.response.status_code
	err     bool   // span status ERROR
	n       int
}

// TestGRPCPython traces Python grpcio (C-core, no generated code) as server
// and client, and across languages with grpc-go: unary and server-streaming
// calls, OK and non-OK statuses, an unknown method, a deadline, and an
// incoming traceparent sent as metadata.
func TestGRPCPython(t *testing.T) {
	requireE2E(t)
	py := testenv.RequireCommand(t, "/usr/bin/python3")
	run(t, nil, py, "-c", "import grpc") // python3-grpcio: fails, never skips
	rcv := otlptest.Start(t)
	ag := startAgent(t, rcv, "--exe", "grpcpy.py", "--exe", "*/e2e-grpcapp")
	pySrv := start(t, []string{"OTEL_SERVICE_NAME=py-server"}, py, "testdata/grpcpy.py", "serve")
	pyAddr := "127.0.0.1:" + strconv.Itoa(portOf(t, pySrv))
	goSrv := start(t, []string{"OTEL_SERVICE_NAME=go-server"}, grpcApp, "serve")
	goAddr := "127.0.0.1:" + strconv.Itoa(portOf(t, goSrv))

	out := run(t, []string{"OTEL_SERVICE_NAME=py-client"}, py, "testdata/grpcpy.py", "call", pyAddr)
	wantLines(t, out, "demo.Echo/Unary OK", "demo.Echo/Stream OK", "demo.Echo/Fail NOT_FOUND",
		"demo.Echo/Crash UNKNOWN", "demo.Echo/Missing UNIMPLEMENTED")
	out = run(t, []string{"OTEL_SERVICE_NAME=py-goclient"}, py, "testdata/grpcpy.py", "callgo", goAddr)
	wantLines(t, out, "grpc.health.v1.Health/Check OK", "grpc.health.v1.Health/Check NOT_FOUND")
	// At the deadline both ends cancel the stream (RST_STREAM CANCEL); the
	// client says CANCELLED when grpc-go's cancel beat its own timer. The
	// spans say DEADLINE_EXCEEDED either way (the timeout had passed).
	if !strings.Contains(out, "Health/Watch DEADLINE_EXCEEDED\n") {
		wantLines(t, out, "grpc.health.v1.Health/Watch CANCELLED")
	}
	run(t, []string{"OTEL_SERVICE_NAME=go-client"}, grpcApp, "call", pyAddr, "2")

	const check, watch = "grpc.health.v1.Health/Check", "grpc.health.v1.Health/Watch"
	wants := []rpcWant{
		// Python → Python. Semconv: a server span is an error only for
		// server-side codes; a client span for every non-OK code.
		{"py-server", "demo.Echo/Unary", "OK", false, 2},
		{"py-server", "demo.Echo/Stream", "OK", false, 1},
		{"py-server", "demo.Echo/Fail", "NOT_FOUND", false, 1},
		{"py-server", "demo.Echo/Crash", "UNKNOWN", true, 1},
		{"py-server", "_OTHER", "UNIMPLEMENTED", true, 1},
		{"py-client", "demo.Echo/Unary", "OK", false, 2},
		{"py-client", "demo.Echo/Stream", "OK", false, 1},
		{"py-client", "demo.Echo/Fail", "NOT_FOUND", true, 1},
		{"py-client", "demo.Echo/Crash", "UNKNOWN", true, 1},
		{"py-client", "_OTHER", "UNIMPLEMENTED", true, 1},
		// Python client → grpc-go server.
		{"py-goclient", check, "OK", false, 1},
		{"py-goclient", check, "NOT_FOUND", true, 1},
		{"py-goclient", watch, "DEADLINE_EXCEEDED", true, 1},
		{"go-server", check, "OK", false, 1},
		{"go-server", check, "NOT_FOUND", false, 1},
		{"go-server", watch, "DEADLINE_EXCEEDED", true, 1},
		// grpc-go client → Python server.
		{"go-client", check, "OK", false, 2},
		{"py-server", check, "OK", false, 2},
	}
	total := 0
	for _, w := range wants {
		total += w.n
	}
	spans := rcv.WaitFor(t, 30*time.Second, "every gRPC span", func(s []otlptest.Span) bool {
		return len(grpcSpans(s)) >= total
	})
	time.Sleep(500 * time.Millisecond) // duplicates would arrive too
	spans = rcv.Spans()
	ag.stop(t)
	noAgentPanic(t, ag)

	all := grpcSpans(spans)
	if len(all) != total {
		t.Errorf("%d gRPC spans, want %d:\n%s", len(all), total, otlptest.Dump(all))
	}
	for _, w := range wants {
		got := otlptest.Filter(all, func(s otlptest.Span) bool {
			return s.Service == w.service && s.Attrs["rpc.method"] == w.method && s.Attrs["rpc.response.status_code"] == w.code
		})
		if len(got) != w.n {
			t.Errorf("%s %s %s: %d spans, want %d; this service's spans:", w.service, w.method, w.code, len(got), w.n)
			for _, s := range all {
				if s.Service == w.service {
					t.Logf("  %v (%v)", s, s.Duration())
				}
			}
		}
		for _, s := range got {
			checkRPCSpan(t, s, w)
		}
	}

	// The explicit traceparent: the client span is the one it names, the
	// server span its child.
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	var cl, sv int
	for _, s := range named(all, "py-client", "demo.Echo/Unary") {
		if s.TraceID == traceID && s.SpanID == parentID {
			cl++
		}
	}
	for _, s := range named(all, "py-server", "demo.Echo/Unary") {
		if s.TraceID == traceID && s.ParentID == parentID {
			sv++
		}
	}
	if cl != 1 || sv != 1 {
		t.Errorf("traceparent %s-%s: %d client spans are it, %d server spans its children; want 1 and 1:\n%s", traceID, parentID, cl, sv, otlptest.Dump(all))
	}
}

// checkRPCSpan checks a gRPC span's name, kind, attributes and status.
func checkRPCSpan(t *testing.T, s otlptest.Span, w rpcWant) {
	t.Helper()
	wantName, wantKind := w.method, tracepb.Span_SPAN_KIND_SERVER
	if w.method == "_OTHER" {
		wantName = "grpc"
		if m, _ := s.Attrs["rpc.method_original"].(string); m != "demo.Echo/Missing" {
			t.Errorf("%v: rpc.method_original", s)
		}
	}
	if strings.HasSuffix(w.service, "client") {
		wantKind = tracepb.Span_SPAN_KIND_CLIENT
	}
	if s.Name != wantName || s.Kind != wantKind {
		t.Errorf("%v: want name %q kind %v", s, wantName, wantKind)
	}
	wantAttr(t, s, "rpc.system.name", "grpc")
	if isErr := s.StatusCode == tracepb.Status_STATUS_CODE_ERROR; isErr != w.err {
		t.Errorf("%v: span status %v, want error=%v", s, s.StatusCode, w.err)
	}
	if w.err {
		wantAttr(t, s, "error.type", w.code)
	}
	if _, ok := s.Attrs["http.request.method"]; ok {
		t.Errorf("%v: a gRPC span has HTTP attributes", s)
	}
}

func grpcSpans(spans []otlptest.Span) []otlptest.Span {
	return otlptest.Filter(spans, func(s otlptest.Span) bool { return s.Attrs["rpc.system.name"] == "grpc" })
}

// wantLines fails t unless out has each line.
func wantLines(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w+"\n") {
			t.Fatalf("output lacks %q:\n%s", w, out)
		}
	}
}
