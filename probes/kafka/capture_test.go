package kafka

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"github.com/tracer-agent/tracer-agent/probes/probe/probetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// want is one expected span. Trace ids of the captures' traceparents are
// a repeated digit: parent and links name them by that digit.
type want struct {
	kind      trace.SpanKind
	topic     string // "" when unknown: span named after the operation alone
	partition string // "" when several partitions
	offset    int64  // -1: absent
	count     int
	client    string
	group     string
	errType   string
	parent    string
	links     string
}

var (
	prod = trace.SpanKindProducer
	cons = trace.SpanKindConsumer
)

// The captures (see testdata/README.md) and what each must yield, in order.
var captures = []struct {
	file  string
	spans []want
}{
	// franz-go v1.22: Produce v13 / Fetch v18 (topic ids), Metadata v13,
	// consumer group on its own connection.
	{"franz", []want{
		{prod, "orders", "0", 0, 1, "franz-producer", "", "", "1", ""},
		{prod, "orders", "0", 1, 2, "franz-producer", "", "", "", "2"},
		{prod, "single", "0", 0, 1, "franz-producer", "", "", "3", ""},
		{prod, "multi", "", -1, 2, "franz-producer", "", "", "", "12"},
		{prod, "orders", "7", -1, 1, "franz-producer", "", "UNKNOWN_TOPIC_OR_PARTITION", "", ""},
		{cons, "orders", "0", 0, 3, "franz-consumer", "franz-group", "", "", "12"},
		{cons, "multi", "", -1, 2, "franz-consumer", "franz-group", "", "", "12"},
		{cons, "single", "0", 0, 1, "franz-single", "", "", "3", ""},
	}},
	// franz-go with each batch codec (snappy, gzip, lz4, zstd): record
	// headers are read from the inflated batches.
	{"franz-compressed", []want{
		{prod, "zip-snappy", "0", 0, 3, "franz-zip-snappy", "", "", "", "12"},
		{prod, "zip-gzip", "0", 0, 3, "franz-zip-gzip", "", "", "", "12"},
		{prod, "zip-lz4", "0", 0, 3, "franz-zip-lz4", "", "", "", "12"},
		{prod, "zip-zstd", "0", 0, 3, "franz-zip-zstd", "", "", "", "12"},
		{cons, "zip-snappy", "0", 0, 3, "franz-unzip", "", "", "", "12"},
		{cons, "zip-gzip", "0", 0, 3, "franz-unzip", "", "", "", "12"},
		{cons, "zip-lz4", "0", 0, 3, "franz-unzip", "", "", "", "12"},
		{cons, "zip-zstd", "0", 0, 3, "franz-unzip", "", "", "", "12"},
	}},
	// acks=0: no response, the span ends with the request.
	{"franz-acks0", []want{
		{prod, "fire", "0", -1, 1, "franz-acks0", "", "", "1", ""},
	}},
	// sarama V2_1_0_0: Produce v7, Fetch v10 (names), one connection per
	// broker shared by group and fetch requests.
	{"sarama", []want{
		{prod, "payments", "0", 0, 1, "sarama-app", "", "", "1", ""},
		{prod, "payments", "0", 1, 1, "sarama-app", "", "", "2", ""},
		{prod, "payments", "0", 2, 1, "sarama-app", "", "", "", ""},
		{cons, "payments", "0", 0, 3, "sarama-app", "sarama-group", "", "", "12"},
	}},
	// segmentio/kafka-go v0.4: Produce v8 / Fetch v10, group reader.
	{"segmentio", []want{
		{prod, "clicks", "0", 0, 2, "segment-app", "", "", "", "1"},
		{cons, "clicks", "0", 0, 2, "segment-app", "segment-group", "", "", "1"},
	}},
	// kcat (librdkafka 2.0): Produce v7 / Fetch v11, simple consumer.
	{"kcat", []want{
		{prod, "logs", "0", 0, 1, "kcat-producer", "", "", "1", ""},
		{prod, "logs", "0", 1, 2, "kcat-producer", "", "", "", ""},
		{cons, "logs", "0", 0, 3, "kcat-consumer", "", "", "", "1"},
	}},
	// confluent-kafka-python 1.7 / librdkafka 2.0.2: Produce v7 / Fetch
	// v11, group consumer (group learned on the coordinator connection).
	{"confluent-python", []want{
		{prod, "py-topic", "0", 0, 2, "py-producer", "", "", "", "1"},
		{cons, "py-topic", "0", 0, 2, "py-consumer", "py-group", "", "", "1"},
	}},
}

