package kafka

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"github.com/tracer-agent/tracer-agent/probes/probe/probetest"
)

const tpB = "00-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-bbbbbbbbbbbbbbbb-01"

// TestProduceSeveralTopicsOneKernelContext: the kernel's span ids name one
// span only (the first topic's); the other topics' spans get their own.
func TestProduceSeveralTopicsOneKernelContext(t *testing.T) {
	kctx := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: 1})
	kparent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{3}, TraceFlags: 1})
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(9)
	req.Acks, req.TimeoutMillis = 0, 1000 // no response: spans at once
	for _, name := range []string{"t1", "t2"} {
		tp := kmsg.NewProduceRequestTopic()
		tp.Topic = name
		pp := kmsg.NewProduceRequestTopicPartition()
		pp.Records = batchV2(0, 0, 0, recordV2(0, ""))
		tp.Partitions = append(tp.Partitions, pp)
		req.Topics = append(req.Topics, tp)
	}
	b := frameRequest(req, 1)
	p := New(Options{}).NewParser(probe.Conn{PID: 1, Remote: brokerAddr})
	spans := p.Feed(probe.Chunk{Dir: probe.Send, Start: probetest.T0, End: probetest.T0, Len: len(b), Data: b, Ctx: kctx, Parent: kparent})
	if len(spans) != 2 || spans[0].Name != "send t1" || spans[1].Name != "send t2" {
		t.Fatalf("spans %v", spans)
	}
	if !spans[0].SpanContext.Equal(kctx) || spans[1].SpanContext.IsValid() {
		t.Errorf("span contexts %v, %v: want the kernel's on the first only", spans[0].SpanContext, spans[1].SpanContext)
	}
	for _, sp := range spans {
		if !sp.Parent.Equal(kparent) {
			t.Errorf("%s: parent %v", sp.Name, sp.Parent)
		}
	}
}

// TestFetchBatchOfOneProducer: records that all carry one creation context
// (one producer call, as the kernel injects) make it the consumer's parent;
// mixed contexts are links.
func TestFetchBatchOfOneProducer(t *testing.T) {
	for _, c := range []struct {
		name   string
		recs   [][]byte
		parent string
		links  int
	}{
		{"same context", [][]byte{recordV2(0, tpA), recordV2(1, tpA), recordV2(2, tpA)}, digitTrace('a'), 0},
		{"two contexts", [][]byte{recordV2(0, tpA), recordV2(1, tpB)}, "", 2},
		{"one without", [][]byte{recordV2(0, tpA), recordV2(1, "")}, "", 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := newDriver()
			sp := oneSpan(t, d.exchange(0, frameRequest(fetchRequest(11), 9), frameResponse(fetchResponse(11, batchV2(5, 0, 0, c.recs...)), 9)))
			if got := sp.Parent; (c.parent == "") == got.IsValid() || (c.parent != "" && got.TraceID().String() != c.parent) {
				t.Errorf("parent %v, want %q", got, c.parent)
			}
			if len(sp.Links) != c.links {
				t.Errorf("links %v, want %d", sp.Links, c.links)
			}
		})
	}
}
