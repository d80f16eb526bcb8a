package export

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"

	"github.com/tracer-agent/tracer-agent/internal/otlptest"
	"github.com/tracer-agent/tracer-agent/probes/probe"
)

// fakeCollector is an OTLP/HTTP endpoint that keeps the decoded requests,
// their headers and bodies as sent.
type fakeCollector struct {
	mu      sync.Mutex
	reqs    []*collectortrace.ExportTraceServiceRequest
	headers []http.Header
	bodies  [][]byte
}

func (f *fakeCollector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	req, code, err := otlptest.ReadExport(r)
	if err != nil {
		http.Error(w, err.Error(), code)
		return
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.headers = append(f.headers, r.Header.Clone())
	f.bodies = append(f.bodies, body)
	f.mu.Unlock()
	otlptest.WriteExportResponse(w)
}

// requests returns what was received so far and forgets it.
func (f *fakeCollector) requests() ([]*collectortrace.ExportTraceServiceRequest, []http.Header) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, h := f.reqs, f.headers
	f.reqs, f.headers, f.bodies = nil, nil, nil
	return r, h
}

func TestOTLPHTTPExport(t *testing.T) {
	col := &fakeCollector{}
	srv := httptest.NewServer(col)
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")

	p, err := New(t.Context(), Config{Output: "auto", Version: "0.1.0", Lookup: lookupTable(map[uint32]ServiceInfo{
		1: {ServiceName: "frontend"}, 2: {ServiceName: "backend"},
	})})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Unix(1700000000, 123456789)
	p.Export(probe.Span{PID: 1, Kind: trace.SpanKindServer, Name: "GET /a", Start: start, End: start.Add(time.Millisecond),
		Attrs:       []attribute.KeyValue{semconv.HTTPRoute("/a")},
		SpanContext: sc(tid(1), sid(1), false)})
	p.Export(probe.Span{PID: 2, Kind: trace.SpanKindServer, Name: "GET /b", Start: start, End: start.Add(time.Microsecond),
		SpanContext: sc(tid(1), sid(2), false), Parent: sc(tid(1), sid(1), true)})
	shutdown(t, p) // must flush the 5s batch immediately

	got := map[string]string{} // span name → service.name
	col.mu.Lock()
	defer col.mu.Unlock()
	for _, req := range col.reqs {
		for _, rs := range req.ResourceSpans {
			svc := resourceService(rs)
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					got[s.Name] = svc
					switch s.Name {
					case "GET /a":
						if trace.TraceID(s.TraceId) != tid(1) || trace.SpanID(s.SpanId) != sid(1) || len(s.ParentSpanId) != 0 {
							t.Errorf("a ids: %x %x parent %x", s.TraceId, s.SpanId, s.ParentSpanId)
						}
						if s.StartTimeUnixNano != uint64(start.UnixNano()) || s.EndTimeUnixNano != uint64(start.Add(time.Millisecond).UnixNano()) {
							t.Errorf("a times: %d..%d", s.StartTimeUnixNano, s.EndTimeUnixNano)
						}
					case "GET /b":
						if trace.SpanID(s.SpanId) != sid(2) || trace.SpanID(s.ParentSpanId) != sid(1) {
							t.Errorf("b ids: %x parent %x", s.SpanId, s.ParentSpanId)
						}
					}
				}
			}
		}
	}
	if got["GET /a"] != "frontend" || got["GET /b"] != "backend" {
		t.Errorf("received %v", got)
	}
	if st := p.Stats(); st.Sent != 2 || st.ExportFailed != 0 {
		t.Errorf("stats = %+v", st)
	}
}
