package e2e

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/tracer-agent/tracer-agent/internal/otlptest"
	"github.com/tracer-agent/tracer-agent/internal/testenv"
)

// Propagation tests: the agent carries W3C trace context across services
// by inserting a traceparent line into requests the traced processes write.

const (
	chainRequests = 60
	spanTimeout   = 30 * time.Second
)

// ---- chains of services ----------------------------------------------------

// chain is a line of traced servers: hop i calls hop i+1 through /call?url=,
// the last one answers /users/<id>.
type chain struct {
	hops []server
	ag   *agent
	rcv  *otlptest.Receiver
	// inflight bounds the requests drive has in flight (0: all at once).
	inflight int
	// dbHops: hops whose SERVER span also has one database CLIENT child
	// (dbOptional: or none, the query's span being a root of its own).
	dbHops     map[int]bool
	dbOptional bool
}

// startChain starts one server per language (front first) and one agent
// selecting them all by pid.
func startChain(t *testing.T, langs ...string) *chain {
	t.Helper()
	c := &chain{rcv: otlptest.Start(t)}
	args := []string{}
	for i, lang := range langs {
		s := startServer(t, lang, fmt.Sprintf("hop%d-%s", i, lang), 0)
		c.hops = append(c.hops, s)
		args = append(args, "--pid", strconv.Itoa(s.Pid()))
	}
	c.ag = startAgent(t, c.rcv, args...)
	return c
}

func (c *chain) service(i int) string {
	if c.hops[i].Proxy {
		// nginx's workers rewrite their environment block for their
		// process titles: the service is named after the executable.
		return c.hops[i].Lang
	}
	return fmt.Sprintf("hop%d-%s", i, c.hops[i].Lang)
}

// url is the front URL whose request travels the whole chain down to
// /users/<id> on the last hop; each level URL-encodes the next.
func (c *chain) url(id int) string {
	u := c.hops[len(c.hops)-1].URL(fmt.Sprintf("/users/%d", id))
	for i := len(c.hops) - 2; i >= 0; i-- {
		if c.hops[i].Proxy {
			u = c.hops[i].URL(strings.TrimPrefix(u, c.hops[i+1].URL("")))
			continue
		}
		u = c.hops[i].URL("/call?url=" + url.QueryEscape(u))
	}
	return u
}

