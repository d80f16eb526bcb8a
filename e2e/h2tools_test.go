package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/tracer-agent/tracer-agent/internal/otlptest"
	"github.com/tracer-agent/tracer-agent/internal/testenv"
)

// nghttpd is a running nghttpd (h2c, prior knowledge) serving docroot.
type nghttpd struct {
	*proc
	Port    int
	docroot string
}

func (n nghttpd) URL(path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", n.Port, path) }

// startNghttpd runs nghttpd --no-tls with OTEL_SERVICE_NAME=service on a
// free port, serving a docroot with index.html and a 100 KiB big.bin (more
// than one DATA frame and flow-control window update).
func startNghttpd(t *testing.T, service string) nghttpd {
	t.Helper()
	bin := testenv.RequireCommand(t, "nghttpd")
	dir := t.TempDir()
	for name, body := range map[string]string{"index.html": "hello h2\n", "upload": "stored\n", "big.bin": strings.Repeat("0123456789abcdef", 6400)} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	port := freePort(t)
	p := start(t, []string{"OTEL_SERVICE_NAME=" + service}, bin, "--no-tls", "-a", "127.0.0.1", "-d", dir, strconv.Itoa(port))
	waitListening(t, p, port)
	return nghttpd{proc: p, Port: port, docroot: dir}
}

// waitListening waits until p accepts connections on port.
func waitListening(t *testing.T, p *proc, port int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s not listening on %d; output:\n%s", p.cmd.Path, port, p.Output())
}

// TestNghttpd traces nghttpd (a C HTTP/2 server on libev) and its clients
// h2load (several clients, many concurrent streams each, one thread per
// client pair) and nghttp: one SERVER span per request with the right
// method, path and status, and one CLIENT span per h2load request.
func TestNghttpd(t *testing.T) {
	requireE2E(t)
	h2load := testenv.RequireCommand(t, "h2load")
	nghttp := testenv.RequireCommand(t, "nghttp")
	rcv := otlptest.Start(t)
	ag := startAgent(t, rcv, "--exe", "*/nghttpd", "--exe", "*/h2load")
	srv := startNghttpd(t, "nghttpd")

	const requests = 60
	out := run(t, []string{"OTEL_SERVICE_NAME=h2load"}, h2load, "-n", strconv.Itoa(requests), "-c", "3", "-m", "4", "-t", "2", srv.URL("/index.html"))
	if !strings.Contains(out, fmt.Sprintf("%d succeeded", requests)) || !strings.Contains(out, fmt.Sprintf("status codes: %d 2xx", requests)) {
		t.Fatalf("h2load:\n%s", out)
	}
	// nghttp: three concurrent streams on one connection, a 404 and a
	// large body; then a POST of 3000 bytes.
	run(t, nil, nghttp, "-n", srv.URL("/big.bin"), srv.URL("/missing"), srv.URL("/index.html?q=1"))
	body := filepath.Join(t.TempDir(), "body")
	if err := os.WriteFile(body, make([]byte, 3000), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, nil, nghttp, "-n", "-d", body, srv.URL("/upload"))

	const index = "GET /index.html"
	spans := rcv.WaitFor(t, 30*time.Second, "nghttpd and h2load spans", func(s []otlptest.Span) bool {
		return len(serverSpans(s, "nghttpd")) >= requests+4 && len(clientSpans(s, "h2load")) >= requests
	})
	time.Sleep(500 * time.Millisecond) // anything extra (duplicates) arrives too
	spans = rcv.Spans()
	ag.stop(t)
	noAgentPanic(t, ag)

	srvSpans := serverSpans(spans, "nghttpd")
	if len(srvSpans) != requests+4 {
		t.Errorf("nghttpd SERVER spans: %d, want %d\n%s", len(srvSpans), requests+4, otlptest.Dump(srvSpans))
	}
	if got := len(named(srvSpans, "nghttpd", index)); got != requests+1 {
		t.Errorf("%q SERVER spans: %d, want %d", index, got, requests+1)
	}
	for _, s := range srvSpans {
		wantAttr(t, s, "network.protocol.version", "2")
		if s.Attrs["url.scheme"] != "http" {
			t.Errorf("%v: url.scheme", s)
		}
	}
	for path, status := range map[string]int64{"/index.html": 200, "/big.bin": 200, "/missing": 404, "/upload": 200} {
		s, ok := byPath(srvSpans, path)
		if !ok {
			t.Errorf("no SERVER span for %s", path)
			continue
		}
		wantAttr(t, s, "http.response.status_code", status)
		if s.StatusCode == tracepb.Status_STATUS_CODE_ERROR {
			t.Errorf("%v: a server span with status %d is not an error", s, status)
		}
	}
	if s, ok := byPath(srvSpans, "/upload"); ok {
		wantAttr(t, s, "http.request.method", "POST")
		wantAttr(t, s, "http.request.body.size", int64(3000))
	}
	// Large writes are captured in part: the body size is then left out,
	// never guessed.
	if s, ok := byPath(srvSpans, "/big.bin"); ok && s.Attrs["http.response.body.size"] != nil {
		wantAttr(t, s, "http.response.body.size", int64(6400*16))
	}
	if !hasQuery(srvSpans, "/index.html", "q=1") {
		t.Errorf("no SERVER span for /index.html?q=1:\n%s", otlptest.Dump(srvSpans))
	}

	cl := clientSpans(spans, "h2load")
	if len(cl) != requests {
		t.Errorf("h2load CLIENT spans: %d, want %d", len(cl), requests)
	}
	for _, s := range cl {
		if s.Name != index {
			t.Errorf("h2load span %q", s.Name)
		}
		wantAttr(t, s, "http.response.status_code", int64(200))
		wantAttr(t, s, "url.full", srv.URL("/index.html"))
		wantAttr(t, s, "server.port", int64(srv.Port))
	}
}

func hasQuery(spans []otlptest.Span, path, query string) bool {
	for _, s := range spans {
		if s.Attrs["url.path"] == path && s.Attrs["url.query"] == query {
			return true
		}
	}
	return false
}

// noAgentPanic fails t when the agent's log shows a recovered or fatal
// panic (a parser must degrade, never crash).
// goroutineTrace is a stack dump's header ("goroutine 7 [running]:").
var goroutineTrace = regexp.MustCompile(`goroutine \d+ \[`)

func noAgentPanic(t *testing.T, ag *agent) {
	t.Helper()
	if log := ag.Output(); strings.Contains(log, "panic:") || goroutineTrace.MatchString(log) {
		t.Errorf("agent log mentions a panic:\n%s", log)
	}
}
