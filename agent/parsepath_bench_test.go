package agent

import (
	"testing"

	"github.com/tracer-agent/tracer-agent/agent/conntrack"
	"github.com/tracer-agent/tracer-agent/probes/probe"
)

// BenchmarkParsePath is BenchmarkHotPath without export: chunks →
// conntrack → HTTP probe → probe.Span, the part before the exporter.
func BenchmarkParsePath(b *testing.B) {
	spans := 0
	conns := conntrack.New(probes(Config{}), maxConns, func(probe.Span) { spans++ })
	w := newRequestWorkload()
	b.ReportAllocs()
	cpu0 := processCPU()
	for b.Loop() {
		w.request(conns)
	}
	cpu := processCPU() - cpu0
	if spans != 3*b.N {
		b.Fatalf("got %d spans, want %d", spans, 3*b.N)
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(spans), "cpu-µs/span")
}
