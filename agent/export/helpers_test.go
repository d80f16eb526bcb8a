package export

import (
	"bytes"
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// keepExporter is an in-memory exporter whose Shutdown keeps the spans, so
// tests can read them after Pipeline.Shutdown flushed.
type keepExporter struct{ *tracetest.InMemoryExporter }

func (keepExporter) Shutdown(context.Context) error { return nil }

func newMemPipeline(t *testing.T, cfg Config) (*Pipeline, *tracetest.InMemoryExporter) {
	t.Helper()
	mem := tracetest.NewInMemoryExporter()
	p, err := newPipeline(context.Background(), cfg, keepExporter{mem}, nil, sdktrace.WithBatchTimeout(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return p, mem
}

func shutdown(t *testing.T, p *Pipeline) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

func lookupTable(m map[uint32]ServiceInfo) func(uint32) ServiceInfo {
	return func(pid uint32) ServiceInfo { return m[pid] }
}

func tid(b byte) trace.TraceID {
	var t trace.TraceID
	for i := range t {
		t[i] = b + byte(i)
	}
	return t
}

func sid(b byte) trace.SpanID {
	return trace.SpanID{0, 0, 0, 0, 0, 0, 0xab, b}
}

func sc(t trace.TraceID, s trace.SpanID, remote bool) trace.SpanContext {
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: t, SpanID: s, TraceFlags: trace.FlagsSampled, Remote: remote})
}

func attrMap(kvs []attribute.KeyValue) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	return m
}

// syncBuffer is a bytes.Buffer safe for the console's ticker goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func osHostname() (string, error) { return os.Hostname() }
