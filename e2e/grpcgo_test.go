package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/tracer-agent/tracer-agent/internal/otlptest"
	"github.com/tracer-agent/tracer-agent/internal/testdb"
)

// TestGRPCGoHandlerLinks: a grpc-go client makes N health checks on one
// connection, inflight at a time; the grpc-go server handles each on a
// goroutine of its own (or a NumStreamWorkers worker) and, from the
// handler, GETs /users/<id> of a Python service, id the check's own. The
// kernel decides each stream's ids as the transport goroutine reads its
// HEADERS (bpf/h2_stream.h) and the handleStream uprobe hands them to the
// handler goroutine (bpf/grpcgo.h): for every call, at every concurrency,
// server SERVER → its HTTP CLIENT → users SERVER is one trace, parented
// by the client's CLIENT span (a root: the load client serves no
// request) whenever its HEADERS carried a traceparent; every span id
// unique, no link elsewhere. A HEADERS frame split across reads (grpc-go's
// bufio reader fills what room it has left) is decided from its last
// piece, where our field is; only a split inside that field leaves a
// handler's call unlinked (never mislinked).
func TestGRPCGoHandlerLinks(t *testing.T) {
	requireE2E(t)
	const method = "grpc.health.v1.Health/Check"
	for _, workers := range []int{0, 4} {
		for _, inflight := range []int{1, 16, 64} {
			t.Run(fmt.Sprintf("workers%d/inflight%d", workers, inflight), func(t *testing.T) {
				calls := 40 + 4*inflight
				rcv := otlptest.Start(t)
				users := startServer(t, "python", "grpcgo-users", 0)
				ag := startAgent(t, rcv, "--exe", "*/e2e-grpcapp", "--pid", strconv.Itoa(users.Pid()))
				hop := start(t, []string{"OTEL_SERVICE_NAME=grpcgo-hop"}, grpcApp, "hop", strconv.Itoa(users.Port), strconv.Itoa(workers))
				addr := "127.0.0.1:" + strconv.Itoa(portOf(t, hop))
				ag.waitOutput(t, "grpc-go server: each stream's handler goroutine", 15*time.Second)
				run(t, []string{"OTEL_SERVICE_NAME=grpcgo-client"}, grpcApp, "load", addr,
					strconv.Itoa(inflight), strconv.Itoa(calls), "0", "ids")
				spans := rcv.WaitFor(t, 30*time.Second, "4 spans per call", func(s []otlptest.Span) bool {
					return len(s) >= 4*calls
				})
				time.Sleep(500 * time.Millisecond) // anything extra would show now
				ag.stop(t)
				spans = rcv.Spans()
				byID := map[string]otlptest.Span{}
				perTrace := map[string]int{}
				for _, s := range spans {
					if _, dup := byID[s.SpanID]; dup {
						t.Errorf("span id %s twice", s.SpanID)
					}
					byID[s.SpanID] = s
					perTrace[s.TraceID]++
				}
				hops := []struct {
					service, name string
					kind          tracepb.Span_SpanKind
				}{
					{"grpcgo-hop", "GET /users/{id}", tracepb.Span_SPAN_KIND_CLIENT},
					{"grpcgo-hop", method, tracepb.Span_SPAN_KIND_SERVER},
					{"grpcgo-client", method, tracepb.Span_SPAN_KIND_CLIENT},
				}
				// The handler's hops must always be exact; the client's
				// CLIENT span parents the SERVER span when its HEADERS got a
				// traceparent (up to 256 HEADERS per write do), else the
				// SERVER span is a root: never a link elsewhere.
				exact, handled, unlinked := 0, 0, 0
				var problems []string
				for i := 1; i <= calls; i++ {
					path := "/users/" + strconv.Itoa(i)
					us := otlptest.Filter(serverSpans(spans, "grpcgo-users"), func(s otlptest.Span) bool { return s.Attrs["url.path"] == path })
					if len(us) != 1 {
						problems = append(problems, fmt.Sprintf("%s: %d users SERVER spans", path, len(us)))
						continue
					}
					cur, err := us[0], error(nil)
					if cur.ParentID == "" {
						// Unlinked, not mislinked: the kernel decided nothing for
						// the stream (our field itself split across reads).
						unlinked++
						continue
					}
					for j, h := range hops {
						if j == 2 && cur.ParentID == "" {
							break // the server span is a root: its HEADERS had no traceparent
						}
						p, ok := byID[cur.ParentID]
						if !ok || p.Service != h.service || p.Kind != h.kind || p.Name != h.name || p.TraceID != cur.TraceID {
							err = fmt.Errorf("%s: parent of %s %s is %v, want %s %s %q", path, cur.Service, cur.Kind, p, h.service, h.kind, h.name)
							break
						}
						cur = p
					}
					if err == nil && cur.ParentID != "" {
						err = fmt.Errorf("%s: the %s %s span has parent %s, want a root", path, cur.Service, cur.Kind, cur.ParentID)
					}
					want := 4
					if cur.Service == "grpcgo-hop" {
						want = 3
					}
					if err == nil && perTrace[cur.TraceID] != want {
						err = fmt.Errorf("%s: %d spans in its trace, want %d", path, perTrace[cur.TraceID], want)
					}
					if err != nil {
						problems = append(problems, err.Error())
						continue
					}
					handled++
					if want == 4 {
						exact++
					}
				}
				if handled < calls*99/100 || (inflight == 1 && handled != calls) {
					problems = append(problems, fmt.Sprintf("the handler's call linked in %d of %d, want 99 %% (all, one call at a time)", handled, calls))
				}
				if len(spans) != 4*calls {
					problems = append(problems, fmt.Sprintf("%d spans, want %d", len(spans), 4*calls))
				}
				for i, p := range problems {
					if i == 10 {
						t.Errorf("... %d problems in all", len(problems))
						break
					}
					t.Error(p)
				}
				t.Logf("%d calls: handler linked in %d (unlinked %d), the whole trace (client span too) in %d", calls, handled, unlinked, exact)
			})
		}
	}
}

