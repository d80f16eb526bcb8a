package export

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// sameAsSDK exports spans through otlptracehttp and through otlpExporter,
// each to its own receiver, and requires the decoded requests to be equal
// (resource order is a map's in the SDK, so both are sorted). otlptracehttp
// drops the links' trace_state; ours must carry the input's.
func sameAsSDK(t *testing.T, spans []sdktrace.ReadOnlySpan) {
	t.Helper()
	sdkCol, ourCol := &fakeCollector{}, &fakeCollector{}
	sdkSrv, ourSrv := httptest.NewServer(sdkCol), httptest.NewServer(ourCol)
	defer sdkSrv.Close()
	defer ourSrv.Close()
	ctx := context.Background()

	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", sdkSrv.URL)
	sdkExp, err := otlptracehttp.New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer sdkExp.Shutdown(ctx)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", ourSrv.URL)
	cfg, err := otlpConfigFromEnv(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	ourExp := newOTLPExporter(cfg, "test")
	defer ourExp.Shutdown(ctx)

	for range 2 { // twice: the encoder's reused buffers must not leak state
		if err := sdkExp.ExportSpans(ctx, spans); err != nil {
			t.Fatal(err)
		}
		if err := ourExp.ExportSpans(ctx, spans); err != nil {
			t.Fatal(err)
		}
		want, _ := sdkCol.requests()
		got, _ := ourCol.requests()
		if len(want) != len(got) {
			t.Fatalf("requests: sdk %d, ours %d", len(want), len(got))
		}
		if len(want) == 0 {
			return
		}
		checkLinkTraceStates(t, spans, got[0])
		sortResources(want[0])
		sortResources(got[0])
		if !proto.Equal(want[0], got[0]) {
			t.Fatalf("requests differ\nsdk:  %v\nours: %v", want[0], got[0])
		}
	}
}

// checkLinkTraceStates compares the links' trace_state with the input's
// (spans are found by span id), then clears it for the comparison.
func checkLinkTraceStates(t *testing.T, spans []sdktrace.ReadOnlySpan, req *collectortrace.ExportTraceServiceRequest) {
	t.Helper()
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		if s != nil {
			byID[s.SpanContext().SpanID()] = s
		}
	}
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				in := byID[trace.SpanID(s.SpanId)]
				for i, l := range s.Links {
					if want := in.Links()[i].SpanContext.TraceState().String(); l.TraceState != want {
						t.Errorf("link %d trace_state %q, want %q", i, l.TraceState, want)
					}
					l.TraceState = ""
				}
			}
		}
	}
}

func sortResources(req *collectortrace.ExportTraceServiceRequest) {
	key := func(rs *tracepb.ResourceSpans) []byte {
		b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(rs.Resource)
		return append(b, rs.SchemaUrl...)
	}
	slices.SortStableFunc(req.ResourceSpans, func(a, b *tracepb.ResourceSpans) int { return bytes.Compare(key(a), key(b)) })
}

