package export

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracer-agent/tracer-agent/probes/probe"
)

// threeSpans is one request across two services: frontend serves GET
// /checkout and calls backend, which fails.
func threeSpans() []probe.Span {
	ms := time.Millisecond
	return []probe.Span{
		{PID: 2, Kind: trace.SpanKindServer, Name: "GET /stock", Start: t0.Add(3 * ms), End: t0.Add(7 * ms),
			Attrs: []attribute.KeyValue{semconv.HTTPResponseStatusCode(500)}, Error: true,
			SpanContext: sc(tid(1), sid(3), false), Parent: sc(tid(1), sid(2), true)},
		{PID: 1, Kind: trace.SpanKindClient, Name: "GET", Start: t0.Add(2 * ms), End: t0.Add(8 * ms),
			Attrs:       []attribute.KeyValue{semconv.HTTPResponseStatusCode(500)},
			SpanContext: sc(tid(1), sid(2), false), Parent: sc(tid(1), sid(1), false)},
		{PID: 1, Kind: trace.SpanKindServer, Name: "GET /checkout", Start: t0, End: t0.Add(10 * ms),
			Attrs:       []attribute.KeyValue{semconv.HTTPResponseStatusCode(200)},
			SpanContext: sc(tid(1), sid(1), false)},
	}
}

const wantWaterfall = `trace 0102030405060708090a0b0c0d0e0f10  3 spans  10.0ms
10.0ms  SERVER  frontend  GET /checkout  200           [██████████████████████████████]
└─ 6.00ms  CLIENT  frontend  GET  500                  [      ██████████████████      ]
   └─ 4.00ms  SERVER  backend  GET /stock  500  ERROR  [         ████████████         ]
`

func twoServices() func(uint32) ServiceInfo {
	return lookupTable(map[uint32]ServiceInfo{1: {ServiceName: "frontend"}, 2: {ServiceName: "backend"}})
}

func TestConsoleWaterfallAtShutdown(t *testing.T) {
	var out syncBuffer
	p, err := New(t.Context(), Config{Output: "console", Console: &out, QuietPeriod: time.Hour, Lookup: twoServices()})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range threeSpans() {
		p.Export(s)
	}
	shutdown(t, p)
	if got := out.String(); got != wantWaterfall {
		t.Errorf("waterfall:\n%s\nwant:\n%s", got, wantWaterfall)
	}
}

func TestConsolePrintsAfterQuietPeriod(t *testing.T) {
	var out syncBuffer
	p, err := New(t.Context(), Config{Output: "console", Console: &out, QuietPeriod: 20 * time.Millisecond, Lookup: twoServices()})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, p)
	for _, s := range threeSpans() {
		p.Export(s)
	}
	deadline := time.Now().Add(5 * time.Second)
	for out.String() == "" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := out.String(); got != wantWaterfall {
		t.Errorf("waterfall:\n%s\nwant:\n%s", got, wantWaterfall)
	}
}

func TestConsoleMemoryCap(t *testing.T) {
	var out syncBuffer
	c := newConsoleExporter(&out, time.Hour)
	p, err := newPipeline(context.Background(), Config{Output: "console"}, c, c)
	if err != nil {
		t.Fatal(err)
	}
	for i := range maxPendingSpans + 1 {
		var id trace.TraceID
		id[0], id[1], id[15] = byte(i>>8), byte(i), 1
		p.Export(probe.Span{PID: 1, Name: "s", Start: t0, End: t0, SpanContext: sc(id, sid(1), false)})
	}
	// Let the batch processor deliver everything, then check the cap held.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.sink.(*sdkSink).proc.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	pending := c.pending
	c.mu.Unlock()
	if pending > maxPendingSpans {
		t.Errorf("pending = %d", pending)
	}
	if st := p.Stats(); st.ConsoleEarly == 0 {
		t.Errorf("no early prints: %+v", st)
	}
	shutdown(t, p)
	if n := strings.Count(out.String(), "\ntrace ") + 1; n != maxPendingSpans+1 {
		t.Errorf("printed %d traces", n)
	}
}

func TestWaterfallEdgeCases(t *testing.T) {
	a, b := sid(1), sid(2)
	// A parent cycle (corrupt input) and a control character in a name.
	rows := []spanRow{
		{id: a, parent: b, name: "a\x1b[2J", start: t0, end: t0},
		{id: b, parent: a, name: "b", start: t0, end: t0},
	}
	got := renderWaterfall(tid(1), rows)
	if strings.Contains(got, "\x1b") || !strings.Contains(got, "a?[2J") || strings.Count(got, "\n") != 3 {
		t.Errorf("got:\n%s", got)
	}
	if renderWaterfall(tid(1), nil) != "" {
		t.Error("empty trace printed")
	}
	// A very deep chain stays bounded in width.
	var deep []spanRow
	for i := range 200 {
		deep = append(deep, spanRow{id: trace.SpanID{1, byte(i >> 8), byte(i)}, parent: trace.SpanID{1, byte((i - 1) >> 8), byte(i - 1)}, start: t0, end: t0})
	}
	for _, l := range strings.Split(renderWaterfall(tid(1), deep), "\n") {
		if len(l) > 300 {
			t.Fatalf("line too long: %d", len(l))
		}
	}
}

func TestHumanDuration(t *testing.T) {
	cases := map[time.Duration]string{
		0:                       "0ns",
		812:                     "812ns",
		1234:                    "1.23µs",
		45600 * time.Nanosecond: "45.6µs",
		999 * time.Microsecond:  "999µs",
		1500 * time.Microsecond: "1.50ms",
		123456789:               "123ms",
		2 * time.Second:         "2.00s",
		20 * time.Minute:        "1200s",
		-5:                      "0ns",
	}
	for d, want := range cases {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%d) = %q, want %q", d, got, want)
		}
	}
}
