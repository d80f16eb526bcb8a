package e2e

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/tracer-agent/tracer-agent/internal/otlptest"
	"github.com/tracer-agent/tracer-agent/internal/testenv"
	"github.com/tracer-agent/tracer-agent/internal/testkafka"
)

// TestKafkaSpans: real Kafka clients (franz-go, sarama on an old protocol
// version, kafka-go, kcat, confluent-kafka/librdkafka) against a kfake
// broker in its own process become PRODUCER/CONSUMER spans; a consumer of
// a record carrying a traceparent joins that trace. (These clients write
// from their own background goroutines/threads, so their produce spans are
// not children of the HTTP request that asked for them: see README.)
func TestKafkaSpans(t *testing.T) {
	requireE2E(t)
	kcat := testenv.RequireCommand(t, "kcat")
	py := testenv.RequireCommand(t, "/usr/bin/python3")
	broker := testkafka.StartBroker(t)
	for _, topic := range []string{"orders", "legacy", "kgo", "linked", "kc", "ck"} {
		testkafka.CreateTopic(t, broker.Addr, topic, 1)
	}
	rcv := otlptest.Start(t)
	ag := startAgent(t, rcv, "--exe", "*/e2e-kafkaapp", "--exe", "*/kcat", "--exe", "ckprod.py")
	app := start(t, []string{"OTEL_SERVICE_NAME=kafka-svc"}, kafkaApp, "serve", broker.Addr)
	port := portOf(t, app)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	for _, p := range []string{"/produce/franz/orders?n=3", "/produce/sarama/legacy?n=2", "/produce/kafkago/kgo?n=1",
		"/produce/franz/linked?n=1&traceparent=00-" + parentTrace + "-" + parentSpan + "-01"} {
		if out := curl(t, base+p); !strings.HasPrefix(out, "produced") {
			t.Fatalf("%s: %s", p, out)
		}
	}
	run(t, []string{"OTEL_SERVICE_NAME=kafka-consumer"}, kafkaApp, "consume", broker.Addr, "linked", "1", "g1")
	cmd := exec.Command(kcat, "-b", broker.Addr, "-P", "-t", "kc")
	cmd.Stdin = strings.NewReader("one\ntwo\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat: %v\n%s", err, out)
	}
	run(t, nil, py, "testdata/ckprod.py", broker.Addr, "ck")

	find := func(spans []otlptest.Span, name string) (otlptest.Span, bool) {
		for _, s := range spans {
			if s.Name == name && s.Attrs["messaging.system"] == "kafka" {
				return s, true
			}
		}
		return otlptest.Span{}, false
	}
	names := []string{"send orders", "send legacy", "send kgo", "send linked", "receive linked", "send kc", "send ck"}
	spans := rcv.WaitFor(t, 30*time.Second, "kafka spans", func(s []otlptest.Span) bool {
		for _, n := range names {
			if _, ok := find(s, n); !ok {
				return false
			}
		}
		return true
	})
	ag.stop(t)

	for _, c := range []struct {
		name, client, path string
		count              any
	}{
		{"send orders", "kafkaapp-franz", "/produce/franz/orders", int64(3)},
		{"send legacy", "kafkaapp-sarama", "/produce/sarama/legacy", nil},
		{"send kgo", "kafkaapp-kafkago", "/produce/kafkago/kgo", nil},
	} {
		s, _ := find(spans, c.name)
		if s.Kind != tracepb.Span_SPAN_KIND_PRODUCER {
			t.Errorf("%s: kind %v", c.name, s.Kind)
		}
		wantAttr(t, s, "messaging.destination.name", strings.TrimPrefix(c.name, "send "))
		wantAttr(t, s, "messaging.operation.type", "send")
		wantAttr(t, s, "messaging.client.id", c.client)
		wantAttr(t, s, "messaging.destination.partition.id", "0")
		if c.count != nil {
			wantAttr(t, s, "messaging.batch.message_count", c.count)
		}
		if srv, ok := byPath(serverSpans(spans, "kafka-svc"), c.path); !ok || !srv.ContainsWithin(s, time.Millisecond) {
			t.Errorf("%s [%v %v] not within the HTTP request that made it", c.name, s.Start, s.End)
		}
	}
	recv, _ := find(spans, "receive linked")
	if recv.Kind != tracepb.Span_SPAN_KIND_CONSUMER || recv.Service != "kafka-consumer" {
		t.Errorf("receive span: %s", recv)
	}
	if recv.TraceID != parentTrace || recv.ParentID != parentSpan {
		t.Errorf("consumer of a record with traceparent: trace=%s parent=%s, want %s/%s", recv.TraceID, recv.ParentID, parentTrace, parentSpan)
	}
	wantAttr(t, recv, "messaging.consumer.group.name", "g1")
	wantAttr(t, recv, "messaging.operation.type", "receive")
	if s, _ := find(spans, "send kc"); s.Service != "kcat" {
		t.Errorf("kcat span service %q", s.Service)
	}
	if s, _ := find(spans, "send ck"); s.Service != "ckprod" {
		t.Errorf("librdkafka span service %q", s.Service)
	}
}