func TestOTLPEncoderMatchesSDK(t *testing.T) {
	big := strings.Repeat("é-long-value-", 2000) // > 16 KiB: 3-byte lengths up the tree
	r1 := resource.NewWithAttributes("https://opentelemetry.io/schemas/1.43.0",
		attribute.String("service.name", "front"), attribute.Int("process.pid", 42), attribute.String("host.name", big))
	r2 := resource.NewSchemaless(attribute.String("service.name", "back"))
	s1 := instrumentation.Scope{Name: "a", Version: "1.2", SchemaURL: "https://example.com/s", Attributes: attribute.NewSet(attribute.Bool("x", true))}
	s2 := instrumentation.Scope{Name: "b"}
	ts, _ := trace.ParseTraceState("vendor=v1,other=o2")
	everyType := []attribute.KeyValue{
		attribute.String("s", "v"), attribute.String("empty.s", ""), attribute.String("u", "ünïcode ✓"),
		attribute.Bool("b", true), attribute.Bool("f", false),
		attribute.Int64("i", -7), attribute.Int64("zero", 0), attribute.Int64("max", 1<<62),
		attribute.Float64("d", 3.25), attribute.Float64("dz", 0),
		attribute.BoolSlice("bs", []bool{true, false}), attribute.Int64Slice("is", []int64{1, -2, 0}),
		attribute.Float64Slice("ds", []float64{0.5, -1}), attribute.StringSlice("ss", []string{"a", "", "c"}),
		attribute.StringSlice("ss.empty", []string{}),
		attribute.ByteSlice("bytes", []byte{0, 1, 2}), attribute.ByteSlice("bytes.empty", nil),
		attribute.Slice("mixed", attribute.StringValue("x"), attribute.IntValue(1), attribute.SliceValue(attribute.BoolValue(true))),
		attribute.Map("m", attribute.String("k", "v"), attribute.Map("inner", attribute.Int("n", 1))),
		{Key: "nothing"}, // EMPTY value
		attribute.String("big", big),
	}
	start := time.Unix(1_790_000_000, 123)
	stubs := []tracetest.SpanStub{{
		Name: "GET /a", SpanKind: trace.SpanKindServer, StartTime: start, EndTime: start.Add(time.Millisecond),
		SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid(1), SpanID: sid(1), TraceFlags: trace.FlagsSampled, TraceState: ts}),
		Parent:      sc(tid(1), sid(9), true),
		Attributes:  everyType, DroppedAttributes: 3,
		Events: []sdktrace.Event{
			{Name: "exception", Time: start.Add(time.Microsecond), Attributes: everyType[:4], DroppedAttributeCount: 1},
			{Name: "", Time: time.Time{}},
		},
		DroppedEvents: 2,
		Links: []sdktrace.Link{
			{SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid(2), SpanID: sid(2), TraceState: ts, Remote: true}), Attributes: everyType[5:9], DroppedAttributeCount: 4},
			{SpanContext: sc(tid(3), sid(3), false)},
		},
		DroppedLinks: 1,
		Status:       sdktrace.Status{Code: codes.Error, Description: "boom"},
		Resource:     r1, InstrumentationScope: s1,
	}, {
		Name: "client", SpanKind: trace.SpanKindClient, StartTime: start, EndTime: start,
		SpanContext: sc(tid(1), sid(2), false), Parent: sc(tid(1), sid(1), false),
		Status:   sdktrace.Status{Code: codes.Ok},
		Resource: r1, InstrumentationScope: s2,
	}, {
		Name: "odd kind, no times, no parent", SpanKind: trace.SpanKind(42),
		SpanContext: sc(tid(4), sid(4), false), DroppedAttributes: -1,
		Resource: r2, InstrumentationScope: s1,
	}, {
		Name: "no scope", SpanKind: trace.SpanKindConsumer, StartTime: start, EndTime: start.Add(time.Hour),
		SpanContext: sc(tid(5), sid(5), false), Parent: sc(tid(5), sid(6), true),
		Resource: r2,
	}, {
		Name: "back again", SpanKind: trace.SpanKindProducer, StartTime: start,
		SpanContext: sc(tid(1), sid(7), false), Attributes: everyType[:2],
		Status:   sdktrace.Status{Code: codes.Unset, Description: "ignored by the SDK, kept by OTLP"},
		Resource: r1, InstrumentationScope: s1,
	}, {
		Name: "empty resource", SpanContext: sc(tid(6), sid(8), false), Resource: resource.Empty(),
	}}
	spans := tracetest.SpanStubs(stubs).Snapshots()
	sameAsSDK(t, append(spans, nil))
	sameAsSDK(t, nil)
	sameAsSDK(t, []sdktrace.ReadOnlySpan{nil})
}

// TestOTLPEncoderRandomSpans is a cheap property test: random batches of
// random spans must encode as the SDK encodes them.
func TestOTLPEncoderRandomSpans(t *testing.T) {
	g := newRandGen(allValueKinds)
	rng, str, attrs, ids := g.rng, g.str, g.attrs, g.ids
	resources := []*resource.Resource{nil, resource.Empty(),
		resource.NewWithAttributes("s1", attrs()...), resource.NewSchemaless(attrs()...)}
	scopes := []instrumentation.Scope{{}, {Name: "n"}, {Name: str(), Version: str(), SchemaURL: str(), Attributes: attribute.NewSet(attrs()...)}}
	for range 40 {
		stubs := make([]tracetest.SpanStub, rng.IntN(30))
		for i := range stubs {
			s := &stubs[i]
			s.Name, s.SpanKind, s.SpanContext = str(), trace.SpanKind(rng.IntN(7)), ids()
			if rng.IntN(2) == 0 {
				s.Parent = ids()
			}
			s.StartTime = time.Unix(0, rng.Int64N(1<<62))
			s.EndTime = s.StartTime.Add(time.Duration(rng.IntN(1e9)))
			s.Attributes, s.DroppedAttributes = attrs(), rng.IntN(3)
			for range rng.IntN(3) {
				s.Events = append(s.Events, sdktrace.Event{Name: str(), Time: s.StartTime, Attributes: attrs(), DroppedAttributeCount: rng.IntN(2)})
			}
			for range rng.IntN(3) {
				s.Links = append(s.Links, sdktrace.Link{SpanContext: ids(), Attributes: attrs(), DroppedAttributeCount: rng.IntN(2)})
			}
			s.DroppedEvents, s.DroppedLinks = rng.IntN(2), rng.IntN(2)
			s.Status = sdktrace.Status{Code: codes.Code(rng.IntN(3)), Description: str()}
			s.Resource, s.InstrumentationScope = resources[rng.IntN(len(resources))], scopes[rng.IntN(len(scopes))]
		}
		sameAsSDK(t, tracetest.SpanStubs(stubs).Snapshots())
	}
}

