package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tracer-agent/tracer-agent/internal/otlptest"
)

var (
	h2specOnce sync.Once
	h2specBin  string
	h2specErr  error
)

// buildH2spec builds the h2spec conformance tester pinned by
// testdata/h2spec/go.mod (its own module: the agent does not depend on it).
func buildH2spec(t *testing.T) string {
	t.Helper()
	h2specOnce.Do(func() {
		h2specBin = filepath.Join(binDir, "h2spec")
		out, err := exec.Command("go", "build", "-C", "testdata/h2spec", "-o", h2specBin, "github.com/summerwind/h2spec/cmd/h2spec").CombinedOutput()
		if err != nil {
			h2specErr = err
			h2specBin = string(out)
		}
	})
	if h2specErr != nil {
		t.Fatalf("build h2spec: %v\n%s", h2specErr, h2specBin)
	}
	return h2specBin
}

var h2specSummary = regexp.MustCompile(`(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed`)

// h2specResult is what a run of h2spec concluded.
type h2specResult struct {
	summary string   // "145 tests, 144 passed, 0 skipped, 1 failed"
	passed  int      // tests passed
	failed  []string // the failed tests' titles, sorted
}

// runH2spec runs every h2spec test case against 127.0.0.1:port. h2spec
// exits non-zero when a case fails, so only its report counts.
func runH2spec(t *testing.T, bin string, port int) h2specResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// -o: seconds to wait for an expected frame; generous for a busy machine.
	out, _ := exec.CommandContext(ctx, bin, "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-o", "5").CombinedOutput()
	m := h2specSummary.FindSubmatch(out)
	if m == nil {
		t.Fatalf("h2spec printed no summary:\n%s", out)
	}
	r := h2specResult{summary: string(m[0])}
	r.passed, _ = strconv.Atoi(string(m[2]))
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "×") && !slices.Contains(r.failed, l) {
			r.failed = append(r.failed, l)
		}
	}
	slices.Sort(r.failed)
	return r
}

// TestH2spec runs the h2spec conformance suite (145 cases of deliberately
// odd, malformed and hostile HTTP/2) against nghttpd, first untraced, then
// with the agent tracing nghttpd and h2spec itself: the results must be
// identical (the agent never alters traffic), the agent must neither crash
// nor panic, and the spans must be plausible for the streams h2spec opens.
func TestH2spec(t *testing.T) {
	requireE2E(t)
	bin := buildH2spec(t)
	srv := startNghttpd(t, "nghttpd")
	plain := runH2spec(t, bin, srv.Port)
	t.Logf("untraced: %s %v", plain.summary, plain.failed)
	if plain.passed < 100 {
		t.Fatalf("untraced h2spec run: %s\n%v", plain.summary, plain.failed)
	}

	rcv := otlptest.Start(t)
	ag := startAgent(t, rcv, "--pid", strconv.Itoa(srv.Pid()), "--exe", "*/h2spec")
	traced := runH2spec(t, bin, srv.Port)
	t.Logf("traced: %s %v", traced.summary, traced.failed)
	if traced.summary != plain.summary || !slices.Equal(traced.failed, plain.failed) {
		t.Errorf("h2spec results differ under tracing:\nuntraced: %s %v\ntraced:   %s %v", plain.summary, plain.failed, traced.summary, traced.failed)
	}
	// A request h2spec completes gets a response from nghttpd: most cases
	// send at least one, so both ends have spans.
	spans := rcv.WaitFor(t, 20*time.Second, "nghttpd and h2spec spans", func(s []otlptest.Span) bool {
		return len(serverSpans(s, "nghttpd")) >= 50 && len(clientSpans(s, "h2spec")) >= 50
	})
	time.Sleep(time.Second)
	spans = rcv.Spans()
	ag.stop(t)
	noAgentPanic(t, ag)
	srvSpans, cl := serverSpans(spans, "nghttpd"), clientSpans(spans, "h2spec")
	t.Logf("%d nghttpd SERVER spans, %d h2spec CLIENT spans", len(srvSpans), len(cl))
	// Each case opens a connection and at most a few streams.
	if n := len(srvSpans); n > 4*145 {
		t.Errorf("%d SERVER spans for 145 h2spec cases", n)
	}
	// h2spec requests "/" with GET, POST or HEAD; a stream whose headers
	// were not decodable is named "HTTP", never anything invented.
	names := map[string]bool{"GET /": true, "POST /": true, "HEAD /": true, "GET": true, "POST": true, "HEAD": true, "HTTP": true, "HTTP /": true}
	for _, s := range append(srvSpans, cl...) {
		if !names[s.Name] || s.Attrs["rpc.system.name"] != nil {
			t.Errorf("implausible span %v", s)
		}
	}
	ok := 0
	for _, s := range srvSpans {
		if s.Attrs["http.response.status_code"] == int64(200) && s.Attrs["url.path"] == "/" {
			ok++
		}
	}
	if ok < 50 {
		t.Errorf("only %d SERVER spans GET / 200:\n%s", ok, otlptest.Dump(srvSpans))
	}
}
