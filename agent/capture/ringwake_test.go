package capture

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tracer-agent/tracer-agent/internal/testenv"
)

// The data reader sleeps on a timer between polls; a burst (the kernel
// wakes the ring when the bytes waiting cross an eighth of it) must reach
// it without waiting for the timer. Here the timer is an hour, so only the
// wakeup can deliver.
func TestDataReaderWokenByBurst(t *testing.T) {
	testenv.RequireBPF(t)
	c, err := Load(Options{CaptureBytes: 4096, RingBytes: 1 << 20}) // wakes at 128 KiB
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	defer c.Close()
	if err := c.Track(uint32(os.Getpid()), false); err != nil {
		t.Fatal(err)
	}
	w, err := newRingWaker(c.coll.Maps["events"])
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.run(ctx)
	var got atomic.Int64
	done := make(chan struct{})
	go func() {
		c.readData(ctx, c.data, func(e *Event) { got.Add(int64(len(e.Data))) }, time.Hour, w.C)
		close(done)
	}()

	time.Sleep(200 * time.Millisecond) // the reader found the ring empty and sleeps

	cli := discardConn(t)
	chunk := bytes.Repeat([]byte("w"), 4096)
	for range 64 { // 256 KiB sent, 4 KiB captured per write: well over 128 KiB
		if _, err := cli.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(3 * time.Second)
	for got.Load() < 128<<10 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := got.Load(); n < 128<<10 {
		t.Fatalf("reader got %d bytes of events without its timer; the kernel's wakeup did not reach it", n)
	}
	cancel()
	<-done
}

// discardConn is a loopback TCP connection whose peer reads and drops
// everything; both ends are closed at the end of the test.
func discardConn(t *testing.T) net.Conn {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		if s, err := ln.Accept(); err == nil {
			_, _ = io.Copy(io.Discard, s)
			s.Close()
		}
	}()
	cli, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}