// randGen makes random strings, attributes and span contexts.
type randGen struct {
	rng   *rand.Rand
	kinds []int // the cases of value to draw from
}

var (
	allValueKinds = []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	// Those a provider keeps as they are: no byte slices, slices, maps or
	// empty values (the SDK normalises them; probes do not make them).
	scalarValueKinds = []int{0, 1, 2, 3, 4, 5, 6, 11, 11}
)

func newRandGen(kinds []int) randGen {
	seed := uint64(time.Now().UnixNano())
	return randGen{rng: rand.New(rand.NewPCG(1, seed)), kinds: kinds}
}

func (g randGen) str() string {
	b := make([]byte, g.rng.IntN(3)*g.rng.IntN(150))
	for i := range b {
		b[i] = byte(' ' + g.rng.IntN(95))
	}
	return string(b)
}

func (g randGen) value(depth int) attribute.Value {
	rng := g.rng
	switch g.kinds[rng.IntN(len(g.kinds))] {
	case 0:
		return attribute.BoolValue(rng.IntN(2) == 1)
	case 1:
		return attribute.Int64Value(rng.Int64() - rng.Int64())
	case 2:
		return attribute.Float64Value(rng.NormFloat64())
	case 3:
		return attribute.BoolSliceValue([]bool{rng.IntN(2) == 1})
	case 4:
		return attribute.Int64SliceValue([]int64{rng.Int64(), -1})
	case 5:
		return attribute.Float64SliceValue([]float64{rng.Float64()})
	case 6:
		return attribute.StringSliceValue([]string{g.str(), g.str()})
	case 7:
		return attribute.ByteSliceValue([]byte(g.str()))
	case 8:
		if depth < 3 {
			return attribute.SliceValue(g.value(depth+1), g.value(depth+1))
		}
	case 9:
		if depth < 3 {
			return attribute.MapValue(attribute.KeyValue{Key: attribute.Key(g.str()), Value: g.value(depth + 1)})
		}
	case 10:
		return attribute.Value{}
	}
	return attribute.StringValue(g.str())
}

func (g randGen) attrs() []attribute.KeyValue {
	out := make([]attribute.KeyValue, g.rng.IntN(20))
	for i := range out {
		out[i] = attribute.KeyValue{Key: attribute.Key(g.str()), Value: g.value(0)}
	}
	return out
}

func (g randGen) ids() trace.SpanContext {
	var cfg trace.SpanContextConfig
	for i := range cfg.TraceID {
		cfg.TraceID[i] = byte(g.rng.IntN(256))
	}
	for i := range cfg.SpanID {
		cfg.SpanID[i] = byte(g.rng.IntN(256))
	}
	cfg.TraceFlags = trace.TraceFlags(g.rng.IntN(256))
	cfg.Remote = g.rng.IntN(2) == 1
	if g.rng.IntN(3) == 0 {
		cfg.TraceState, _ = trace.ParseTraceState("k=" + strings.Repeat("v", 1+g.rng.IntN(30)))
	}
	return trace.NewSpanContext(cfg)
}

// httpServerAttrs are shaped like the agent's HTTP server spans' (~15
// attributes, mostly strings).
var httpServerAttrs = []attribute.KeyValue{
	attribute.String("http.request.method", "GET"), attribute.String("url.scheme", "http"),
	attribute.String("url.path", "/users/1"), attribute.String("network.protocol.version", "1.1"),
	attribute.String("user_agent.original", "Go-http-client/1.1"), attribute.Int("http.response.status_code", 200),
	attribute.Int("http.response.body.size", 7), attribute.String("server.address", "127.0.0.1"),
	attribute.Int("server.port", 9090), attribute.String("http.route", "/users/{id}"),
	attribute.String("client.address", "127.0.0.1"), attribute.Int("client.port", 50000),
	attribute.String("network.peer.address", "127.0.0.1"), attribute.Int("network.peer.port", 50000),
}

// BenchmarkOTLPEncode is the encoder alone on ReadOnlySpans (the SDK path).
func BenchmarkOTLPEncode(b *testing.B) {
	res := resource.NewSchemaless(attribute.String("service.name", "svc"), attribute.Int("process.pid", 1))
	stubs := make(tracetest.SpanStubs, 512)
	for i := range stubs {
		stubs[i] = tracetest.SpanStub{Name: "GET /users/{id}", SpanKind: trace.SpanKindServer, SpanContext: sc(tid(1), sid(byte(i)), false),
			Parent: sc(tid(1), sid(0), true), StartTime: time.Unix(1, 0), EndTime: time.Unix(2, 0), Attributes: httpServerAttrs, Resource: res}
	}
	spans := stubs.Snapshots()
	var e otlpEncoder
	b.ReportAllocs()
	for b.Loop() {
		e.encode(spans)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(spans)), "ns/span")
}
