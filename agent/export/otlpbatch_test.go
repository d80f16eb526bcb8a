package export

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/tracer-agent/tracer-agent/probes/probe"
)

var services = lookupTable(map[uint32]ServiceInfo{
	1: {ServiceName: "front", ExecutableName: "node"}, 2: {ServiceName: "back"}, 3: {ServiceName: "db", Command: "db -x"},
})

// collect starts a collector and points the OTLP variables at it.
func collect(t *testing.T, h http.Handler) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
}

// batcherPipeline is what --output otlp builds: the OTLP batcher.
func batcherPipeline(t *testing.T, h http.Handler) *Pipeline {
	t.Helper()
	collect(t, h)
	p, err := New(t.Context(), Config{Output: "otlp", Lookup: services})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.sink.(*otlpBatcher); !ok {
		t.Fatalf("--output otlp sink is %T", p.sink)
	}
	return p
}

// sdkPathPipeline sends through the SDK's batch processor and otlpExporter,
// as --output otlp did before the batcher.
func sdkPathPipeline(t *testing.T, h http.Handler) *Pipeline {
	t.Helper()
	collect(t, h)
	cfg, err := otlpConfigFromEnv(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	p, err := newPipeline(t.Context(), Config{Lookup: services}, newOTLPExporter(cfg, ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// viaProviders is the reference: the spans started and ended through a
// TracerProvider per process, sent by otlptracehttp in one request.
func viaProviders(t *testing.T, spans []probe.Span) ([]sdktrace.ReadOnlySpan, *collectortrace.ExportTraceServiceRequest) {
	t.Helper()
	base, err := baseResource(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	mem := tracetest.NewInMemoryExporter()
	tps := map[uint32]*sdktrace.TracerProvider{}
	for _, s := range spans {
		tp := tps[s.PID]
		if tp == nil {
			info := services(s.PID)
			info.PID = s.PID
			tp = sdktrace.NewTracerProvider(sdktrace.WithResource(processResource(base, info)),
				sdktrace.WithIDGenerator(givenIDs{}), sdktrace.WithSyncer(mem))
			tps[s.PID] = tp
		}
		viaProvider(tp.Tracer(instrumentationName), s)
	}
	ro := mem.GetSpans().Snapshots()
	if len(ro) == 0 {
		return nil, nil
	}
	col := &fakeCollector{}
	collect(t, col)
	exp, err := otlptracehttp.New(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Shutdown(t.Context())
	if err := exp.ExportSpans(t.Context(), ro); err != nil {
		t.Fatal(err)
	}
	reqs, _ := col.requests()
	return ro, reqs[0]
}

func exportAll(t *testing.T, p *Pipeline, spans []probe.Span) {
	t.Helper()
	for _, s := range spans {
		p.Export(s)
	}
	shutdown(t, p)
}

// sameAsProvider requires the batcher's one request to be the reference's.
func sameAsProvider(t *testing.T, spans []probe.Span, got []*collectortrace.ExportTraceServiceRequest) {
	t.Helper()
	ro, want := viaProviders(t, spans)
	if want == nil {
		if len(got) != 0 {
			t.Fatalf("%d requests, the provider sampled nothing", len(got))
		}
		return
	}
	if len(got) != 1 {
		t.Fatalf("%d requests, want 1", len(got))
	}
	checkLinkTraceStates(t, ro, got[0])
	sortResources(want)
	sortResources(got[0])
	if !proto.Equal(want, got[0]) {
		t.Fatalf("requests differ\nprovider: %v\nbatcher:  %v", want, got[0])
	}
}

// TestOTLPBatcherMatchesProvider: spans encoded on arrival make the request
// a TracerProvider per process and otlptracehttp make, whatever the
// sampler and limits.
func TestOTLPBatcherMatchesProvider(t *testing.T) {
	for _, env := range providerEnvs {
		env.set(t)
		spans := providerSpans()
		for i := range spans {
			spans[i].PID = uint32(1 + i%3)
		}
		col := &fakeCollector{}
		exportAll(t, batcherPipeline(t, col), spans)
		got, _ := col.requests()
		sameAsProvider(t, spans, got)
	}
}

// TestOTLPBatcherRandomSpans: random probe spans give the bytes the SDK
// path gave (batch processor, ReadOnlySpans, otlpEncoder), request by
// request, and the request a provider and otlptracehttp give (for the
// attribute types a provider keeps as they are).
func TestOTLPBatcherRandomSpans(t *testing.T) {
	scalar := newRandGen(scalarValueKinds)
	every := randGen{rng: scalar.rng, kinds: allValueKinds}
	for round := range 40 {
		g, typed := scalar, round%4 != 3
		if !typed {
			g = every
		}
		limits := round%3 == 2
		t.Setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", map[bool]string{true: "5"}[limits])
		t.Setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", map[bool]string{true: "10"}[limits])
		t.Setenv("OTEL_SPAN_LINK_COUNT_LIMIT", map[bool]string{true: "1"}[limits])
		batched := round%2 == 1
		t.Setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", map[bool]string{true: "7"}[batched])
		spans := make([]probe.Span, g.rng.IntN(40))
		for i := range spans {
			spans[i] = g.probeSpan()
		}

		ours, before := &fakeCollector{}, &fakeCollector{}
		exportAll(t, batcherPipeline(t, ours), spans)
		exportAll(t, sdkPathPipeline(t, before), spans)
		if len(ours.bodies) != len(before.bodies) {
			t.Fatalf("round %d: %d requests, SDK path %d", round, len(ours.bodies), len(before.bodies))
		}
		for i := range ours.bodies {
			if !bytes.Equal(ours.bodies[i], before.bodies[i]) {
				t.Fatalf("round %d: request %d differs from the SDK path's", round, i)
			}
		}
		if !batched && typed {
			got, _ := ours.requests()
			sameAsProvider(t, spans, got)
		}
	}
}

// probeSpan is a random span of process 1–3 with its own ids (a provider
// takes them from givenIDs), maybe a parent in its trace or another, maybe
// an end before its start, links valid or not.
func (g randGen) probeSpan() probe.Span {
	rng := g.rng
	s := probe.Span{
		PID: uint32(1 + rng.IntN(3)), Kind: trace.SpanKind(rng.IntN(7)), Name: g.str(),
		Start:       time.Unix(1_790_000_000+rng.Int64N(1e6), rng.Int64N(1e9)),
		Attrs:       g.attrs(),
		Error:       rng.IntN(4) == 0,
		SpanContext: g.ids(),
	}
	if s.Error {
		s.StatusMessage = g.str()
	}
	s.End = s.Start.Add(time.Duration(rng.Int64N(2e9) - 5e8))
	switch rng.IntN(3) {
	case 1:
		p := g.ids()
		s.Parent = trace.NewSpanContext(trace.SpanContextConfig{TraceID: s.SpanContext.TraceID(), SpanID: p.SpanID(),
			TraceFlags: p.TraceFlags(), TraceState: p.TraceState(), Remote: p.IsRemote()})
	case 2:
		s.Parent = g.ids()
	}
	for range rng.IntN(3) {
		if rng.IntN(4) == 0 {
			s.Links = append(s.Links, trace.SpanContext{})
		} else {
			s.Links = append(s.Links, g.ids())
		}
	}
	return s
}

func exportN(p *Pipeline, n int, name string) {
	for i := range n {
		p.Export(probe.Span{PID: 1, Name: fmt.Sprintf("%s-%d", name, i), Start: t0, End: t0})
	}
}

// resourceService is the service.name of an exported resource.
func resourceService(rs *tracepb.ResourceSpans) string {
	for _, kv := range rs.Resource.Attributes {
		if kv.Key == string(semconv.ServiceNameKey) {
			return kv.Value.GetStringValue()
		}
	}
	return ""
}

// spanCount is how many spans the requests hold.
func spanCount(reqs []*collectortrace.ExportTraceServiceRequest) []int {
	var out []int
	for _, r := range reqs {
		n := 0
		for _, rs := range r.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				n += len(ss.Spans)
			}
		}
		out = append(out, n)
	}
	return out
}

func waitFor(t *testing.T, what string, done func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !done(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (f *fakeCollector) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

// TestOTLPBatcherBatches: a request per OTEL_BSP_MAX_EXPORT_BATCH_SIZE
// spans at once, the rest after OTEL_BSP_SCHEDULE_DELAY or at shutdown.
func TestOTLPBatcherBatches(t *testing.T) {
	t.Setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "3")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "3600000")
	col := &fakeCollector{}
	p := batcherPipeline(t, col)
	exportN(p, 7, "s")
	waitFor(t, "two full batches", func() bool { return col.count() == 2 })
	shutdown(t, p)
	got, _ := col.requests()
	if n := spanCount(got); !reflect.DeepEqual(n, []int{3, 3, 1}) {
		t.Errorf("spans per request %v, want [3 3 1]", n)
	}
	if st := p.Stats(); st.Exported != 7 || st.Sent != 7 || st.QueueFull != 0 {
		t.Errorf("stats %+v", st)
	}

	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
	p = batcherPipeline(t, col)
	exportN(p, 2, "t")
	waitFor(t, "the partial batch after the delay", func() bool { return col.count() == 1 })
	shutdown(t, p)
}

// blockingCollector holds every request until release is closed.
type blockingCollector struct {
	fakeCollector
	entered chan struct{}
	release chan struct{}
}

func (b *blockingCollector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	select {
	case b.entered <- struct{}{}:
	default:
	}
	select {
	case <-b.release:
	case <-r.Context().Done():
		return
	}
	b.fakeCollector.ServeHTTP(w, r)
}

// TestOTLPBatcherQueueFull: while a request hangs, OTEL_BSP_MAX_QUEUE_SIZE
// spans wait and the others are dropped and counted, without blocking.
func TestOTLPBatcherQueueFull(t *testing.T) {
	t.Setenv("OTEL_BSP_MAX_QUEUE_SIZE", "4")
	t.Setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2")
	col := &blockingCollector{entered: make(chan struct{}, 1), release: make(chan struct{})}
	p := batcherPipeline(t, col)
	exportN(p, 2, "first") // a full batch: sent, and held by the collector
	<-col.entered
	start := time.Now()
	exportN(p, 10, "more")
	if d := time.Since(start); d > time.Second {
		t.Errorf("Export blocked for %v", d)
	}
	if st := p.Stats(); st.QueueFull != 6 || st.Exported != 12 {
		t.Errorf("stats %+v, want 6 dropped of 12", st)
	}
	close(col.release)
	shutdown(t, p)
	got, _ := col.requests()
	if n := spanCount(got); !reflect.DeepEqual(n, []int{2, 2, 2}) {
		t.Errorf("spans per request %v, want [2 2 2]", n)
	}
	if st := p.Stats(); st.Sent != 6 || st.ExportFailed != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestOTLPBatcherExportTimeout: a request that outlives
// OTEL_BSP_EXPORT_TIMEOUT fails, and its spans are counted as failed.
func TestOTLPBatcherExportTimeout(t *testing.T) {
	t.Setenv("OTEL_BSP_EXPORT_TIMEOUT", "200")
	col := &blockingCollector{entered: make(chan struct{}, 1), release: make(chan struct{})}
	defer close(col.release)
	p := batcherPipeline(t, col)
	exportN(p, 3, "s")
	start := time.Now()
	shutdown(t, p)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown took %v", d)
	}
	if st := p.Stats(); st.ExportFailed != 3 || st.Sent != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestOTLPBatcherShutdownDeadline: Shutdown returns at its deadline and
// aborts the request in flight.
func TestOTLPBatcherShutdownDeadline(t *testing.T) {
	col := &blockingCollector{entered: make(chan struct{}, 1), release: make(chan struct{})}
	defer close(col.release)
	p := batcherPipeline(t, col)
	exportN(p, 1, "s")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := p.Shutdown(ctx); err != context.DeadlineExceeded {
		t.Errorf("shutdown: %v", err)
	}
	b := p.sink.(*otlpBatcher)
	select {
	case <-b.done:
	case <-time.After(5 * time.Second):
		t.Fatal("sender still running after shutdown aborted it")
	}
	if st := p.Stats(); st.ExportFailed != 1 {
		t.Errorf("stats %+v", st)
	}
	p.Export(probe.Span{PID: 1, Name: "late"}) // ignored, no panic
}

// TestBSPConfigMatchesSDK: the batcher reads OTEL_BSP_* into the values the
// SDK's processor ends up with (as newPipeline builds it).
func TestBSPConfigMatchesSDK(t *testing.T) {
	for _, env := range []map[string]string{
		{},
		{"OTEL_BSP_MAX_QUEUE_SIZE": "100"},
		{"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "1000"},
		{"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "4000"},
		{"OTEL_BSP_MAX_QUEUE_SIZE": "100", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "200"},
		{"OTEL_BSP_MAX_QUEUE_SIZE": "10000", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "3000"},
		{"OTEL_BSP_SCHEDULE_DELAY": "50", "OTEL_BSP_EXPORT_TIMEOUT": "0"},
		{"OTEL_BSP_SCHEDULE_DELAY": "x", "OTEL_BSP_EXPORT_TIMEOUT": "1.5", "OTEL_BSP_MAX_QUEUE_SIZE": " 7"},
	} {
		for _, k := range []string{"OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_EXPORT_TIMEOUT"} {
			t.Setenv(k, env[k])
		}
		proc := sdktrace.NewBatchSpanProcessor(tracetest.NewInMemoryExporter(), sdkBatchOptions()...)
		o := reflect.ValueOf(proc).Elem().FieldByName("o")
		want := bspConfig{
			maxQueue:      int(o.FieldByName("MaxQueueSize").Int()),
			maxBatch:      int(o.FieldByName("MaxExportBatchSize").Int()),
			delay:         time.Duration(o.FieldByName("BatchTimeout").Int()),
			exportTimeout: time.Duration(o.FieldByName("ExportTimeout").Int()),
		}
		_ = proc.Shutdown(t.Context())
		if got := bspConfigFromEnv(os.Getenv); got != want {
			t.Errorf("%v: %+v, SDK %+v", env, got, want)
		}
	}
}

// TestOTLPBatcherConcurrent is meant for -race: spans of many processes,
// forgets and stats at once; every span arrives under its own service.
func TestOTLPBatcherConcurrent(t *testing.T) {
	t.Setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "50")
	col := &fakeCollector{}
	collect(t, col)
	p, err := New(t.Context(), Config{Output: "otlp", Lookup: func(pid uint32) ServiceInfo {
		return ServiceInfo{ServiceName: fmt.Sprint("svc-", pid)}
	}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				pid := uint32(g*10 + i%5)
				p.Export(probe.Span{PID: pid, Name: fmt.Sprint("svc-", pid), Start: t0, End: t0})
				if i%50 == 0 {
					p.ForgetProcess(pid)
					_ = p.Stats()
				}
			}
		})
	}
	wg.Wait()
	shutdown(t, p)
	got, _ := col.requests()
	n := 0
	for _, r := range got {
		for _, rs := range r.ResourceSpans {
			svc := resourceService(rs)
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					n++
					if s.Name != svc {
						t.Fatalf("span %q under service %q", s.Name, svc)
					}
				}
			}
		}
	}
	if st := p.Stats(); n != 1600 || st.Sent != 1600 {
		t.Errorf("received %d spans, stats %+v", n, st)
	}
}

// BenchmarkExportOTLP is Pipeline.Export of the OTLP protobuf output per
// span (decide, encode into the batch) plus its share of the sender's
// work, to a local endpoint that discards the body.
func BenchmarkExportOTLP(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	b.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	b.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	p, err := New(context.Background(), Config{Output: "otlp", Lookup: services})
	if err != nil {
		b.Fatal(err)
	}
	s := probe.Span{PID: 1, Kind: trace.SpanKindServer, Name: "GET /users/{id}", Start: t0, End: t0.Add(time.Millisecond),
		Attrs: httpServerAttrs, SpanContext: sc(tid(1), sid(1), false), Parent: sc(tid(1), sid(0), true)}
	b.ReportAllocs()
	for b.Loop() {
		p.Export(s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		b.Fatal(err)
	}
	if st := p.Stats(); st.Sent != st.Exported || st.QueueFull != 0 {
		b.Fatalf("stats %+v", st)
	}
}
