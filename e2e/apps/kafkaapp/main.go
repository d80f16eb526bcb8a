// Command kafkaapp is the e2e tests' Kafka client service: unmodified,
// uninstrumented.
//
//	kafkaapp serve BROKER                HTTP server; GET /produce/{client}/{topic}?n=N
//	                                     produces N records with client franz, sarama
//	                                     (old protocol, V2_1_0_0) or kafkago;
//	                                     &traceparent=TP adds it as a record header
//	                                     (as an SDK-instrumented producer would)
//	kafkaapp consume BROKER TOPIC N GROUP  consumes N records (franz-go, group) and exits
//
// serve prints "listening <port>"; consume prints a line per record
// (value, key, header count, traceparent header) and "consumed N".
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/IBM/sarama"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	if len(os.Args) < 3 {
		fail(fmt.Errorf("usage: kafkaapp serve BROKER | consume BROKER TOPIC N GROUP"))
	}
	broker := os.Args[2]
	switch os.Args[1] {
	case "serve":
		serve(broker)
	case "consume":
		n, _ := strconv.Atoi(os.Args[4])
		consume(broker, os.Args[3], n, os.Args[5])
	}
}

type record struct {
	value       string
	traceparent string
}

func serve(broker string) {
	fr, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ClientID("kafkaapp-franz"), kgo.AllowAutoTopicCreation())
	fail(err)
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_1_0_0
	cfg.ClientID = "kafkaapp-sarama"
	cfg.Producer.Return.Successes = true
	sp, err := sarama.NewSyncProducer([]string{broker}, cfg)
	fail(err)
	kw := &kafka.Writer{Addr: kafka.TCP(broker), Balancer: &kafka.LeastBytes{}, AllowAutoTopicCreation: true, BatchTimeout: time.Millisecond, Transport: &kafka.Transport{ClientID: "kafkaapp-kafkago"}}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /produce/{client}/{topic}", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		if n < 1 {
			n = 1
		}
		var recs []record
		for i := 0; i < n; i++ {
			recs = append(recs, record{value: fmt.Sprintf("msg-%d", i), traceparent: r.URL.Query().Get("traceparent")})
		}
		topic := r.PathValue("topic")
		var err error
		switch r.PathValue("client") {
		case "franz":
			var krs []*kgo.Record
			for _, rec := range recs {
				kr := &kgo.Record{Topic: topic, Value: []byte(rec.value)}
				if rec.traceparent != "" {
					kr.Headers = []kgo.RecordHeader{{Key: "traceparent", Value: []byte(rec.traceparent)}}
				}
				krs = append(krs, kr)
			}
			err = fr.ProduceSync(r.Context(), krs...).FirstErr()
		case "sarama":
			var msgs []*sarama.ProducerMessage
			for _, rec := range recs {
				msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(rec.value)})
			}
			err = sp.SendMessages(msgs)
		case "kafkago":
			var msgs []kafka.Message
			for _, rec := range recs {
				msgs = append(msgs, kafka.Message{Topic: topic, Value: []byte(rec.value)})
			}
			err = kw.WriteMessages(r.Context(), msgs...)
		default:
			err = fmt.Errorf("unknown client %q", r.PathValue("client"))
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "produced %d\n", n)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	fail(err)
	fmt.Printf("listening %d\n", ln.Addr().(*net.TCPAddr).Port)
	fail(http.Serve(ln, mux))
}

func consume(broker, topic string, n int, group string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ClientID("kafkaapp-consumer"),
		kgo.ConsumeTopics(topic), kgo.ConsumerGroup(group), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	fail(err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := 0
	for got < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			fail(fmt.Errorf("consumed %d of %d: %w", got, n, err))
		}
		if errs := fs.Errors(); len(errs) > 0 {
			fail(fmt.Errorf("fetch: %v", errs[0].Err)) // e.g. a batch CRC mismatch
		}
		fs.EachRecord(func(r *kgo.Record) {
			tp := ""
			for _, h := range r.Headers {
				if h.Key == "traceparent" {
					tp = string(h.Value)
				}
			}
			fmt.Printf("record value=%q key=%q headers=%d traceparent=%s\n", r.Value, r.Key, len(r.Headers), tp)
		})
		got += fs.NumRecords()
	}
	cl.CommitUncommittedOffsets(context.Background())
	fmt.Printf("consumed %d\n", got)
}

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
