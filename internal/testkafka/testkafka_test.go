package testkafka

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestBroker produces and consumes one record through a broker process.
func TestBroker(t *testing.T) {
	b := StartBroker(t)
	CreateTopic(t, b.Addr, "t1", 2)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr), kgo.ConsumeTopics("t1"), kgo.DefaultProduceTopic("t1"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, kgo.StringRecord("hello")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	fs := cl.PollFetches(ctx)
	if errs := fs.Errors(); len(errs) > 0 {
		t.Fatal(errs)
	}
	if n := fs.NumRecords(); n != 1 {
		t.Fatalf("got %d records", n)
	}
	b.Stop()
	b.Stop()
}
