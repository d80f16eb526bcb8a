package capture

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"testing"

	"github.com/tracer-agent/tracer-agent/internal/testenv"
	"github.com/tracer-agent/tracer-agent/probes/probe"
)

// The in-place reader over a ring a few dozen records long: records wrap around
// its end many times (read contiguously through the second mapping), are
// read in order with their bytes intact, and the space they free is given
// back to the kernel (no drops while the reader keeps up).
func TestRingMapWrapsAround(t *testing.T) {
	testenv.RequireBPF(t)
	c, err := Load(Options{CaptureBytes: 4096, RingBytes: 64 << 10})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	defer c.Close()
	if err := c.Track(uint32(os.Getpid()), false); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if s, err := ln.Accept(); err == nil {
			_, _ = io.Copy(io.Discard, s)
		}
	}()
	cli, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()

	msg := func(i int) []byte { // 1000 bytes + an odd tail: records of varied padding
		return append([]byte(fmt.Sprintf("seq:%05d:", i)), bytes.Repeat([]byte{'a' + byte(i%26)}, 990+i%7)...)
	}
	const n = 300 // ~330 KiB of sends (and the reads of them) through a 64 KiB ring
	next, bad := 0, 0
	var ev Event
	read := func(b []byte) {
		if c.decode(b, &ev) != nil || ev.Type != Data || ev.Dir != probe.Send || !bytes.HasPrefix(ev.Data, []byte("seq:")) {
			return
		}
		if !bytes.Equal(ev.Data, msg(next)) {
			bad++
		}
		next++
	}
	for i := range n {
		if _, err := cli.Write(msg(i)); err != nil {
			t.Fatal(err)
		}
		c.data.drain(read) // the reads of this process fill the ring too
	}
	c.data.drain(read)
	if next != n || bad != 0 {
		t.Fatalf("read %d of %d sends in order, %d with wrong bytes", next, n, bad)
	}
	if cnt, err := c.Counters(); err != nil || cnt.DataDrops != 0 {
		t.Fatalf("ring drops %d (err %v): the reader did not give the space back", cnt.DataDrops, err)
	}
}
