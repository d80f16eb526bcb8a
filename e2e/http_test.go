package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/tracer-agent/tracer-agent/internal/otlptest"
	"github.com/tracer-agent/tracer-agent/internal/testenv"
)

const (
	parentTrace = "0af7651916cd43dd8448eb211c80319c"
	parentSpan  = "b7ad6b7169203331"
)

func serverSpans(spans []otlptest.Span, service string) []otlptest.Span {
	return otlptest.Filter(spans, func(s otlptest.Span) bool {
		return s.Service == service && s.Kind == tracepb.Span_SPAN_KIND_SERVER
	})
}

func byPath(spans []otlptest.Span, path string) (otlptest.Span, bool) {
	for _, s := range spans {
		if s.Attrs["url.path"] == path {
			return s, true
		}
	}
	return otlptest.Span{}, false
}

func hasPaths(spans []otlptest.Span, paths ...string) bool {
	for _, p := range paths {
		if _, ok := byPath(spans, p); !ok {
			return false
		}
	}
	return true
}

func wantAttr(t *testing.T, s otlptest.Span, key string, want any) {
	t.Helper()
	if got := s.Attrs[key]; got != want {
		t.Errorf("%s %q: %s = %#v, want %#v", s.Service, s.Name, key, got, want)
	}
}

// TestHTTPServers traces a Go net/http, a Python http.server and a Node.js
// server, each driven by curl and by a client in another language.
func TestHTTPServers(t *testing.T) {
	requireE2E(t)
	cases := []struct {
		lang   string
		client func(t *testing.T, urls ...string) // a client in another language
		ua     string
	}{
		{"go", pyClient, "e2e-pyclient"},
		{"python", nodeClient, "e2e-nodeclient"},
		{"node", pyClient, "e2e-pyclient"},
	}
	for _, tc := range cases {
		t.Run(tc.lang, func(t *testing.T) {
			rcv := otlptest.Start(t)
			service := "e2e-" + tc.lang
			srv := startServer(t, tc.lang, service, 0)
			ag := startAgent(t, rcv, "--pid", strconv.Itoa(srv.Pid()), "--drop-route", "/health*")

			curl(t, "-H", "traceparent: 00-"+parentTrace+"-"+parentSpan+"-01", "-H", "tracestate: congo=t61rcWkgMzE", srv.URL("/users/42?verbose=1"))
			curl(t, "-H", "traceparent: 00-ZZZ-not-valid-01", srv.URL("/users/7"))
			curl(t, srv.URL("/health"))
			curl(t, srv.URL("/fail"))
			curl(t, "-X", "POST", "--data", "hello tracer", srv.URL("/echo"))
			if body := curl(t, srv.URL("/big")); len(body) != 32000 {
				t.Fatalf("/big returned %d bytes", len(body))
			}
			tc.client(t, srv.URL("/users/1001"), srv.URL("/users/1002"))

			paths := []string{"/users/42", "/users/7", "/fail", "/echo", "/big", "/users/1001", "/users/1002"}
			spans := rcv.WaitFor(t, 15*time.Second, "server spans of "+service, func(s []otlptest.Span) bool {
				return hasPaths(serverSpans(s, service), paths...)
			})
			ag.stop(t)
			spans = serverSpans(rcv.Spans(), service)
			if len(spans) != len(paths) {
				t.Errorf("got %d server spans, want %d (one per request, /health dropped):\n%s", len(spans), len(paths), otlptest.Dump(spans))
			}

			s, _ := byPath(spans, "/users/42")
			if s.Name != "GET /users/{id}" {
				t.Errorf("span name %q, want %q", s.Name, "GET /users/{id}")
			}
			if s.TraceID != parentTrace || s.ParentID != parentSpan {
				t.Errorf("incoming traceparent not honoured: trace=%s parent=%s", s.TraceID, s.ParentID)
			}
			wantAttr(t, s, "http.request.method", "GET")
			wantAttr(t, s, "http.route", "/users/{id}")
			wantAttr(t, s, "http.response.status_code", int64(200))
			wantAttr(t, s, "url.query", "verbose=1")
			wantAttr(t, s, "server.port", int64(srv.Port))
			wantAttr(t, s, "client.address", "127.0.0.1")
			wantAttr(t, s, "network.protocol.version", "1.1")
			if ua, _ := s.Attrs["user_agent.original"].(string); !strings.HasPrefix(ua, "curl/") {
				t.Errorf("user_agent.original = %q, want curl/…", ua)
			}
			if s.StatusCode == tracepb.Status_STATUS_CODE_ERROR {
				t.Errorf("200 response marked ERROR")
			}
			if s.Resource["process.pid"] != int64(srv.Pid()) {
				t.Errorf("resource process.pid = %v, want %d", s.Resource["process.pid"], srv.Pid())
			}
			for _, k := range []string{"host.name", "process.executable.name", "telemetry.distro.name", "telemetry.sdk.language"} {
				if s.Resource[k] == nil {
					t.Errorf("resource lacks %s: %v", k, s.Resource)
				}
			}
			if d := s.Duration(); d <= 0 || d > 10*time.Second {
				t.Errorf("duration %v out of range", d)
			}

			inv, _ := byPath(spans, "/users/7")
			if inv.ParentID != "" || inv.TraceID == parentTrace || len(inv.TraceID) != 32 {
				t.Errorf("invalid traceparent must start a new trace: trace=%s parent=%q", inv.TraceID, inv.ParentID)
			}

			fail, _ := byPath(spans, "/fail")
			wantAttr(t, fail, "http.response.status_code", int64(500))
			wantAttr(t, fail, "error.type", "500")
			if fail.StatusCode != tracepb.Status_STATUS_CODE_ERROR {
				t.Errorf("500 response not marked ERROR")
			}

			echo, _ := byPath(spans, "/echo")
			if echo.Name != "POST /echo" {
				t.Errorf("echo span name %q", echo.Name)
			}
			big, _ := byPath(spans, "/big")
			wantAttr(t, big, "http.response.status_code", int64(200))

			c, _ := byPath(spans, "/users/1001")
			wantAttr(t, c, "user_agent.original", tc.ua)
			for _, s := range spans {
				if s.Start.After(s.End) {
					t.Errorf("span %q ends before it starts", s.Name)
				}
			}
		})
	}
}

