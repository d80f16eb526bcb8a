// Package testkafka starts a throwaway Kafka broker (franz-go's kfake) in a
// separate process for tests, so traced client processes talk to a real
// network peer that is not the test process itself.
package testkafka

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Broker is a running single-node Kafka cluster.
type Broker struct {
	Addr string // host:port the broker listens on
	Stop func() // idempotent; also run by t.Cleanup
}

// Config tunes StartBrokerWith. The zero value is StartBroker's defaults.
type Config struct {
	Port       int      // 0: any free port
	Advertise  string   // host:port to advertise in Metadata (e.g. a proxy); "": the listen address
	Partitions int      // partitions of auto-created and seeded topics; 0: 1
	Topics     []string // topics created at start (others are auto-created on first use)
}

// StartBroker builds and runs internal/testkafka/broker with auto topic
// creation and one partition per topic.
func StartBroker(t testing.TB) Broker { return StartBrokerWith(t, Config{}) }

// StartBrokerWith is StartBroker with options.
func StartBrokerWith(t testing.TB, cfg Config) Broker {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kafka-broker")
	build := exec.Command("go", "build", "-o", bin, "github.com/tracer-agent/tracer-agent/internal/testkafka/broker")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building broker: %v\n%s", err, out)
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = 1
	}
	args := []string{"-port", strconv.Itoa(cfg.Port), "-partitions", strconv.Itoa(cfg.Partitions)}
	if cfg.Advertise != "" {
		args = append(args, "-advertise", cfg.Advertise)
	}
	if len(cfg.Topics) > 0 {
		args = append(args, "-topics", strings.Join(cfg.Topics, ","))
	}
	cmd := exec.Command(bin, args...)
	// The broker exits when this pipe closes, so it never outlives the test.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting broker: %v", err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	t.Cleanup(stop)

	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
				addr <- a
				return
			}
		}
		close(addr)
	}()
	select {
	case a, ok := <-addr:
		if !ok {
			stop()
			t.Fatal("broker exited before listening")
		}
		return Broker{Addr: a, Stop: stop}
	case <-time.After(30 * time.Second):
		stop()
		t.Fatal("broker did not start in 30s")
	}
	return Broker{}
}

// CreateTopic creates a topic with the given partition count (the broker
// also auto-creates topics on first use with its default count).
func CreateTopic(t testing.TB, addr, topic string, partitions int32) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, partitions, 1
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 10000
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	for _, rt := range resp.Topics {
		if rt.ErrorCode != 0 && rt.ErrorCode != 36 { // 36: TOPIC_ALREADY_EXISTS
			t.Fatalf("create topic %s: error code %d", topic, rt.ErrorCode)
		}
	}
}

// String is for test logs.
func (b Broker) String() string { return fmt.Sprintf("kafka broker at %s", b.Addr) }
