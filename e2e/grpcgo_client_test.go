package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/tracer-agent/tracer-agent/internal/otlptest"
	"github.com/tracer-agent/tracer-agent/internal/testdb"
)

// TestGRPCGoClientLinks: HTTP/1 → Go → grpc-go → Python and PostgreSQL,
// one trace per request. A Go HTTP/1 service (front) serves /front/ID by
// making, on one grpc-go connection, three unary calls and one server
// streaming call to a grpc-go server (hop), whose handlers each GET
// /users/10*ID+k of a Python service and run a PostgreSQL query. front
// makes the calls one after the other (seq) or all at once from an
// errgroup's goroutines (par: goroutine lineage, bpf/golineage.h), and its
// requests come inflight at a time, so many callers' HEADERS share the
// loopy writer's writes: each stream must carry the CLIENT ids of its own
// caller's request (bpf/h2_out.h, the grpc-go client uprobes in
// bpf/grpcgo.h), and hop's handlers their stream's (bpf/h2_stream.h).
// Every span id unique; every chain walked from the Python span up to the
// front request it was made for, in one trace of exactly its spans.
func TestGRPCGoClientLinks(t *testing.T) {
	requireE2E(t)
	pg := testdb.StartPostgres(t)
	seed(t, "postgres", pg.DSN)
	for _, mode := range []string{"seq", "par"} {
		for _, inflight := range []int{1, 16, 64} {
			t.Run(fmt.Sprintf("%s/inflight%d", mode, inflight), func(t *testing.T) {
				n := 20 + 2*inflight
				exact, wrong, problems := frontChains(t, pg.DSN, mode, inflight, n)
				// A trace that is not exact is unlinked somewhere, never
				// mislinked (wrong counts those): e.g. our field split
				// across the hop's reads (TestGRPCGoHandlerLinks).
				for i, p := range problems {
					if i < 10 {
						t.Log(p)
					}
				}
				if exact < n*99/100 || (inflight == 1 && exact != n) {
					t.Errorf("%d of %d traces exact, want 99 %% (all, one request at a time)", exact, n)
				}
				if wrong > 0 {
					t.Errorf("%d wrong links", wrong)
				}
				t.Logf("%d requests: %d exact traces", n, exact)
			})
		}
	}
}

// TestGoPoolDoesNotLink: the same chain, but front hands its calls to a
// pool of goroutines it started at start, which receive them over a
// channel: nothing proves which request a worker's call is for, so every
// front CLIENT span is a root (the hop below still its child), never a
// wrong link. So are the errgroup's calls with --no-go-lineage.
func TestGoPoolDoesNotLink(t *testing.T) {
	requireE2E(t)
	pg := testdb.StartPostgres(t)
	seed(t, "postgres", pg.DSN)
	for _, c := range []struct {
		mode     string
		inflight int
		args     []string
	}{{"pool", 1, nil}, {"pool", 16, nil}, {"pool", 64, nil}, {"par", 16, []string{"--no-go-lineage"}}} {
		t.Run(fmt.Sprintf("%s/inflight%d%s", c.mode, c.inflight, strings.Join(c.args, "")), func(t *testing.T) {
			n := 20 + c.inflight
			exact, wrong, _ := frontChains(t, pg.DSN, c.mode, c.inflight, n, c.args...)
			if exact != 0 || wrong != 0 {
				t.Errorf("%d traces exact, %d wrong links; want none of either: the pool's calls are roots", exact, wrong)
			}
		})
	}
}

// frontChains runs the chain for n requests, inflight at a time, and
// checks each: exact traces, wrong links (a parent other than the one the
// request's chain needs) and what was wrong with the others.
func frontChains(t *testing.T, dsn, mode string, inflight, n int, agentArgs ...string) (exact, wrong int, problems []string) {
	return frontChainsOf(t, grpcApp, dsn, mode, inflight, n, agentArgs...)
}

