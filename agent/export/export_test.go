package export

import (
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracer-agent/tracer-agent/probes/probe"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)

func TestIDsParentAndTimes(t *testing.T) {
	p, mem := newMemPipeline(t, Config{Output: "console", Lookup: lookupTable(map[uint32]ServiceInfo{7: {ServiceName: "svc"}})})
	known := probe.Span{ // kernel chose ids and saw a remote parent
		PID: 7, Kind: trace.SpanKindServer, Name: "GET /a",
		Start: t0, End: t0.Add(5 * time.Millisecond),
		Attrs:         []attribute.KeyValue{semconv.HTTPRoute("/a"), semconv.HTTPResponseStatusCode(503)},
		Error:         true,
		StatusMessage: "boom",
		SpanContext:   sc(tid(1), sid(2), false),
		Parent:        sc(tid(1), sid(1), true),
	}
	child := probe.Span{ // only the parent known: same trace, fresh span id
		PID: 7, Kind: trace.SpanKindClient, Name: "GET",
		Start: t0.Add(time.Millisecond), End: t0, // end before start: clamped
		Parent: sc(tid(1), sid(2), false),
	}
	root := probe.Span{PID: 7, Kind: trace.SpanKindInternal, Name: "x", Start: t0, End: t0.Add(time.Second)}
	mismatch := probe.Span{ // own ids win over a parent of another trace
		PID: 7, Kind: trace.SpanKindServer, Name: "m", Start: t0, End: t0,
		SpanContext: sc(tid(5), sid(5), false), Parent: sc(tid(6), sid(6), true),
	}
	for _, s := range []probe.Span{known, child, root, mismatch} {
		p.Export(s)
	}
	shutdown(t, p)
	got := mem.GetSpans()
	if len(got) != 4 {
		t.Fatalf("got %d spans, want 4", len(got))
	}
	k := got[0]
	if k.SpanContext.TraceID() != tid(1) || k.SpanContext.SpanID() != sid(2) {
		t.Errorf("known ids = %v/%v", k.SpanContext.TraceID(), k.SpanContext.SpanID())
	}
	if k.Parent.SpanID() != sid(1) || !k.Parent.IsRemote() {
		t.Errorf("known parent = %v remote=%v", k.Parent.SpanID(), k.Parent.IsRemote())
	}
	if !k.StartTime.Equal(known.Start) || !k.EndTime.Equal(known.End) {
		t.Errorf("times = %v..%v", k.StartTime, k.EndTime)
	}
	if k.SpanKind != trace.SpanKindServer || k.Name != "GET /a" {
		t.Errorf("kind/name = %v %q", k.SpanKind, k.Name)
	}
	if k.Status.Code != codes.Error || k.Status.Description != "boom" {
		t.Errorf("status = %+v", k.Status)
	}
	if v := attrMap(k.Attributes)[semconv.HTTPRouteKey]; v.AsString() != "/a" {
		t.Errorf("attrs = %v", k.Attributes)
	}

	c := got[1]
	if c.SpanContext.TraceID() != tid(1) || c.Parent.SpanID() != sid(2) || c.Parent.IsRemote() {
		t.Errorf("child trace %v parent %v remote=%v", c.SpanContext.TraceID(), c.Parent.SpanID(), c.Parent.IsRemote())
	}
	if !c.SpanContext.SpanID().IsValid() || c.SpanContext.SpanID() == sid(2) {
		t.Errorf("child span id %v", c.SpanContext.SpanID())
	}
	if !c.EndTime.Equal(c.StartTime) || !c.StartTime.Equal(child.Start) {
		t.Errorf("child times not clamped: %v..%v", c.StartTime, c.EndTime)
	}

	r := got[2]
	if !r.SpanContext.IsValid() || r.Parent.IsValid() || r.SpanContext.TraceID() == tid(1) {
		t.Errorf("root = %v parent %v", r.SpanContext, r.Parent)
	}
	if !r.StartTime.Equal(root.Start) || !r.EndTime.Equal(root.End) {
		t.Errorf("root times = %v..%v", r.StartTime, r.EndTime)
	}

	m := got[3]
	if m.SpanContext.TraceID() != tid(5) || m.SpanContext.SpanID() != sid(5) || m.Parent.IsValid() {
		t.Errorf("mismatch = %v parent %v", m.SpanContext, m.Parent)
	}
	if st := p.Stats(); st.Exported != 4 || st.Sent != 4 {
		t.Errorf("stats = %+v", st)
	}
}

func TestResourcePerPID(t *testing.T) {
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=agent,deployment.environment.name=test,team=a")
	p, mem := newMemPipeline(t, Config{Output: "console", Version: "1.2.3", Lookup: lookupTable(map[uint32]ServiceInfo{
		10: {ServiceName: "frontend", ExecutableName: "node", ExecutablePath: "/usr/bin/node", Command: "node server.js",
			ResourceAttrs: []attribute.KeyValue{attribute.String("team", "web")}},
		20: {ServiceName: "backend", ExecutableName: "java"},
	})})
	p.Export(probe.Span{PID: 10, Name: "a", Start: t0, End: t0})
	p.Export(probe.Span{PID: 20, Name: "b", Start: t0, End: t0})
	p.Export(probe.Span{PID: 30, Name: "c", Start: t0, End: t0}) // unknown to Lookup
	if n := p.Stats().Providers; n != 3 {
		t.Errorf("providers = %d", n)
	}
	p.ForgetProcess(20)
	if n := p.Stats().Providers; n != 2 {
		t.Errorf("providers after forget = %d", n)
	}
	shutdown(t, p)
	got := mem.GetSpans()
	if len(got) != 3 {
		t.Fatalf("got %d spans (forgotten process's spans must survive)", len(got))
	}
	host, _ := osHostname()
	want := map[string]map[attribute.Key]string{
		"a": {
			semconv.ServiceNameKey: "frontend", semconv.ProcessExecutableNameKey: "node",
			semconv.ProcessExecutablePathKey: "/usr/bin/node", semconv.ProcessCommandKey: "node server.js",
			"team": "web", "deployment.environment.name": "test",
			semconv.TelemetryDistroNameKey: "tracer-agent", semconv.TelemetryDistroVersionKey: "1.2.3",
			semconv.TelemetrySDKLanguageKey: "go", semconv.HostNameKey: host,
		},
		"b": {semconv.ServiceNameKey: "backend", semconv.ProcessExecutableNameKey: "java", "team": "a"},
		"c": {semconv.ServiceNameKey: "pid-30"},
	}
	pids := map[string]int64{"a": 10, "b": 20, "c": 30}
	for _, s := range got {
		attrs := attrMap(s.Resource.Attributes())
		for k, v := range want[s.Name] {
			if attrs[k].Emit() != v {
				t.Errorf("%s: %s = %q, want %q", s.Name, k, attrs[k].Emit(), v)
			}
		}
		if attrs[semconv.ProcessPIDKey].AsInt64() != pids[s.Name] {
			t.Errorf("%s: pid = %v", s.Name, attrs[semconv.ProcessPIDKey])
		}
		if s.Resource.SchemaURL() != semconv.SchemaURL {
			t.Errorf("schema = %q", s.Resource.SchemaURL())
		}
	}
}

func TestSamplerFromEnv(t *testing.T) {
	t.Setenv("OTEL_TRACES_SAMPLER", "always_off")
	p, mem := newMemPipeline(t, Config{Output: "console"})
	p.Export(probe.Span{PID: 1, Name: "a", Start: t0, End: t0})
	shutdown(t, p)
	if n := len(mem.GetSpans()); n != 0 {
		t.Errorf("exported %d spans with always_off", n)
	}
	if st := p.Stats(); st.Unsampled != 1 || st.Exported != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestDropRoutes(t *testing.T) {
	p, mem := newMemPipeline(t, Config{Output: "console", DropRoutes: []string{"/health*", "*/metrics"}})
	spans := []probe.Span{
		{Kind: trace.SpanKindServer, Name: "drop1", Attrs: []attribute.KeyValue{semconv.HTTPRoute("/healthz")}},
		{Kind: trace.SpanKindClient, Name: "drop2", Attrs: []attribute.KeyValue{semconv.URLPath("/api/v1/metrics")}},
		{Kind: trace.SpanKindServer, Name: "keep1", Attrs: []attribute.KeyValue{semconv.URLPath("/api/health")}},
		{Kind: trace.SpanKindInternal, Name: "keep2", Attrs: []attribute.KeyValue{semconv.URLPath("/healthz")}},
		{Kind: trace.SpanKindServer, Name: "keep3"},
	}
	for _, s := range spans {
		s.PID, s.Start, s.End = 1, t0, t0
		p.Export(s)
	}
	shutdown(t, p)
	var names []string
	for _, s := range mem.GetSpans() {
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "keep1,keep2,keep3" {
		t.Errorf("kept %v", names)
	}
	if st := p.Stats(); st.Dropped != 2 || st.Exported != 3 {
		t.Errorf("stats = %+v", st)
	}
}

func TestConfigErrors(t *testing.T) {
	_, err := New(t.Context(), Config{Output: "x"})
	if err == nil || err.Error() != `invalid --output "x": want auto, otlp, console or both` {
		t.Errorf("err = %v", err)
	}
	if _, err := New(t.Context(), Config{Output: "console", DropRoutes: []string{"/ok", ""}}); err == nil {
		t.Error("empty drop route accepted")
	}
}

func TestAutoOutput(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	if o, c, _ := outputs("auto"); o || !c {
		t.Errorf("auto without endpoint: otlp=%v console=%v", o, c)
	}
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://x:4318/v1/traces")
	if o, c, _ := outputs("auto"); !o || c {
		t.Errorf("auto with endpoint: otlp=%v console=%v", o, c)
	}
	if o, c, _ := outputs("both"); !o || !c {
		t.Errorf("both: otlp=%v console=%v", o, c)
	}
}

// TestConcurrentExport is meant for -race: spans, forgets and stats at once.
func TestConcurrentExport(t *testing.T) {
	p, mem := newMemPipeline(t, Config{Output: "console"})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				pid := uint32(g*10 + i%5)
				p.Export(probe.Span{PID: pid, Name: "s", Start: t0, End: t0})
				if i%50 == 0 {
					p.ForgetProcess(pid)
					_ = p.Stats()
				}
			}
		})
	}
	wg.Wait()
	shutdown(t, p)
	if n := len(mem.GetSpans()); n != 1600 {
		t.Errorf("exported %d spans, want 1600", n)
	}
	p.Export(probe.Span{PID: 1, Name: "late"}) // after shutdown: ignored, no panic
}

// A probe's Attrs are only valid during Export (probe.Parser): the outputs
// that queue spans (the SDK's processor here) must keep a copy.
func TestQueuedSpansOwnTheirAttrs(t *testing.T) {
	p, mem := newMemPipeline(t, Config{Output: "console"})
	attrs := []attribute.KeyValue{attribute.String("url.path", "/a"), attribute.Int("http.response.status_code", 200)}
	p.Export(probe.Span{PID: 1, Name: "GET /a", Start: t0, End: t0, Attrs: attrs})
	attrs[0] = attribute.String("url.path", "/reused")
	attrs[1] = attribute.Int("http.response.status_code", 500)
	shutdown(t, p)
	got := mem.GetSpans()
	if len(got) != 1 {
		t.Fatalf("got %d spans", len(got))
	}
	if a := attrMap(got[0].Attributes); a["url.path"].AsString() != "/a" || a["http.response.status_code"].AsInt64() != 200 {
		t.Errorf("queued span's attributes changed with the probe's buffer: %v", got[0].Attributes)
	}
}
