// Command broker runs a single-node in-memory Kafka cluster (franz-go's
// kfake) in its own process, so tests can trace client processes without
// the broker's bytes mixing into the traced test process.
//
// It prints "ADDR host:port" once listening, and exits when its stdin
// closes (the test died) or on SIGTERM/SIGINT.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

// advertised is a listener that reports another address: the broker then
// advertises it in Metadata, so clients keep talking through a proxy.
type advertised struct {
	net.Listener
	addr net.Addr
}

func (a advertised) Addr() net.Addr { return a.addr }

func main() {
	port := flag.Int("port", 0, "port to listen on (0: any)")
	advertise := flag.String("advertise", "", "host:port to advertise instead of the listen address")
	partitions := flag.Int("partitions", 1, "partitions of auto-created and seeded topics")
	topics := flag.String("topics", "", "comma-separated topics to create at start")
	flag.Parse()

	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(*port),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(*partitions),
		kfake.GroupMinSessionTimeout(0),
	}
	if *topics != "" {
		opts = append(opts, kfake.SeedTopics(int32(*partitions), strings.Split(*topics, ",")...))
	}
	var listen string // the real listen address (ListenAddrs reports the advertised one)
	if *advertise != "" {
		addr, err := net.ResolveTCPAddr("tcp", *advertise)
		if err != nil {
			fmt.Fprintln(os.Stderr, "advertise:", err)
			os.Exit(2)
		}
		opts = append(opts, kfake.ListenFn(func(network, address string) (net.Listener, error) {
			ln, err := net.Listen(network, address)
			if err != nil {
				return nil, err
			}
			listen = ln.Addr().String()
			return advertised{ln, addr}, nil
		}))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kfake:", err)
		os.Exit(1)
	}
	defer c.Close()
	if listen == "" {
		listen = c.ListenAddrs()[0]
	}
	fmt.Printf("ADDR %s\n", listen)

	done := make(chan struct{}, 2)
	go func() { io.Copy(io.Discard, os.Stdin); done <- struct{}{} }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sig; done <- struct{}{} }()
	<-done
}
