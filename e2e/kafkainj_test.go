package e2e

import (
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/tracer-agent/tracer-agent/internal/otlptest"
	"github.com/tracer-agent/tracer-agent/internal/testenv"
	"github.com/tracer-agent/tracer-agent/internal/testkafka"
)

// consumed is one record as kafkaapp consume printed it.
type consumed struct{ value, key, traceparent string }

// consume runs kafkaapp's franz-go group consumer (it validates batch CRCs)
// and returns the records it read.
func consume(t *testing.T, broker, topic string, n int) []consumed {
	t.Helper()
	out := run(t, []string{"OTEL_SERVICE_NAME=kafka-consumer"}, kafkaApp, "consume", broker, topic, strconv.Itoa(n), "g-"+topic)
	var recs []consumed
	for _, l := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(l, "record value=")
		if !ok {
			continue
		}
		var c consumed
		var err error
		vq, rest, _ := strings.Cut(rest, " key=")
		kq, rest, _ := strings.Cut(rest, " headers=")
		_, c.traceparent, _ = strings.Cut(rest, " traceparent=")
		if c.value, err = strconv.Unquote(vq); err != nil {
			t.Fatalf("consumer line %q", l)
		}
		if c.key, err = strconv.Unquote(kq); err != nil {
			t.Fatalf("consumer line %q", l)
		}
		recs = append(recs, c)
	}
	if len(recs) != n {
		t.Fatalf("consumed %d records of %s, want %d:\n%s", len(recs), topic, n, out)
	}
	return recs
}

func kafkaSpan(spans []otlptest.Span, kind tracepb.Span_SpanKind, name string) (otlptest.Span, bool) {
	for _, s := range spans {
		if s.Kind == kind && s.Name == name && s.Attrs["messaging.system"] == "kafka" {
			return s, true
		}
	}
	return otlptest.Span{}, false
}

// TestKafkaInjection: with --kafka-inject, unmodified producers (franz-go:
// flexible Produce v13 with topic ids; sarama: non-flexible v7; librdkafka
// via confluent-kafka and kcat: v7 by sendmsg) write records the kernel gives a traceparent
// header carrying their PRODUCER span; the kfake broker accepts the
// rewritten batches (it checks batch length and CRC32C), a franz-go
// consumer reads them back with CRC validation and unchanged values, and
// its CONSUMER span is a child of the PRODUCER span: one trace. Without
// the flag the records are as written.
func TestKafkaInjection(t *testing.T) {
	requireE2E(t)
	kcat := testenv.RequireCommand(t, "kcat")
	py := testenv.RequireCommand(t, "/usr/bin/python3")
	broker := testkafka.StartBroker(t)
	topics := []string{"plain", "franz", "batch", "sarama", "ck", "kc"}
	for _, topic := range topics {
		testkafka.CreateTopic(t, broker.Addr, topic, 1)
	}
	rcv := otlptest.Start(t)
	produce := func(app *proc, path string) {
		t.Helper()
		if out := curl(t, "http://127.0.0.1:"+strconv.Itoa(portOf(t, app))+path); !strings.HasPrefix(out, "produced") {
			t.Fatalf("%s: %s", path, out)
		}
	}

	// Without the flag: records stay as the producer wrote them.
	ag := startAgent(t, rcv, "--exe", "*/e2e-kafkaapp")
	app := start(t, []string{"OTEL_SERVICE_NAME=kafka-svc"}, kafkaApp, "serve", broker.Addr)
	produce(app, "/produce/franz/plain?n=1")
	if r := consume(t, broker.Addr, "plain", 1); r[0].traceparent != "" || r[0].value != "msg-0" {
		t.Errorf("without --kafka-inject: %+v", r[0])
	}
	ag.stop(t)

	// A new producer process, so its connections are made under the new agent.
	ag = startAgent(t, rcv, "--kafka-inject", "--stats-interval", "1s",
		"--exe", "*/e2e-kafkaapp", "--exe", "*/kcat", "--exe", "ckprod.py")
	app = start(t, []string{"OTEL_SERVICE_NAME=kafka-svc"}, kafkaApp, "serve", broker.Addr)
	produce(app, "/produce/franz/franz?n=1")
	produce(app, "/produce/franz/batch?n=3")
	produce(app, "/produce/sarama/sarama?n=1")
	cmd := exec.Command(kcat, "-b", broker.Addr, "-P", "-t", "kc")
	cmd.Stdin = strings.NewReader("from kcat\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat: %v\n%s", err, out)
	}
	run(t, nil, py, "testdata/ckprod.py", broker.Addr, "ck")

	want := map[string][]string{
		"franz":  {"msg-0"},
		"batch":  {"msg-0", "msg-1", "msg-2"},
		"sarama": {"msg-0"},
		"kc":     {"from kcat"},
		"ck":     {"hello from librdkafka"},
	}
	got := map[string][]consumed{}
	for topic, values := range want {
		got[topic] = consume(t, broker.Addr, topic, len(values))
	}
	spans := rcv.WaitFor(t, 30*time.Second, "producer and consumer spans", func(s []otlptest.Span) bool {
		for topic := range want {
			if _, ok := kafkaSpan(s, tracepb.Span_SPAN_KIND_PRODUCER, "send "+topic); !ok {
				return false
			}
			if _, ok := kafkaSpan(s, tracepb.Span_SPAN_KIND_CONSUMER, "receive "+topic); !ok {
				return false
			}
		}
		return true
	})
	ag.stop(t)

	producers := map[string][]otlptest.Span{}
	for _, s := range spans {
		if s.Kind == tracepb.Span_SPAN_KIND_PRODUCER {
			producers[s.Name] = append(producers[s.Name], s)
		}
	}
	for topic, values := range want {
		recs := got[topic]
		ps := producers["send "+topic]
		var prod otlptest.Span
		for i, r := range recs {
			if r.value != values[i] || r.key != "" {
				t.Errorf("%s record %d: value %q key %q, want %q unchanged", topic, i, r.value, r.key, values[i])
			}
			match := false
			for _, p := range ps {
				if r.traceparent == "00-"+p.TraceID+"-"+p.SpanID+"-01" {
					match, prod = true, p
				}
			}
			if !match {
				t.Errorf("%s record %d: traceparent %q is no PRODUCER span of the topic (%d spans)", topic, i, r.traceparent, len(ps))
			}
		}
		if len(ps) != 1 {
			continue // a client split the records over several requests: links, not one parent
		}
		recv, _ := kafkaSpan(spans, tracepb.Span_SPAN_KIND_CONSUMER, "receive "+topic)
		if recv.TraceID != prod.TraceID || recv.ParentID != prod.SpanID {
			t.Errorf("receive %s: trace %s parent %s, want a child of %s", topic, recv.TraceID, recv.ParentID, prod)
		}
	}
	if line := lastLine(ag.Output(), "kafka injection"); line == "" {
		t.Errorf("the agent did not log its Kafka injection counters")
	} else {
		t.Log(line)
	}
}