// frontChainsOf: frontChains with app as the grpcapp binary (named
// e2e-grpcapp).
func frontChainsOf(t *testing.T, grpcApp, dsn, mode string, inflight, n int, agentArgs ...string) (exact, wrong int, problems []string) {
	rcv := otlptest.Start(t)
	users := startServer(t, "python", "gc-users", 0)
	ag := startAgent(t, rcv, append([]string{"--exe", "*/e2e-grpcapp", "--pid", strconv.Itoa(users.Pid())}, agentArgs...)...)
	hop := start(t, []string{"OTEL_SERVICE_NAME=gc-hop", "PG_DSN=" + dsn}, grpcApp, "hop", strconv.Itoa(users.Port))
	hopAddr := "127.0.0.1:" + strconv.Itoa(portOf(t, hop))
	front := start(t, []string{"OTEL_SERVICE_NAME=gc-front"}, grpcApp, "front", hopAddr, mode)
	frontURL := fmt.Sprintf("http://127.0.0.1:%d/front/", portOf(t, front))
	ag.waitOutput(t, "grpc-go client: each call's stream", 15*time.Second)
	if len(agentArgs) == 0 {
		ag.waitOutput(t, "go lineage: goroutines a request starts", 15*time.Second)
	}
	run(t, []string{"OTEL_SERVICE_NAME=gc-get"}, grpcApp, "get", frontURL, strconv.Itoa(inflight), strconv.Itoa(n))
	const perReq = 22 // get, front, and per call: CLIENT, SERVER, HTTP CLIENT, users SERVER, SELECT
	spans := rcv.WaitFor(t, 30*time.Second, "22 spans per request", func(s []otlptest.Span) bool {
		return len(s) >= perReq*n
	})
	time.Sleep(500 * time.Millisecond) // anything extra would show now
	ag.stop(t)
	spans = rcv.Spans()
	byID := map[string]otlptest.Span{}
	perTrace := map[string]int{}
	children := map[string][]otlptest.Span{}
	for _, s := range spans {
		if _, dup := byID[s.SpanID]; dup {
			t.Errorf("span id %s twice", s.SpanID)
		}
		byID[s.SpanID] = s
		perTrace[s.TraceID]++
		children[s.ParentID] = append(children[s.ParentID], s)
	}
	// parentIs: s's parent, which must be a span of service, kind and
	// name in s's trace; a parent elsewhere is a wrong link.
	parentIs := func(s otlptest.Span, service string, kind tracepb.Span_SpanKind, name string) (otlptest.Span, error) {
		p, ok := byID[s.ParentID]
		if !ok || p.Service != service || p.Kind != kind || p.Name != name || p.TraceID != s.TraceID {
			if s.ParentID != "" {
				wrong++
			}
			return p, fmt.Errorf("parent of %s %s %q is %v, want %s %s %q", s.Service, s.Kind, s.Name, p, service, kind, name)
		}
		return p, nil
	}

	for i := 1; i <= n; i++ {
		id := strconv.Itoa(i)
		err := func() error {
			fs := otlptest.Filter(serverSpans(spans, "gc-front"), func(s otlptest.Span) bool { return s.Attrs["url.path"] == "/front/"+id })
			if len(fs) != 1 {
				return fmt.Errorf("%d front SERVER spans", len(fs))
			}
			fr := fs[0]
			if fr.ParentID != "" {
				if _, err := parentIs(fr, "gc-get", tracepb.Span_SPAN_KIND_CLIENT, "GET"); err != nil {
					return err
				}
			}
			for k, method := range []string{"Check", "Check", "Check", "Watch"} {
				path := "/users/" + strconv.Itoa(10*i+k+1)
				us := otlptest.Filter(serverSpans(spans, "gc-users"), func(s otlptest.Span) bool { return s.Attrs["url.path"] == path })
				if len(us) != 1 {
					return fmt.Errorf("%s: %d users SERVER spans", path, len(us))
				}
				method := "grpc.health.v1.Health/" + method
				hc, err := parentIs(us[0], "gc-hop", tracepb.Span_SPAN_KIND_CLIENT, "GET /users/{id}")
				if err != nil {
					return err
				}
				hs, err := parentIs(hc, "gc-hop", tracepb.Span_SPAN_KIND_SERVER, method)
				if err != nil {
					return err
				}
				fc, err := parentIs(hs, "gc-front", tracepb.Span_SPAN_KIND_CLIENT, method)
				if err != nil {
					return err
				}
				if fc.ParentID != fr.SpanID {
					if fc.ParentID != "" {
						wrong++
					}
					return fmt.Errorf("%s: the %s CLIENT span's parent is %s, want front's SERVER span %s", path, method, fc.ParentID, fr.SpanID)
				}
				sel := otlptest.Filter(children[hs.SpanID], func(s otlptest.Span) bool { return s.Attrs["db.operation.name"] == "SELECT" })
				if len(sel) != 1 || sel[0].TraceID != hs.TraceID {
					return fmt.Errorf("%s: %d SELECT spans under the %s SERVER span", path, len(sel), method)
				}
			}
			want := perReq
			if fr.ParentID == "" {
				want--
			}
			if got := perTrace[fr.TraceID]; got != want {
				return fmt.Errorf("%d spans in its trace, want %d", got, want)
			}
			return nil
		}()
		if err != nil {
			problems = append(problems, "/front/"+id+": "+err.Error())
			continue
		}
		exact++
	}
	if len(spans) != perReq*n {
		t.Errorf("%d spans, want %d", len(spans), perReq*n)
	}
	return exact, wrong, problems
}

// report fails t with the first problems of a list.
func report(t *testing.T, problems []string) {
	t.Helper()
	for i, p := range problems {
		if i == 10 {
			t.Errorf("... %d problems in all", len(problems))
			break
		}
		t.Error(p)
	}
}
