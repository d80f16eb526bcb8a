package capture

import (
	"bytes"
	"fmt"
	"os"
	"testing"

	"github.com/tracer-agent/tracer-agent/internal/testenv"
	"github.com/tracer-agent/tracer-agent/probes/probe"
)

// The in-place reader over a small ring: records wrap around its end many
// times (read contiguously through the second mapping), are read in order
// with their bytes intact, and the space they free is given back to the
// kernel (no send lost while the reader keeps up; the ring has room for
// what other goroutines of this traced test process send meanwhile).
func TestRingMapWrapsAround(t *testing.T) {
	testenv.RequireBPF(t)
	c, err := Load(Options{CaptureBytes: 4096, RingBytes: 128 << 10})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	defer c.Close()
	if err := c.Track(uint32(os.Getpid()), false); err != nil {
		t.Fatal(err)
	}
	cli := discardConn(t)

	msg := func(i int) []byte { // 1000 bytes + an odd tail: records of varied padding
		return append([]byte(fmt.Sprintf("seq:%05d:", i)), bytes.Repeat([]byte{'a' + byte(i%26)}, 990+i%7)...)
	}
	const n = 600 // ~660 KiB of sends, and the reads of them, through a 128 KiB ring
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
	// A reader that did not give space back would lose sends (ring drops)
	// once the first 128 KiB were through.
	if next != n || bad != 0 {
		cnt, _ := c.Counters()
		t.Fatalf("read %d of %d sends in order, %d with wrong bytes (ring drops %d)", next, n, bad, cnt.DataDrops)
	}
}