// drive sends one request per id to the front, all in parallel, from this
// (untraced) process; header may add request headers.
func (c *chain) drive(t *testing.T, ids []int, header func(id int) http.Header) {
	t.Helper()
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var wg sync.WaitGroup
	errs := make(chan error, len(ids))
	limit := c.inflight
	if limit <= 0 {
		limit = len(ids)
	}
	slots := make(chan struct{}, limit)
	for _, id := range ids {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			req, _ := http.NewRequest(http.MethodGet, c.url(id), nil)
			if header != nil {
				for k, v := range header(id) {
					req.Header[k] = v
				}
			}
			resp, err := client.Do(req)
			if err != nil {
				errs <- fmt.Errorf("request %d: %v", id, err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				errs <- fmt.Errorf("request %d: status %d", id, resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// collect waits until every request could have produced its spans (2 per
// hop but the last), then stops the agent so that nothing is left
// unflushed, and returns everything received.
func (c *chain) collect(t *testing.T, requests int) []otlptest.Span {
	t.Helper()
	want := requests * (2*len(c.hops) - 1 + len(c.dbHops))
	waitSpans(c.rcv, spanTimeout, func(s []otlptest.Span) bool { return len(s) >= want })
	c.ag.stop(t)
	return c.rcv.Spans()
}

// waitSpans polls like Receiver.WaitFor but does not fail: the assertions
// that follow say precisely what is missing.
func waitSpans(rcv *otlptest.Receiver, timeout time.Duration, done func([]otlptest.Span) bool) {
	deadline := time.Now().Add(timeout)
	for !done(rcv.Spans()) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
}

// idPattern finds the request id in url.path, url.query (where it is URL
// encoded once per level) and url.full.
var idPattern = regexp.MustCompile(`(?i)users(?:/|%2F|%252F|%25252F)(\d+)`)

func spanIDs(s otlptest.Span) map[int]bool {
	ids := map[int]bool{}
	for _, k := range []string{"url.path", "url.query", "url.full"} {
		v, _ := s.Attrs[k].(string)
		for _, m := range idPattern.FindAllStringSubmatch(v, -1) {
			if n, err := strconv.Atoi(m[1]); err == nil {
				ids[n] = true
			}
		}
	}
	return ids
}

// rootCheck judges the front SERVER span of request id (its parent).
type rootCheck func(id int, front otlptest.Span) error

// newRoot: the front SERVER span starts a new trace.
func newRoot(id int, s otlptest.Span) error {
	if s.ParentID != "" {
		return fmt.Errorf("front SERVER span has parent %s, want a new root", s.ParentID)
	}
	return nil
}

// assertChains checks that every request produced exactly one trace:
// front SERVER → front CLIENT → … → last SERVER, each span the parent of
// the next, and that no trace mixes spans of two requests.
func (c *chain) assertChains(t *testing.T, spans []otlptest.Span, ids []int, root rootCheck) {
	t.Helper()
	byTrace, tracesOf, problems := byRequest(spans)
	for _, id := range ids {
		tids := tracesOf[id]
		if len(tids) != 1 {
			var all []otlptest.Span
			for _, tid := range tids {
				all = append(all, byTrace[tid]...)
			}
			problems = append(problems, fmt.Sprintf("request %d: %d traces, want 1:\n%s", id, len(tids), otlptest.Dump(all)))
			continue
		}
		if err := c.checkTrace(id, byTrace[tids[0]], root); err != nil {
			problems = append(problems, fmt.Sprintf("request %d: %v:\n%s", id, err, otlptest.Dump(byTrace[tids[0]])))
		}
	}
	t.Logf("%d requests, %d traces, %d spans", len(ids), len(byTrace), len(spans))
	reportProblems(t, problems, len(ids), len(spans))
}

// byRequest groups spans by trace and the traces by the request ids their
// spans name; a trace naming none or several is a problem (a wrong link
// joins two requests' traces).
func byRequest(spans []otlptest.Span) (byTrace map[string][]otlptest.Span, tracesOf map[int][]string, problems []string) {
	byTrace = map[string][]otlptest.Span{}
	for _, s := range spans {
		byTrace[s.TraceID] = append(byTrace[s.TraceID], s)
	}
	tracesOf = map[int][]string{}
	for tid, ss := range byTrace {
		seen := map[int]bool{}
		for _, s := range ss {
			for id := range spanIDs(s) {
				seen[id] = true
			}
		}
		if len(seen) != 1 {
			problems = append(problems, fmt.Sprintf("trace %s refers to requests %v (cross-linked or unidentifiable):\n%s", tid, keys(seen), otlptest.Dump(ss)))
		}
		for id := range seen {
			tracesOf[id] = append(tracesOf[id], tid)
		}
	}
	return byTrace, tracesOf, problems
}

func reportProblems(t *testing.T, problems []string, requests, spans int) {
	t.Helper()
	if len(problems) > 0 {
		sort.Strings(problems)
		const show = 5
		for i, p := range problems {
			if i == show {
				t.Errorf("… and %d more problems", len(problems)-show)
				break
			}
			t.Error(p)
		}
		t.Errorf("%d of %d requests/traces wrong (%d spans received)", len(problems), requests, spans)
	}
}

// checkTrace verifies one request's trace against the expected chain.
func (c *chain) checkTrace(id int, ss []otlptest.Span, root rootCheck) error {
	var want []otlptest.Span
	for i := range c.hops {
		kinds := []tracepb.Span_SpanKind{tracepb.Span_SPAN_KIND_SERVER, tracepb.Span_SPAN_KIND_CLIENT}
		if i == len(c.hops)-1 {
			kinds = kinds[:1]
		}
		for _, k := range kinds {
			m := otlptest.Filter(ss, func(s otlptest.Span) bool {
				return s.Service == c.service(i) && s.Kind == k && s.Attrs["db.system.name"] == nil
			})
			if len(m) != 1 {
				return fmt.Errorf("%d %s %s spans, want 1", len(m), c.service(i), k)
			}
			want = append(want, m[0])
		}
	}
	dbs := 0
	for i := range c.dbHops {
		m := otlptest.Filter(ss, func(s otlptest.Span) bool { return s.Service == c.service(i) && s.Attrs["db.system.name"] != nil })
		if len(m) == 0 && c.dbOptional {
			continue
		}
		if len(m) != 1 || m[0].ParentID != want[2*i].SpanID {
			return fmt.Errorf("%s: %d database spans, want 1 child of its SERVER span", c.service(i), len(m))
		}
		dbs++
	}
	if len(ss) != len(want)+dbs {
		return fmt.Errorf("%d spans in the trace, want %d", len(ss), len(want)+dbs)
	}
	if err := root(id, want[0]); err != nil {
		return err
	}
	for i := 1; i < len(want); i++ {
		if want[i].ParentID != want[i-1].SpanID {
			return fmt.Errorf("%s %s: parent %s, want %s (%s %s)", want[i].Service, want[i].Kind,
				want[i].ParentID, want[i-1].SpanID, want[i-1].Service, want[i-1].Kind)
		}
	}
	return nil
}

func keys(m map[int]bool) []int {
	var out []int
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

func seq(from, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = from + i
	}
	return out
}

// testChain drives chainRequests parallel requests through a chain of the
// given languages and checks one well-formed trace per request.
func testChain(t *testing.T, langs ...string) {
	requireE2E(t)
	c := startChain(t, langs...)
	ids := seq(1000, chainRequests)
	c.drive(t, ids, nil)
	c.assertChains(t, c.collect(t, len(ids)), ids, newRoot)
}

func TestChainPython(t *testing.T)  { testChain(t, "python", "python", "node") }
func TestChainGo(t *testing.T)      { testChain(t, "python", "go", "node") }
func TestChainGoFront(t *testing.T) { testChain(t, "go", "python", "go") }

// ---- byte-exact injection ---------------------------------------------------

// rawListener is a TCP server in the test process recording, per
// connection, exactly the bytes it received; it answers each request it
// can parse with a fixed response (keep-alive unless the request closes).
type rawListener struct {
	ln    net.Listener
	conns chan []byte
}

func startRawListener(t *testing.T) *rawListener {
	t.Helper()
	l := &rawListener{conns: make(chan []byte, 16)}
	l.ln = listenTCP(t, l.serve)
	return l
}

func (l *rawListener) Port() int { return l.ln.Addr().(*net.TCPAddr).Port }

func (l *rawListener) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	var rec bytes.Buffer
	r := bufio.NewReader(io.TeeReader(c, &rec))
	for {
		req, err := http.ReadRequest(r)
		if err != nil {
			break // unparsable (or EOF): just record the rest
		}
		_, _ = io.Copy(io.Discard, req.Body)
		resp := "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
		if req.Close {
			resp += "Connection: close\r\n"
		}
		if _, err := io.WriteString(c, resp+"\r\nok\n"); err != nil || req.Close {
			_ = c.(*net.TCPConn).CloseWrite()
			break
		}
	}
	_, _ = io.Copy(io.Discard, r) // anything else, until the peer closes
	l.conns <- rec.Bytes()
}

// next returns the bytes of the next finished connection.
func (l *rawListener) next(t *testing.T) []byte {
	t.Helper()
	select {
	case b := <-l.conns:
		return b
	case <-time.After(20 * time.Second):
		t.Fatal("the raw listener saw no finished connection within 20s")
		return nil
	}
}

// relay is a traced relay.py with its own agent and receiver.
type relay struct {
	*proc
	port int
	ag   *agent
	rcv  *otlptest.Receiver
	down *rawListener
}

func startRelay(t *testing.T, agentArgs ...string) *relay {
	t.Helper()
	p := start(t, []string{"OTEL_SERVICE_NAME=relay"}, testenv.RequireCommand(t, "python3"), "testdata/relay.py")
	line := p.waitOutput(t, "listening ", 10*time.Second)
	port, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "listening ")))
	if err != nil {
		t.Fatalf("relay printed %q", line)
	}
	r := &relay{proc: p, port: port, rcv: otlptest.Start(t), down: startRawListener(t)}
	r.ag = startAgent(t, r.rcv, append([]string{"--pid", strconv.Itoa(p.Pid())}, agentArgs...)...)
	return r
}

// relayed is what one case produced: the bytes the relay wrote and the
// bytes the downstream received.
type relayed struct {
	name              string
	written, received []byte
}

// run makes the relay play case name (curlArgs: extra curl arguments,
// e.g. incoming trace headers).
func (r *relay) run(t *testing.T, name string, curlArgs ...string) relayed {
	t.Helper()
	out := curl(t, append(curlArgs, fmt.Sprintf("http://127.0.0.1:%d/case/%s?port=%d", r.port, name, r.down.Port()))...)
	var res struct{ Written, Error string }
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("relay answered %q: %v", out, err)
	}
	written, err := base64.StdEncoding.DecodeString(res.Written)
	if err != nil {
		t.Fatal(err)
	}
	got := r.down.next(t)
	if res.Error != "" {
		t.Errorf("relay: %s; downstream received %q", res.Error, got)
	}
	return relayed{name: name, written: written, received: got}
}