// TestGoStripped: a Go service built as releases usually are
// (-ldflags="-s -w": no symbol table, no DWARF) still gets its hand-offs:
// the functions are found through .gopclntab and the lineage's runtime
// offsets by its Go release (and grpc-go's by its grpc-go release). Its
// handler's net/http call to a Python service is the child of its SERVER
// span, one trace; and the grpc-go chain of TestGRPCGoClientLinks, every
// Go service a release build, is exact.
func TestGoStripped(t *testing.T) {
	requireE2E(t)
	bin := filepath.Join(t.TempDir(), "e2e-stripped")
	if out, err := exec.Command("go", "build", "-ldflags=-s -w", "-o", bin, "./testdata/goserver").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	rcv := otlptest.Start(t)
	users := startServer(t, "python", "stripped-users", 0)
	ag := startAgent(t, rcv, "--exe", "*/e2e-stripped", "--pid", strconv.Itoa(users.Pid()))
	p := start(t, []string{"OTEL_SERVICE_NAME=stripped"}, bin, "127.0.0.1:0")
	port := portOf(t, p)
	ag.waitOutput(t, "go lineage: goroutines a request starts", 10*time.Second)
	if strings.Contains(ag.Output(), "net/http client calls will not link") {
		t.Errorf("net/http hand-off not attached to the stripped binary:\n%s", ag.Output())
	}
	curl(t, "-o", "/dev/null", fmt.Sprintf("http://127.0.0.1:%d/call?url=%s", port, users.URL("/users/7")))
	spans := rcv.WaitFor(t, 10*time.Second, "the stripped service's SERVER span and the users one", func(s []otlptest.Span) bool {
		return len(serverSpans(s, "stripped")) == 1 && len(serverSpans(s, "stripped-users")) == 1
	})
	srv, us := serverSpans(spans, "stripped")[0], serverSpans(spans, "stripped-users")[0]
	var call otlptest.Span
	for _, s := range spans {
		if s.SpanID == us.ParentID {
			call = s
		}
	}
	if call.Service != "stripped" || call.ParentID != srv.SpanID || us.TraceID != srv.TraceID {
		t.Errorf("users SERVER span's parent %+v, want the stripped service's CLIENT span under its SERVER span %s", call, srv.SpanID)
	}

	// grpc-go release builds: the chain of TestGRPCGoClientLinks (errgroup,
	// 16 in flight) with every Go service built -s -w.
	app := filepath.Join(t.TempDir(), "e2e-grpcapp")
	if out, err := exec.Command("go", "build", "-ldflags=-s -w", "-o", app, "./apps/grpcapp").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	pg := testdb.StartPostgres(t)
	seed(t, "postgres", pg.DSN)
	exact, wrong, problems := frontChainsOf(t, app, pg.DSN, "par", 16, 52)
	if exact < 52*99/100 || wrong != 0 {
		report(t, problems)
		t.Errorf("release builds: %d of 52 traces exact, %d wrong links", exact, wrong)
	}
}