// digitTrace is the trace id the captures use for digit c.
func digitTrace(c byte) string { return strings.Repeat(string(c), 32) }

func TestCaptures(t *testing.T) {
	splits := map[string]probetest.Splitter{
		"whole": probetest.Whole, "bytes": probetest.Bytewise, "random1": randomSplits(1), "random2": randomSplits(2),
	}
	for _, c := range captures {
		recs := loadCapture(t, c.file)
		for sname, split := range splits {
			t.Run(c.file+"/"+sname, func(t *testing.T) {
				d := replay(recs, split, 0)
				if len(d.spans) != len(c.spans) {
					for _, sp := range d.spans {
						t.Log(describe(sp))
					}
					t.Fatalf("got %d spans, want %d", len(d.spans), len(c.spans))
				}
				for i, w := range c.spans {
					checkSpan(t, d.spans[i], w)
				}
				checkTimes(t, d)
			})
		}
	}
}

func checkSpan(t *testing.T, sp probe.Span, w want) {
	t.Helper()
	op := "send"
	if w.kind == cons {
		op = "receive"
	}
	name := op
	if w.topic != "" {
		name += " " + w.topic
	}
	if sp.Name != name || sp.Kind != w.kind {
		t.Errorf("span %s %q, want %s %q", sp.Kind, sp.Name, w.kind, name)
	}
	where := describe(sp)
	str := func(k, v string) {
		t.Helper()
		got, ok := probetest.Attr(sp, attrKey(k))
		switch {
		case v == "" && ok:
			t.Errorf("%s: %s=%q, want absent", where, k, got.Emit())
		case v != "" && (!ok || got.AsString() != v):
			t.Errorf("%s: %s=%q, want %q", where, k, got.Emit(), v)
		}
	}
	num := func(k string, v int64, present bool) {
		t.Helper()
		got, ok := probetest.Attr(sp, attrKey(k))
		switch {
		case !present && ok:
			t.Errorf("%s: %s=%s, want absent", where, k, got.Emit())
		case present && (!ok || got.AsInt64() != v):
			t.Errorf("%s: %s=%s, want %d", where, k, got.Emit(), v)
		}
	}
	str(string(semconv.MessagingSystemKey), "kafka")
	str(string(semconv.MessagingOperationNameKey), op)
	str(string(semconv.MessagingOperationTypeKey), op)
	str(string(semconv.MessagingDestinationNameKey), w.topic)
	str(string(semconv.MessagingDestinationPartitionIDKey), w.partition)
	str(string(semconv.MessagingClientIDKey), w.client)
	str(string(semconv.MessagingConsumerGroupNameKey), w.group)
	str(string(semconv.ErrorTypeKey), w.errType)
	str(string(semconv.ServerAddressKey), "10.0.0.9")
	num(string(semconv.ServerPortKey), 9092, true)
	num(string(semconv.MessagingKafkaOffsetKey), w.offset, w.offset >= 0)
	num(string(semconv.MessagingBatchMessageCountKey), int64(w.count), w.count > 1)
	if sp.Error != (w.errType != "") {
		t.Errorf("%s: Error=%v", where, sp.Error)
	}
	if w.parent == "" && sp.Parent.IsValid() || w.parent != "" && sp.Parent.TraceID().String() != digitTrace(w.parent[0]) {
		t.Errorf("%s: parent %v, want trace %q", where, sp.Parent.TraceID(), w.parent)
	}
	if w.parent != "" && !sp.Parent.IsRemote() {
		t.Errorf("%s: parent from a record must be remote", where)
	}
	var links []string
	for _, l := range sp.Links {
		links = append(links, l.TraceID().String())
	}
	var wantLinks []string
	for i := range len(w.links) {
		wantLinks = append(wantLinks, digitTrace(w.links[i]))
	}
	if fmt.Sprint(links) != fmt.Sprint(wantLinks) {
		t.Errorf("%s: links %v, want %v", where, links, wantLinks)
	}
	if sp.PID != 42 || sp.TID != 7 {
		t.Errorf("%s: PID/TID %d/%d", where, sp.PID, sp.TID)
	}
}

