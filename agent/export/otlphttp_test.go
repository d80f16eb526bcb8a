package export

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

func TestOTLPConfigFromEnv(t *testing.T) {
	for _, tc := range []struct {
		env     map[string]string
		url     string
		headers map[string]string
		timeout time.Duration
		gzip    bool
	}{
		{env: nil, url: "https://localhost:4318/v1/traces", timeout: 10 * time.Second},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://col:4318"}, url: "http://col:4318/v1/traces"},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://col/base/"}, url: "https://col/base/v1/traces"},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://b:1/custom"}, url: "https://b:1/custom"},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b:1"}, url: "http://b:1/"},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://col", "OTEL_EXPORTER_OTLP_INSECURE": "true"}, url: "http://col/v1/traces"},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://col", "OTEL_EXPORTER_OTLP_TRACES_INSECURE": "false"}, url: "https://col/v1/traces"},
		{env: map[string]string{
			"OTEL_EXPORTER_OTLP_HEADERS": "a=1, b = x%20y ,bad key=1,novalue", "OTEL_EXPORTER_OTLP_TIMEOUT": "1500",
			"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
		}, url: "https://localhost:4318/v1/traces", headers: map[string]string{"a": "1", "b": "x y"}, timeout: 1500 * time.Millisecond, gzip: true},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "a=1", "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "b=2", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "none", "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"},
			url: "https://localhost:4318/v1/traces", headers: map[string]string{"b": "2"}},
	} {
		cfg, err := otlpConfigFromEnv(func(k string) string { return tc.env[k] })
		if err != nil {
			t.Errorf("%v: %v", tc.env, err)
			continue
		}
		if cfg.url != tc.url || cfg.gzip != tc.gzip || (tc.timeout != 0 && cfg.timeout != tc.timeout) || !sameHeaders(cfg.headers, tc.headers) {
			t.Errorf("%v: url %s gzip %v timeout %v headers %v", tc.env, cfg.url, cfg.gzip, cfg.timeout, cfg.headers)
		}
	}
	for _, bad := range []map[string]string{
		{"OTEL_EXPORTER_OTLP_ENDPOINT": "col:4318"}, // no scheme: no host
		{"OTEL_EXPORTER_OTLP_TIMEOUT": "10s"},
		{"OTEL_EXPORTER_OTLP_CERTIFICATE": "/nonexistent.pem"},
	} {
		if _, err := otlpConfigFromEnv(func(k string) string { return bad[k] }); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

func sameHeaders(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func oneSpan() []sdktrace.ReadOnlySpan {
	return tracetest.SpanStubs{{Name: "s", SpanContext: sc(tid(1), sid(1), false), Resource: resource.Empty()}}.Snapshots()
}

func testExporter(t *testing.T, h http.Handler, env map[string]string) *otlpExporter {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cfg, err := otlpConfigFromEnv(func(k string) string {
		if k == "OTEL_EXPORTER_OTLP_ENDPOINT" {
			return srv.URL
		}
		return env[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg.retry = retryConfig{initial: 10 * time.Millisecond, maxInterval: 50 * time.Millisecond, maxElapsed: 5 * time.Second}
	x := newOTLPExporter(cfg, "1.0")
	t.Cleanup(func() { _ = x.Shutdown(context.Background()) })
	return x
}

func TestOTLPExporterGzipAndHeaders(t *testing.T) {
	col := &fakeCollector{}
	x := testExporter(t, col, map[string]string{"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip", "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20t"})
	if err := x.ExportSpans(t.Context(), oneSpan()); err != nil {
		t.Fatal(err)
	}
	reqs, hdrs := col.requests()
	if len(reqs) != 1 || reqs[0].ResourceSpans[0].ScopeSpans[0].Spans[0].Name != "s" {
		t.Fatalf("received %v", reqs)
	}
	h := hdrs[0]
	if h.Get("Content-Encoding") != "gzip" || h.Get("Authorization") != "Bearer t" ||
		h.Get("Content-Type") != "application/x-protobuf" || h.Get("User-Agent") != "tracer-agent/1.0" {
		t.Errorf("headers %v", h)
	}
}

func TestOTLPExporterRetries(t *testing.T) {
	col := &fakeCollector{}
	var calls atomic.Int32
	codes := []int{http.StatusServiceUnavailable, http.StatusTooManyRequests, http.StatusBadGateway, http.StatusGatewayTimeout}
	x := testExporter(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(calls.Add(1))
		if n <= len(codes) {
			if n == 2 {
				w.Header().Set("Retry-After", "1")
			}
			http.Error(w, "later", codes[n-1])
			return
		}
		col.ServeHTTP(w, r)
	}), nil)
	start := time.Now()
	if err := x.ExportSpans(t.Context(), oneSpan()); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 5 {
		t.Errorf("%d attempts, want 5", calls.Load())
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("took %v: Retry-After: 1 not honoured", d)
	}
	if reqs, _ := col.requests(); len(reqs) != 1 {
		t.Errorf("received %d requests", len(reqs))
	}
}

func TestOTLPExporterErrors(t *testing.T) {
	var calls atomic.Int32
	x := testExporter(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "no such thing", http.StatusBadRequest)
	}), nil)
	err := x.ExportSpans(t.Context(), oneSpan())
	if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "no such thing") || calls.Load() != 1 {
		t.Errorf("400: err %v after %d attempts", err, calls.Load())
	}

	ps := testExporter(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{PartialSuccess: &collectortrace.ExportTracePartialSuccess{RejectedSpans: 3, ErrorMessage: "too old"}})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}), nil)
	if err := ps.ExportSpans(t.Context(), oneSpan()); err == nil || !strings.Contains(err.Error(), "too old (3 spans rejected)") {
		t.Errorf("partial success: %v", err)
	}
	psj := testExporter(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"partialSuccess":{"rejectedSpans":"2"}}`))
	}), nil)
	if err := psj.ExportSpans(t.Context(), oneSpan()); err == nil || !strings.Contains(err.Error(), "(2 spans rejected)") {
		t.Errorf("json partial success: %v", err)
	}

	// Retrying forever is cut by the context, and Shutdown stops exports.
	busy := testExporter(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "", http.StatusServiceUnavailable)
	}), nil)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if err := busy.ExportSpans(ctx, oneSpan()); err == nil || !strings.Contains(err.Error(), "deadline") {
		t.Errorf("busy: %v", err)
	}
	_ = busy.Shutdown(t.Context())
	if err := busy.ExportSpans(t.Context(), oneSpan()); err == nil {
		t.Error("export after shutdown succeeded")
	}
}