// lastLine is the last line of out containing substr ("" if none).
func lastLine(out, substr string) string {
	ls := strings.Split(out, "\n")
	for i := len(ls) - 1; i >= 0; i-- {
		if strings.Contains(ls[i], substr) {
			return ls[i]
		}
	}
	return ""
}

// TestKafkaGoProducersDoNotMislink: Go Kafka clients batch the records of
// concurrent requests into one Produce request, written from goroutines
// the first producing request started (franz-go's drain and broker
// goroutines, kafka-go's partition writers): goroutine lineage must not
// make such a request the parent of the others' records. 48 requests per
// client, 16 at a time: every PRODUCER span is a root (Go producers are
// not linked yet, README), never the child of an HTTP request.
func TestKafkaGoProducersDoNotMislink(t *testing.T) {
	requireE2E(t)
	broker := testkafka.StartBroker(t)
	clients := []string{"franz", "sarama", "kafkago"}
	for _, c := range clients {
		testkafka.CreateTopic(t, broker.Addr, "conc-"+c, 1)
	}
	rcv := otlptest.Start(t)
	ag := startAgent(t, rcv, "--kafka-inject", "--exe", "*/e2e-kafkaapp")
	app := start(t, []string{"OTEL_SERVICE_NAME=kafka-svc"}, kafkaApp, "serve", broker.Addr)
	base := "http://127.0.0.1:" + strconv.Itoa(portOf(t, app))
	ag.waitOutput(t, "go lineage: goroutines a request starts", 15*time.Second)
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	defer tr.CloseIdleConnections()
	for _, c := range clients {
		var wg sync.WaitGroup
		errs := make(chan error, 48)
		sem := make(chan struct{}, 16)
		for i := 0; i < 48; i++ {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				resp, err := (&http.Client{Transport: tr}).Get(base + "/produce/" + c + "/conc-" + c + "?n=1")
				if err == nil {
					resp.Body.Close()
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	spans := rcv.WaitFor(t, 30*time.Second, "a PRODUCER span per client", func(s []otlptest.Span) bool {
		for _, c := range clients {
			if _, ok := kafkaSpan(s, tracepb.Span_SPAN_KIND_PRODUCER, "send conc-"+c); !ok {
				return false
			}
		}
		return true
	})
	ag.stop(t)
	n := 0
	for _, s := range rcv.Spans() {
		if s.Kind == tracepb.Span_SPAN_KIND_PRODUCER && strings.HasPrefix(s.Name, "send conc-") {
			n++
			if s.ParentID != "" {
				t.Errorf("PRODUCER span %q has parent %s: a batch of several requests' records", s.Name, s.ParentID)
			}
		}
	}
	t.Logf("%d PRODUCER spans (of %d spans), all roots", n, len(spans))
}