var tpLine = regexp.MustCompile(`^traceparent: 00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]\r\n`)

// injected checks that received is written plus exactly one traceparent
// line (and the tracestate line when tracestate != "") right after the
// first request line, and returns the injected trace and span ids.
func (x relayed) injected(t *testing.T, tracestate string) (trace, span string) {
	t.Helper()
	eol := bytes.Index(x.received, []byte("\r\n"))
	if eol < 0 {
		t.Fatalf("%s: no request line in %q", x.name, x.received)
	}
	rest := x.received[eol+2:]
	m := tpLine.FindSubmatch(rest)
	if m == nil {
		t.Fatalf("%s: no traceparent line after the request line; received:\n%q\nwritten:\n%q", x.name, x.received, x.written)
	}
	rest = rest[len(m[0]):]
	if tracestate != "" {
		ts := []byte("tracestate: " + tracestate + "\r\n")
		if !bytes.HasPrefix(rest, ts) {
			n := min(len(rest), len(ts)+20)
			t.Errorf("%s: want %q after the traceparent line, got %q", x.name, ts, rest[:n])
		} else {
			rest = rest[len(ts):]
		}
	}
	stripped := append(append([]byte{}, x.received[:eol+2]...), rest...)
	if !bytes.Equal(stripped, x.written) {
		t.Errorf("%s: received bytes minus the inserted line(s) differ from those written:\n%s", x.name, diff(x.written, stripped))
	}
	if n := bytes.Count(x.received, []byte("traceparent:")); n != 1 {
		t.Errorf("%s: %d traceparent lines received, want 1", x.name, n)
	}
	return string(m[1]), string(m[2])
}

