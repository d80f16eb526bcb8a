package capture_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tracer-agent/tracer-agent/agent/capture"
	"github.com/tracer-agent/tracer-agent/probes/probe"
)

// TestCaptureManyIovecs: gRPC C-core writes one iovec per HPACK string and
// frame piece (27 for one request, up to 260): every iovec is captured, in
// order, up to the capture size.
func TestCaptureManyIovecs(t *testing.T) {
	c, rec := start(t, capture.Options{CaptureBytes: 4096})
	if err := c.Track(uint32(os.Getpid()), false); err != nil {
		t.Fatal(err)
	}
	cli, srv := pair(t, "tcp4", "127.0.0.1:0")
	cfd := rawFD(t, cli)
	for _, n := range []int{27, 260, 1024} { // 1024 iovecs of 5 bytes: 5120 > 4096 captured
		var iovs [][]byte
		var all []byte
		for i := range n {
			b := []byte(fmt.Sprintf("%05d", i))[:5]
			if n == 27 {
				b = b[:1+i%5] // uneven pieces
			}
			iovs = append(iovs, b)
			all = append(all, b...)
		}
		if _, err := unix.SendmsgBuffers(cfd, iovs, nil, nil, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(srv, make([]byte, len(all))); err != nil {
			t.Fatal(err)
		}
		want := all[:min(len(all), 4096)]
		e := rec.waitData(t, fmt.Sprintf("sendmsg of %d iovecs", n), func(e *capture.Event) bool {
			return e.Dir == probe.Send && e.Len == uint32(len(all))
		})
		t.Logf("%d iovecs: %d of %d bytes captured", n, len(e.Data), e.Len)
		if !bytes.Equal(e.Data, want) {
			t.Errorf("%d iovecs: captured %d bytes %q..., want %d bytes %q...", n, len(e.Data), e.Data[:min(len(e.Data), 40)], len(want), want[:40])
		}
	}
}
