package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tracer-agent/tracer-agent/internal/otlptest"
)

// On kernels with the sockhash FIONREAD regression (6.6.128+, 6.12.75+,
// 6.18.14+; these machines), a socket in the sockhash answers
// ioctl(FIONREAD) with 0. nginx's upstream sockets are client sockets of a
// traced process, so they join the sockhash; nginx asks FIONREAD how much
// is left after a full read and, told 0, waits for an edge that never
// comes: large responses stalled for tens of seconds and were cut. The
// agent detects the regression at start and attaches a pass-through
// receive verdict (bpf/inject.h), which makes FIONREAD right.

// pattern is the body of /bytes/<n>: n bytes no shorter stream can fake.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i%23 + i/4096%3)
	}
	return b
}

// startBytesServer serves GET /bytes/<n> from this (untraced) process.
func startBytesServer(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/bytes/"))
		if err != nil || n < 0 || n > 64<<20 {
			http.Error(w, "bad size", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.Write(pattern(n))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// TestNginxLargeResponses: with injection on, 1 MiB responses through a
// traced nginx arrive whole and on time, 16 in flight, with and without
// upstream keep-alive; the agent reports the repair it made.
func TestNginxLargeResponses(t *testing.T) {
	requireE2E(t)
	const size, requests, inflight = 1 << 20, 48, 16
	want := pattern(size)
	for _, keepalive := range []bool{false, true} {
		t.Run(fmt.Sprintf("keepalive=%v", keepalive), func(t *testing.T) {
			ngx := startNginx(t, startBytesServer(t), keepalive)
			ag := startAgent(t, otlptest.Start(t), "--pid", strconv.Itoa(ngx.Pid()))
			if log := ag.Output(); !strings.Contains(log, "FIONREAD self-test ok") {
				t.Fatalf("agent did not report a working FIONREAD:\n%s", log)
			}
			client := &http.Client{Timeout: 15 * time.Second}
			var wg sync.WaitGroup
			slots := make(chan struct{}, inflight)
			errs := make(chan error, requests)
			start := time.Now()
			for i := 0; i < requests; i++ {
				wg.Add(1)
				slots <- struct{}{}
				go func() {
					defer wg.Done()
					defer func() { <-slots }()
					resp, err := client.Get(ngx.URL(fmt.Sprintf("/bytes/%d", size)))
					if err != nil {
						errs <- err
						return
					}
					got, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err != nil || !bytes.Equal(got, want) {
						errs <- fmt.Errorf("status %d, %d of %d bytes (%v)", resp.StatusCode, len(got), size, err)
					}
				}()
			}
			wg.Wait()
			close(errs)
			n := 0
			for err := range errs {
				if n++; n <= 5 {
					t.Error(err)
				}
			}
			if n > 0 {
				t.Fatalf("%d of %d responses through traced nginx broken or late", n, requests)
			}
			t.Logf("%d × %d bytes through traced nginx in %v", requests, size, time.Since(start).Round(time.Millisecond))
		})
	}
}