// untouched checks that the downstream received exactly what was written.
func (x relayed) untouched(t *testing.T) {
	t.Helper()
	if !bytes.Equal(x.received, x.written) {
		t.Errorf("%s: bytes changed on the way:\n%s", x.name, diff(x.written, x.received))
	}
}

// diff shows where two byte strings first differ.
func diff(want, got []byte) string {
	i := 0
	for i < len(want) && i < len(got) && want[i] == got[i] {
		i++
	}
	lo := max(0, i-40)
	return fmt.Sprintf("  %d bytes written, %d received; first difference at %d\n  written:  %q\n  received: %q",
		len(want), len(got), i, want[lo:min(len(want), i+120)], got[lo:min(len(got), i+120)])
}

// spansOf waits for the relay's SERVER span of case name and its CLIENT
// span for path, and returns them.
func (r *relay) spansOf(t *testing.T, name, clientPath string) (srv, cli otlptest.Span) {
	t.Helper()
	find := func(spans []otlptest.Span) (s, c otlptest.Span, ok bool) {
		s, ok1 := byPath(serverSpans(spans, "relay"), "/case/"+name)
		for _, x := range clientSpans(spans, "relay") {
			if u, err := url.Parse(fmt.Sprint(x.Attrs["url.full"])); err == nil && u.Path == clientPath {
				return s, x, ok1
			}
		}
		return s, c, false
	}
	spans := r.rcv.WaitFor(t, spanTimeout, "relay SERVER and CLIENT spans of "+name, func(s []otlptest.Span) bool {
		_, _, ok := find(s)
		return ok
	})
	srv, cli, _ = find(spans)
	return srv, cli
}

// linked checks the relay's spans of case name: the CLIENT span is a child
// of the SERVER span and, when injected, carries exactly the injected ids.
func (r *relay) linked(t *testing.T, x relayed, clientPath, trace, span string) {
	t.Helper()
	srv, cli := r.spansOf(t, x.name, clientPath)
	if cli.ParentID != srv.SpanID || cli.TraceID != srv.TraceID {
		t.Errorf("%s: CLIENT span %s/%s parent %s, want child of SERVER span %s/%s", x.name,
			cli.TraceID, cli.SpanID, cli.ParentID, srv.TraceID, srv.SpanID)
	}
	if span != "" && (cli.SpanID != span || cli.TraceID != trace) {
		t.Errorf("%s: injected %s-%s but the CLIENT span is %s-%s", x.name, trace, span, cli.TraceID, cli.SpanID)
	}
}

