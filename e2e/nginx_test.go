package e2e

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tracer-agent/tracer-agent/internal/otlptest"
	"github.com/tracer-agent/tracer-agent/internal/testenv"
	"github.com/tracer-agent/tracer-agent/internal/testnginx"
)

// nginx as a reverse proxy between two traced services: it passes the
// caller's traceparent (the one the kernel inserted) on unchanged, so the
// kernel gives its upstream request a client span of its own by
// rewriting the parent-id in place (bpf/http_send.h).

// startNginx runs nginx (a master and two workers) in front of
// 127.0.0.1:upstream, with upstream keep-alive or a connection per request.
// Its workers are forked before the agent starts, as in production.
func startNginx(t *testing.T, upstream int, keepalive bool) server {
	t.Helper()
	bin := testenv.RequireCommand(t, "nginx")
	dir := t.TempDir()
	port := freePort(t)
	conf, err := testnginx.WriteConfig(dir, port, upstream, keepalive)
	if err != nil {
		t.Fatal(err)
	}
	p := start(t, nil, bin, "-c", conf, "-p", dir)
	deadline := time.Now().Add(10 * time.Second)
	var workers []int
	for time.Now().Before(deadline) {
		workers = testnginx.Children(p.Pid())
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			if len(workers) == testnginx.Workers {
				return server{proc: p, Lang: "nginx", Port: port, Proxy: true}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nginx did not start (workers %v):\n%s", workers, p.Output())
	return server{}
}

// TestChainNginx: Python → nginx → Python, one exact 5-span trace per
// request (front SERVER → front CLIENT → nginx SERVER → nginx CLIENT →
// backend SERVER) at 1, 16 and 64 requests in flight, with and without
// upstream keep-alive; nginx is selected by its master's pid.
func TestChainNginx(t *testing.T) {
	nginxChains(t, func(t *testing.T, c *chain, keepalive bool) {
		back := startServer(t, "python", "hop2-python", 0)
		ngx := startNginx(t, back.Port, keepalive)
		front := startServer(t, "python", "hop0-python", 0)
		c.hops = []server{front, ngx, back}
		// --pid of nginx's master: its existing workers are traced.
		c.ag = startAgent(t, c.rcv, "--pid", strconv.Itoa(front.Pid()), "--pid", strconv.Itoa(back.Pid()),
			"--pid", strconv.Itoa(ngx.Pid()))
	})
}

// TestChainNginxFirstHop: nginx as the entry point (its clients are not
// traced, so no traceparent reaches it): its upstream request links to the
// client request it proxies through the ngx_chain_writer uprobe (bpf/bind.h),
// nginx SERVER → nginx CLIENT → backend SERVER, at 1, 16 and 64 in flight,
// with and without upstream keep-alive.
func TestChainNginxFirstHop(t *testing.T) {
	nginxChains(t, func(t *testing.T, c *chain, keepalive bool) {
		back := startServer(t, "python", "hop1-python", 0)
		ngx := startNginx(t, back.Port, keepalive)
		c.hops = []server{ngx, back}
		c.ag = startAgent(t, c.rcv, "--pid", strconv.Itoa(back.Pid()), "--pid", strconv.Itoa(ngx.Pid()))
		if log := c.ag.Output(); !strings.Contains(log, "linking=\"nginx upstream") {
			t.Fatalf("agent did not report the nginx binder:\n%s", log)
		}
	})
}

// nginxChains drives the chain setup builds with upstream keep-alive off
// and on, at 1, 16 and 64 requests in flight: one exact trace per request,
// every span id unique.
func nginxChains(t *testing.T, setup func(t *testing.T, c *chain, keepalive bool)) {
	requireE2E(t)
	for _, keepalive := range []bool{false, true} {
		t.Run(fmt.Sprintf("keepalive=%v", keepalive), func(t *testing.T) {
			for _, inflight := range []int{1, 16, 64} {
				t.Run(fmt.Sprintf("inflight%d", inflight), func(t *testing.T) {
					c := &chain{rcv: otlptest.Start(t), inflight: inflight}
					setup(t, c, keepalive)
					ids := seq(1000, 5*inflight)
					if inflight == 1 {
						ids = seq(1000, 20)
					}
					c.drive(t, ids, nil)
					c.assertChains(t, c.collect(t, len(ids)), ids, newRoot)
					assertUniqueSpanIDs(t, c.rcv.Spans())
				})
			}
		})
	}
}

// assertUniqueSpanIDs: no two spans received share a span id.
func assertUniqueSpanIDs(t *testing.T, spans []otlptest.Span) {
	t.Helper()
	seen := map[string]otlptest.Span{}
	for _, s := range spans {
		if o, dup := seen[s.SpanID]; dup {
			t.Errorf("span id %s twice: %s %s %s and %s %s %s", s.SpanID, o.Service, o.Kind, o.Name, s.Service, s.Kind, s.Name)
		}
		seen[s.SpanID] = s
	}
}

// TestNginxRewriteByteExact: what nginx's upstream (an untraced raw
// listener) receives is what nginx wrote, but for the 16 parent-id digits
// of the traceparent it passes on, which name nginx's exported CLIENT span;
// without that line it is byte for byte the request of a --no-inject run.
func TestNginxRewriteByteExact(t *testing.T) {
	requireE2E(t)
	received := func(t *testing.T, agentArgs ...string) ([]byte, *otlptest.Receiver, *agent) {
		raw := startRawListener(t)
		ngx := startNginx(t, raw.Port(), false)
		front := startServer(t, "python", "front", 0)
		rcv := otlptest.Start(t)
		ag := startAgent(t, rcv, append([]string{"--pid", strconv.Itoa(front.Pid()), "--pid", strconv.Itoa(ngx.Pid())}, agentArgs...)...)
		curl(t, front.URL("/call?url="+url.QueryEscape(ngx.URL("/users/1"))))
		return raw.next(t), rcv, ag
	}
	plain, _, _ := received(t, "--no-inject")
	got, rcv, ag := received(t)

	spans := rcv.WaitFor(t, spanTimeout, "front and nginx CLIENT spans", func(s []otlptest.Span) bool {
		return len(clientSpans(s, "front")) == 1 && len(clientSpans(s, "nginx")) == 1
	})
	ag.stop(t)
	front, ngx := clientSpans(spans, "front")[0], clientSpans(spans, "nginx")[0]
	line := regexp.MustCompile(`(?i)traceparent: 00-([0-9a-f]{32})-([0-9a-f]{16})-01\r\n`)
	m := line.FindAllSubmatchIndex(got, -1)
	if len(m) != 1 {
		t.Fatalf("upstream received %d traceparent lines, want 1:\n%q", len(m), got)
	}
	trace, parent := string(got[m[0][2]:m[0][3]]), string(got[m[0][4]:m[0][5]])
	if trace != front.TraceID || parent != ngx.SpanID || ngx.ParentID == front.SpanID || ngx.SpanID == front.SpanID {
		t.Errorf("upstream got traceparent 00-%s-%s; front CLIENT %s/%s, nginx CLIENT %s (parent %s)",
			trace, parent, front.TraceID, front.SpanID, ngx.SpanID, ngx.ParentID)
	}
	without := append(append([]byte{}, got[:m[0][0]]...), got[m[0][1]:]...)
	if !bytes.Equal(without, plain) {
		t.Errorf("besides the traceparent line, the upstream's bytes differ from a --no-inject run:\n%s", diff(plain, without))
	}
}
