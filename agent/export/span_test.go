package export

import (
	"context"
	"reflect"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracer-agent/tracer-agent/probes/probe"
)

// TestSpansAsProviderBuildsThem checks decide against the SDK itself: the
// same probe spans, started and ended through a TracerProvider (ids handed
// over by an IDGenerator), must come out identical, whatever the sampler
// and limits.
func TestSpansAsProviderBuildsThem(t *testing.T) {
	for _, env := range providerEnvs {
		env.set(t)
		p, mem := newMemPipeline(t, Config{Output: "console"})
		res := processResource(p.base, ServiceInfo{PID: 1, ServiceName: "svc"})
		want := tracetest.NewInMemoryExporter()
		tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithIDGenerator(givenIDs{}),
			sdktrace.WithSyncer(want))
		for _, s := range providerSpans() {
			p.Export(s)
			viaProvider(tp.Tracer(instrumentationName), s)
		}
		shutdown(t, p)
		got, exp := mem.GetSpans(), want.GetSpans()
		if len(got) != len(exp) {
			t.Fatalf("%+v: %d spans, provider %d", env, len(got), len(exp))
		}
		for i := range got {
			g, w := got[i], exp[i]
			g.Resource, w.Resource = nil, nil
			if !reflect.DeepEqual(g, w) {
				t.Errorf("%+v: span %q\n got %+v\nwant %+v", env, w.Name, g, w)
			}
		}
	}
}

// providerSpans are probe spans that exercise every decision a provider
// makes: ids, remote and local parents, a parent of another trace, an
// unsampled parent, kinds, duplicate/invalid/long attributes, links.
func providerSpans() []probe.Span {
	unsampledParent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid(3), SpanID: sid(3), Remote: true})
	ts, _ := trace.ParseTraceState("k=v")
	spans := []probe.Span{
		{PID: 1, Kind: trace.SpanKindServer, Name: "GET /a", Start: t0, End: t0.Add(time.Millisecond),
			Attrs:       []attribute.KeyValue{attribute.String("a", "1"), attribute.Int("b", 2)},
			SpanContext: sc(tid(1), sid(2), false), Parent: sc(tid(1), sid(1), true).WithTraceState(ts)},
		{PID: 1, Kind: trace.SpanKindClient, Name: "err", Start: t0, End: t0.Add(-time.Second), Error: true, StatusMessage: "x",
			SpanContext: sc(tid(1), sid(4), false), Parent: sc(tid(1), sid(2), false)},
		{PID: 1, Name: "unspecified kind, dup and invalid attrs", Start: t0, End: t0,
			Attrs:       []attribute.KeyValue{attribute.String("k", "first"), {}, attribute.String("long", "0123456789"), attribute.String("k", "last")},
			SpanContext: sc(tid(5), sid(5), false), Parent: sc(tid(6), sid(6), true)},
		{PID: 1, Kind: trace.SpanKindServer, Name: "unsampled parent", Start: t0, End: t0,
			SpanContext: sc(tid(3), sid(7), false), Parent: unsampledParent},
		{PID: 1, Kind: trace.SpanKindConsumer, Name: "links", Start: t0, End: t0, SpanContext: sc(tid(8), sid(8), false),
			Links: []trace.SpanContext{sc(tid(9), sid(9), true), {}, sc(tid(10), sid(10), true)}},
	}
	return spans
}

// providerEnv is a sampler and limits configuration, set through the
// environment as a provider reads it.
type providerEnv struct{ sampler, arg, attrLimit, lenLimit, linkLimit string }

var providerEnvs = []providerEnv{
	{}, {sampler: "always_on"}, {sampler: "parentbased_always_off"}, {sampler: "traceidratio", arg: "0.5"},
	{attrLimit: "2", lenLimit: "4", linkLimit: "1"},
}

func (env providerEnv) set(t *testing.T) {
	t.Setenv("OTEL_TRACES_SAMPLER", env.sampler)
	t.Setenv("OTEL_TRACES_SAMPLER_ARG", env.arg)
	t.Setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", env.attrLimit)
	t.Setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", env.lenLimit)
	t.Setenv("OTEL_SPAN_LINK_COUNT_LIMIT", env.linkLimit)
}

// viaProvider is how the exporter used to build spans.
func viaProvider(tr trace.Tracer, s probe.Span) {
	ctx := context.Background()
	parent := s.Parent
	if parent.IsValid() && s.SpanContext.IsValid() && parent.TraceID() != s.SpanContext.TraceID() {
		parent = trace.SpanContext{}
	}
	if parent.IsValid() {
		ctx = trace.ContextWithSpanContext(ctx, parent)
	}
	ctx = context.WithValue(ctx, idKey{}, s.SpanContext)
	end := s.End
	if end.Before(s.Start) {
		end = s.Start
	}
	opts := []trace.SpanStartOption{trace.WithTimestamp(s.Start), trace.WithSpanKind(s.Kind), trace.WithAttributes(s.Attrs...)}
	for _, l := range s.Links {
		if l.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: l}))
		}
	}
	_, span := tr.Start(ctx, s.Name, opts...)
	if s.Error {
		span.SetStatus(codes.Error, s.StatusMessage)
	}
	span.End(trace.WithTimestamp(end))
}

type idKey struct{}

// givenIDs hands the SDK the ids in the context (all test spans have them).
type givenIDs struct{}

func (givenIDs) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	sc := ctx.Value(idKey{}).(trace.SpanContext)
	return sc.TraceID(), sc.SpanID()
}

func (givenIDs) NewSpanID(ctx context.Context, _ trace.TraceID) trace.SpanID {
	return ctx.Value(idKey{}).(trace.SpanContext).SpanID()
}