// checkTimes: a span starts at the Start of a chunk the process wrote and
// ends at the End of a chunk (the response read, or the acks=0 request).
func checkTimes(t *testing.T, d *driver) {
	t.Helper()
	for _, sp := range d.spans {
		if sp.End.Before(sp.Start) || sp.Start.Before(probetest.T0) || sp.End.After(d.Now) {
			t.Errorf("%s: times %v..%v", sp.Name, sp.Start, sp.End)
		}
		// The driver's chunks start at even and end at odd milliseconds.
		if sp.Start.Sub(probetest.T0).Milliseconds()%2 != 0 || sp.End.Sub(probetest.T0).Milliseconds()%2 != 1 {
			t.Errorf("%s: times %v..%v are not chunk boundaries", sp.Name, sp.Start.Sub(probetest.T0), sp.End.Sub(probetest.T0))
		}
	}
}

// TestCapturesTruncated replays captures with the kernel capturing only a
// prefix of every syscall: framing follows the size fields, so requests
// and responses still pair up; what the cut hides is missing, never wrong.
func TestCapturesTruncated(t *testing.T) {
	for _, limit := range []int{40, 100, 300, 1000} {
		for _, c := range captures {
			recs := loadCapture(t, c.file)
			t.Run(fmt.Sprintf("%s/limit=%d", c.file, limit), func(t *testing.T) {
				d := replay(recs, probetest.Whole, limit)
				checkTimes(t, d)
				if len(d.spans) > len(c.spans) {
					t.Fatalf("got %d spans, more than %d", len(d.spans), len(c.spans))
				}
				wantNames := map[string]int{}
				for _, w := range c.spans {
					op := "send"
					if w.kind == cons {
						op = "receive"
					}
					wantNames[op+" "+w.topic]++
					wantNames[op]++ // topic name may be cut off
				}
				for _, sp := range d.spans {
					if wantNames[sp.Name] == 0 {
						t.Errorf("unexpected span %s", describe(sp))
					}
					if sp.Kind == cons {
						if v, ok := probetest.Attr(sp, semconv.MessagingBatchMessageCountKey); ok && v.AsInt64() > 5 {
							t.Errorf("count %d", v.AsInt64())
						}
					}
				}
				if limit >= 1000 && len(d.spans) != len(c.spans) {
					t.Errorf("limit %d: got %d spans want %d", limit, len(d.spans), len(c.spans))
				}
			})
		}
	}
}

// TestCapturesSorted guards against span order depending on how chunks
// are split: the multiset of names is the same for every splitter.
func TestCapturesSorted(t *testing.T) {
	for _, c := range captures {
		recs := loadCapture(t, c.file)
		var ref []string
		for i, split := range []probetest.Splitter{probetest.Whole, randomSplits(3), randomSplits(4)} {
			d := replay(recs, split, 0)
			var names []string
			for _, sp := range d.spans {
				names = append(names, sp.Name)
			}
			sort.Strings(names)
			if i == 0 {
				ref = names
			} else if fmt.Sprint(names) != fmt.Sprint(ref) {
				t.Errorf("%s: %v vs %v", c.file, names, ref)
			}
		}
	}
}
