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
	got, last, bad := 0, -1, 0
	var ev Event
	read := func(b []byte) {
		if c.decode(b, &ev) != nil || ev.Type != Data || ev.Dir != probe.Send || !bytes.HasPrefix(ev.Data, []byte("seq:")) {
			return
		}
		var i int
		if _, err := fmt.Sscanf(string(ev.Data), "seq:%05d:", &i); err != nil || i <= last || !bytes.Equal(ev.Data, msg(i)) {
			bad++
			return
		}
		last = i
		got++
	}
	for i := range n {
		if _, err := cli.Write(msg(i)); err != nil {
			t.Fatal(err)
		}
		c.data.drain(read) // the reads of this process fill the ring too
	}
	c.data.drain(read)
	// A reader that did not give space back would lose every send once the
	// first 128 KiB were through. On a loaded machine the process's other
	// goroutines can still fill the ring between two drains: such drops
	// are counted, and what is read is whole and in order.
	cnt, _ := c.Counters()
	if bad != 0 || got < n-int(cnt.DataDrops) || got < n/2 {
		t.Fatalf("read %d of %d sends whole and in order, %d wrong or out of order (ring drops %d)", got, n, bad, cnt.DataDrops)
	}
}