// TestInjectionByteExact: the only change injection makes to a request is
// the traceparent line after its request line, and only when the request
// line and the end of headers are in one write without a traceparent.
func TestInjectionByteExact(t *testing.T) {
	requireE2E(t)
	r := startRelay(t)
	cases := []struct {
		name, clientPath string
		inject           bool
	}{
		{"simple", "/target/simple", true},
		{"split3", "/target/split3", false},
		{"post", "/target/post", true},
		{"bigheaders", "/target/bigheaders", true},
		{"pipelined", "/target/pipelined/1", true},
		{"http10", "/target/http10", true},
		{"hastp", "/target/hastp", false},
		{"bigbody", "/target/bigbody", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			x := r.run(t, tc.name)
			if !tc.inject {
				x.untouched(t)
				if tc.name != "hastp" { // its own traceparent may name the client span
					r.linked(t, x, tc.clientPath, "", "")
				}
				return
			}
			trace, span := x.injected(t, "")
			r.linked(t, x, tc.clientPath, trace, span)
		})
	}
	t.Run("no-inject", func(t *testing.T) {
		r := startRelay(t, "--no-inject")
		x := r.run(t, "simple")
		x.untouched(t)
		r.linked(t, x, "/target/simple", "", "")
	})
}

// ---- W3C edge cases ---------------------------------------------------------

// TestW3CEdgeCases: invalid incoming traceparents start a new trace that
// still propagates; a valid one and its tracestate are passed on as is.
func TestW3CEdgeCases(t *testing.T) {
	requireE2E(t)
	t.Run("invalid", func(t *testing.T) {
		c := startChain(t, "python", "node")
		invalid := map[int]string{
			1: "00-" + strings.ToUpper(parentTrace) + "-" + parentSpan + "-01", // uppercase hex
			2: "00-" + parentTrace[1:] + "-" + parentSpan + "-01",              // short trace id
			3: "ff-" + parentTrace + "-" + parentSpan + "-01",                  // version ff
			4: "00-" + strings.Repeat("0", 32) + "-" + parentSpan + "-01",      // zero trace id
			5: "00-" + parentTrace + "-" + strings.Repeat("0", 16) + "-01",     // zero span id
			6: "00-" + parentTrace + "-" + parentSpan + "-01-extra",            // trailing data in v00
		}
		ids := keys(map[int]bool{1: true, 2: true, 3: true, 4: true, 5: true, 6: true})
		c.drive(t, ids, func(id int) http.Header { return http.Header{"Traceparent": {invalid[id]}} })
		c.assertChains(t, c.collect(t, len(ids)), ids, func(id int, s otlptest.Span) error {
			if err := newRoot(id, s); err != nil {
				return fmt.Errorf("traceparent %q: %v", invalid[id], err)
			}
			if s.TraceID == parentTrace || len(s.TraceID) != 32 {
				return fmt.Errorf("traceparent %q: trace id %s, want a new one", invalid[id], s.TraceID)
			}
			return nil
		})
	})
	t.Run("valid", func(t *testing.T) {
		c := startChain(t, "python", "python", "node")
		ids := seq(1, 10)
		c.drive(t, ids, func(int) http.Header {
			return http.Header{"Traceparent": {"00-" + parentTrace + "-" + parentSpan + "-01"}}
		})
		// All requests share the incoming trace: check each chain within it.
		spans := c.collect(t, len(ids))
		for _, id := range ids {
			mine := otlptest.Filter(spans, func(s otlptest.Span) bool { return spanIDs(s)[id] })
			if err := c.checkTrace(id, mine, func(_ int, s otlptest.Span) error {
				if s.TraceID != parentTrace || s.ParentID != parentSpan {
					return fmt.Errorf("front SERVER span %s/%s, want child of %s/%s", s.TraceID, s.ParentID, parentTrace, parentSpan)
				}
				return nil
			}); err != nil {
				t.Errorf("request %d: %v:\n%s", id, err, otlptest.Dump(mine))
			}
			for _, s := range mine {
				if s.TraceID != parentTrace {
					t.Errorf("request %d: span %s in trace %s, want %s", id, s.SpanID, s.TraceID, parentTrace)
				}
			}
		}
	})
	t.Run("tracestate", func(t *testing.T) {
		const ts = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
		r := startRelay(t)
		x := r.run(t, "simple", "-H", "traceparent: 00-"+parentTrace+"-"+parentSpan+"-01", "-H", "tracestate: "+ts)
		trace, span := x.injected(t, ts)
		if trace != parentTrace {
			t.Errorf("forwarded trace id %s, want %s", trace, parentTrace)
		}
		srv, _ := r.spansOf(t, "simple", "/target/simple")
		if srv.TraceID != parentTrace || srv.ParentID != parentSpan {
			t.Errorf("relay SERVER span %s parent %s, want trace %s parent %s", srv.TraceID, srv.ParentID, parentTrace, parentSpan)
		}
		r.linked(t, x, "/target/simple", trace, span)
	})
}