func pyClient(t *testing.T, urls ...string) {
	run(t, nil, testenv.RequireCommand(t, "python3"), append([]string{"testdata/pyclient.py"}, urls...)...)
}

func nodeClient(t *testing.T, urls ...string) {
	run(t, nil, testenv.RequireCommand(t, "node"), append([]string{"testdata/nodeclient.js"}, urls...)...)
}

func freePort(t *testing.T) int {
	t.Helper()
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// TestOutboundCalls: a traced server calls another traced server. Its
// CLIENT span must lie within its SERVER span, and the downstream SERVER
// span within the CLIENT span. Each case selects processes another way,
// including processes that start after the agent (--exe, --port).
func TestOutboundCalls(t *testing.T) {
	requireE2E(t)
	cases := []struct{ front, back, how string }{
		{"go", "python", "exe+port"},
		{"python", "node", "pid"},
		{"node", "go", "pid"},
	}
	for _, tc := range cases {
		t.Run(tc.front+"->"+tc.back, func(t *testing.T) {
			rcv := otlptest.Start(t)
			fsvc, bsvc := "front-"+tc.front, "back-"+tc.back
			var front, back server
			if tc.how == "exe+port" {
				backPort := freePort(t)
				startAgent(t, rcv, "--exe", "*/e2e-goserver", "--port", strconv.Itoa(backPort))
				back = startServer(t, tc.back, bsvc, backPort)
				front = startServer(t, tc.front, fsvc, 0)
			} else {
				back = startServer(t, tc.back, bsvc, 0)
				front = startServer(t, tc.front, fsvc, 0)
				startAgent(t, rcv, "--pid", fmt.Sprint(front.Pid()), "--pid", fmt.Sprint(back.Pid()))
			}
			// Processes picked up after start may need a moment (exec is
			// immediate; listen too, but be tolerant of the rescan path).
			target := back.URL("/users/5")
			deadline := time.Now().Add(10 * time.Second)
			for {
				curl(t, front.URL("/call?url="+target))
				spans := rcv.Spans()
				if len(serverSpans(spans, fsvc)) > 0 && len(serverSpans(spans, bsvc)) > 0 || time.Now().After(deadline) {
					break
				}
				time.Sleep(300 * time.Millisecond)
			}
			rcv.Reset()
			curl(t, front.URL("/call?url="+target))

			// Spans of the warm-up requests may still arrive: follow the
			// parent links of one request instead of taking the first spans.
			var fs, cs, bs otlptest.Span
			chain := func(spans []otlptest.Span) bool {
				for _, f := range serverSpans(spans, fsvc) {
					for _, c := range clientSpans(spans, fsvc) {
						if c.ParentID != f.SpanID {
							continue
						}
						for _, b := range serverSpans(spans, bsvc) {
							if b.ParentID == c.SpanID {
								fs, cs, bs = f, c, b
								return true
							}
						}
					}
				}
				return false
			}
			rcv.WaitFor(t, 15*time.Second, "front server → front client → back server, linked", chain)
			if fs.Name != "GET /call" || bs.Name != "GET /users/{id}" {
				t.Errorf("server span names %q, %q", fs.Name, bs.Name)
			}
			if cs.Name != "GET /users/{id}" {
				t.Errorf("client span name %q", cs.Name)
			}
			wantAttr(t, cs, "url.full", target)
			wantAttr(t, cs, "server.address", "127.0.0.1")
			wantAttr(t, cs, "server.port", int64(back.Port))
			wantAttr(t, cs, "http.response.status_code", int64(200))
			if !fs.Contains(cs) {
				t.Errorf("client span [%v, %v] not within server span [%v, %v]", cs.Start, cs.End, fs.Start, fs.End)
			}
			if !cs.ContainsWithin(bs, time.Millisecond) {
				t.Errorf("downstream server span [%v, %v] not within client span [%v, %v]", bs.Start, bs.End, cs.Start, cs.End)
			}
		})
	}
}

func clientSpans(spans []otlptest.Span, service string) []otlptest.Span {
	return otlptest.Filter(spans, func(s otlptest.Span) bool {
		return s.Service == service && s.Kind == tracepb.Span_SPAN_KIND_CLIENT
	})
}

// TestShortLivedClients: processes picked up by --exe that are gone before
// the agent could read /proc are still selected and named, from what the
// kernel reported at their exec.
func TestShortLivedClients(t *testing.T) {
	requireE2E(t)
	rcv := otlptest.Start(t)
	srv := startServer(t, "python", "short-back", 0)
	startAgent(t, rcv, "--exe", "*/curl")
	const n = 12
	for i := 0; i < n; i++ {
		curl(t, srv.URL(fmt.Sprintf("/short/%d", i)))
	}
	rcv.WaitFor(t, 15*time.Second, fmt.Sprintf("%d curl CLIENT spans", n), func(spans []otlptest.Span) bool {
		return len(clientSpans(spans, "curl")) >= n
	})
	if got := len(clientSpans(rcv.Spans(), "curl")); got != n {
		t.Errorf("%d curl CLIENT spans, want %d", got, n)
	}
}
