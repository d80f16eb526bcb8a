// Package otlptest is an in-test OTLP/HTTP trace receiver: it decodes the
// protobuf requests an exporter sends to /v1/traces and keeps the spans in
// a flat, assertion-friendly form.
package otlptest

import (
	"compress/gzip"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Span is one received span with its resource flattened in.
type Span struct {
	Service       string
	Resource      map[string]any
	TraceID       string // hex
	SpanID        string // hex
	ParentID      string // hex, "" for roots
	Name          string
	Kind          tracepb.Span_SpanKind
	Start, End    time.Time
	Attrs         map[string]any
	StatusCode    tracepb.Status_StatusCode
	StatusMessage string
}

// Duration is End - Start.
func (s Span) Duration() time.Duration { return s.End.Sub(s.Start) }

// Contains reports whether o lies within s in time.
func (s Span) Contains(o Span) bool { return s.ContainsWithin(o, 0) }

// ContainsWithin is Contains allowing o to stick out by slack at either
// end: spans of two processes are timed at syscall exits on different CPUs,
// and a reader may return from read() a few microseconds before the writer
// returns from write().
func (s Span) ContainsWithin(o Span, slack time.Duration) bool {
	return !o.Start.Before(s.Start.Add(-slack)) && !o.End.After(s.End.Add(slack))
}

func (s Span) String() string {
	return fmt.Sprintf("%s %s %q trace=%s span=%s parent=%s attrs=%v", s.Service, s.Kind, s.Name, s.TraceID, s.SpanID, s.ParentID, s.Attrs)
}

// Receiver is a running OTLP/HTTP endpoint.
type Receiver struct {
	srv      *httptest.Server
	mu       sync.Mutex
	spans    []Span
	requests int
}

// Start starts a receiver, stopped at the end of the test.
func Start(t testing.TB) *Receiver {
	r := &Receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(r.handle))
	t.Cleanup(r.srv.Close)
	return r
}

// Endpoint is the base URL for OTEL_EXPORTER_OTLP_ENDPOINT.
func (r *Receiver) Endpoint() string { return r.srv.URL }

// Env returns the environment an exporter needs to reach this receiver.
func (r *Receiver) Env() []string {
	return []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + r.srv.URL,
		"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_BSP_SCHEDULE_DELAY=200",
	}
}

func (r *Receiver) handle(w http.ResponseWriter, req *http.Request) {
	msg, code, err := ReadExport(req)
	if err != nil {
		http.Error(w, err.Error(), code)
		return
	}
	spans := flatten(msg)
	r.mu.Lock()
	r.spans = append(r.spans, spans...)
	r.requests++
	r.mu.Unlock()
	WriteExportResponse(w)
}

// ReadExport decodes an OTLP/HTTP protobuf trace export request (gzip or
// not); on error it also returns the HTTP status to answer with. Shared
// with the bench's span-counting receiver.
func ReadExport(req *http.Request) (*collectortrace.ExportTraceServiceRequest, int, error) {
	if req.URL.Path != "/v1/traces" || req.Method != http.MethodPost {
		return nil, http.StatusNotFound, errors.New("not found")
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			return nil, http.StatusBadRequest, err
		}
		body = zr
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		return nil, http.StatusBadRequest, err
	}
	var msg collectortrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(raw, &msg); err != nil {
		return nil, http.StatusBadRequest, err
	}
	return &msg, http.StatusOK, nil
}

// WriteExportResponse answers an export request with success.
func WriteExportResponse(w http.ResponseWriter) {
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func flatten(msg *collectortrace.ExportTraceServiceRequest) []Span {
	var out []Span
	for _, rs := range msg.GetResourceSpans() {
		res := attrMap(rs.GetResource().GetAttributes())
		svc, _ := res["service.name"].(string)
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				sp := Span{
					Service:       svc,
					Resource:      res,
					TraceID:       hex.EncodeToString(s.GetTraceId()),
					SpanID:        hex.EncodeToString(s.GetSpanId()),
					Name:          s.GetName(),
					Kind:          s.GetKind(),
					Start:         time.Unix(0, int64(s.GetStartTimeUnixNano())),
					End:           time.Unix(0, int64(s.GetEndTimeUnixNano())),
					Attrs:         attrMap(s.GetAttributes()),
					StatusCode:    s.GetStatus().GetCode(),
					StatusMessage: s.GetStatus().GetMessage(),
				}
				if len(s.GetParentSpanId()) > 0 {
					sp.ParentID = hex.EncodeToString(s.GetParentSpanId())
				}
				out = append(out, sp)
			}
		}
	}
	return out
}

func attrMap(kvs []*commonpb.KeyValue) map[string]any {
	m := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		m[kv.GetKey()] = value(kv.GetValue())
	}
	return m
}

func value(v *commonpb.AnyValue) any {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	case *commonpb.AnyValue_DoubleValue:
		return x.DoubleValue
	case *commonpb.AnyValue_ArrayValue:
		var out []any
		for _, e := range x.ArrayValue.GetValues() {
			out = append(out, value(e))
		}
		return out
	default:
		return nil
	}
}

// Spans returns a copy of everything received so far, ordered by start.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	out := append([]Span(nil), r.spans...)
	r.mu.Unlock()
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}

// Reset forgets the spans received so far.
func (r *Receiver) Reset() {
	r.mu.Lock()
	r.spans = nil
	r.mu.Unlock()
}

// WaitFor polls until done(spans) holds or the timeout passes; on timeout
// the test fails and the received spans are dumped.
func (r *Receiver) WaitFor(t testing.TB, timeout time.Duration, what string, done func([]Span) bool) []Span {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		spans := r.Spans()
		if done(spans) {
			return spans
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; received %d spans:\n%s", timeout, what, len(spans), Dump(spans))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Dump renders spans one per line for failure messages.
func Dump(spans []Span) string {
	var b strings.Builder
	for _, s := range spans {
		b.WriteString("  ")
		b.WriteString(s.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// Filter returns the spans for which keep holds.
func Filter(spans []Span, keep func(Span) bool) []Span {
	var out []Span
	for _, s := range spans {
		if keep(s) {
			out = append(out, s)
		}
	}
	return out
}
