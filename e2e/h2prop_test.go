package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/tracer-agent/tracer-agent/internal/otlptest"
	"github.com/tracer-agent/tracer-agent/internal/testenv"
)

// ---- a raw h2c server recording what it received -----------------------------

// h2Request is one request HEADERS block as the raw h2c listener decoded it.
type h2Request struct {
	stream uint32
	fields []hpack.HeaderField
	block  []byte // the header block fragment(s), as received
}

// h2Conn is what one connection brought: its bytes, its requests, and the
// payloads of its DATA frames, in order.
type h2Conn struct {
	raw  []byte
	reqs []h2Request
	data [][]byte
}

// h2Listener is an h2c server in the test process: it answers every
// request (gRPC ones with a SERVING health response) and records exactly
// what each connection sent.
type h2Listener struct {
	ln    net.Listener
	conns chan h2Conn
}

func startH2Listener(t *testing.T) *h2Listener {
	t.Helper()
	l := &h2Listener{conns: make(chan h2Conn, 16)}
	l.ln = listenTCP(t, l.serve)
	return l
}

func (l *h2Listener) Port() int { return l.ln.Addr().(*net.TCPAddr).Port }

// teeConn records what is read from a connection.
type teeConn struct {
	net.Conn
	rec *bytes.Buffer
}

func (c teeConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.rec.Write(b[:n])
	return n, err
}

// serve answers with x/net/http2's server; what was received is decoded
// afterwards from the recording.
func (l *h2Listener) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	var rec bytes.Buffer
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			_, _ = io.WriteString(w, "ok\n")
			return
		}
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Trailer", "Grpc-Status")
		// HealthCheckResponse{status: SERVING}, gRPC length-prefixed.
		_, _ = w.Write([]byte{0, 0, 0, 0, 2, 0x08, 0x01})
		w.Header().Set("Grpc-Status", "0")
	})
	(&http2.Server{}).ServeConn(teeConn{c, &rec}, &http2.ServeConnOpts{Handler: h})
	l.conns <- decodeH2(rec.Bytes())
}

// decodeH2 reads a client's side of a connection: its requests (header
// blocks decoded in order by one HPACK decoder) and DATA payloads.
func decodeH2(raw []byte) h2Conn {
	got := h2Conn{raw: raw}
	if !bytes.HasPrefix(raw, []byte(http2.ClientPreface)) {
		return got
	}
	fr := http2.NewFramer(io.Discard, bytes.NewReader(raw[len(http2.ClientPreface):]))
	fr.SetMaxReadFrameSize(1 << 20)
	dec := hpack.NewDecoder(4096, nil)
	var cur *h2Request
	end := func() {
		fields, err := dec.DecodeFull(cur.block)
		if err == nil {
			cur.fields = fields
		}
		got.reqs = append(got.reqs, *cur)
		cur = nil
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return got
		}
		switch f := f.(type) {
		case *http2.HeadersFrame:
			cur = &h2Request{stream: f.StreamID, block: append([]byte{}, f.HeaderBlockFragment()...)}
			if f.HeadersEnded() {
				end()
			}
		case *http2.ContinuationFrame:
			if cur != nil {
				cur.block = append(cur.block, f.HeaderBlockFragment()...)
				if f.HeadersEnded() {
					end()
				}
			}
		case *http2.DataFrame:
			got.data = append(got.data, append([]byte{}, f.Data()...))
		}
	}
}

// next returns the next finished connection.
func (l *h2Listener) next(t *testing.T) h2Conn {
	t.Helper()
	select {
	case c := <-l.conns:
		return c
	case <-time.After(20 * time.Second):
		t.Fatal("the h2c listener saw no finished connection within 20s")
		return h2Conn{}
	}
}

// ---- checks -----------------------------------------------------------------

// injectedField is what the kernel appends to a request header block.
func injectedField(tp string) []byte {
	return append(append([]byte{0x00, 11}, "traceparent"...), append([]byte{55}, tp...)...)
}

// strip removes the injected traceparent fields from a connection's raw
// bytes and restores the frame lengths: the result must be exactly what
// the client wrote. Returns the bytes and the traceparents removed.
func strip(t *testing.T, raw []byte) ([]byte, []string) {
	t.Helper()
	if !bytes.HasPrefix(raw, []byte(http2.ClientPreface)) {
		t.Fatalf("no client preface in %q", raw[:min(len(raw), 40)])
	}
	out := append([]byte{}, raw[:len(http2.ClientPreface)]...)
	var tps []string
	for b := raw[len(http2.ClientPreface):]; len(b) > 0; {
		if len(b) < 9 {
			out = append(out, b...) // a cut frame header at the end
			break
		}
		n := int(b[0])<<16 | int(b[1])<<8 | int(b[2])
		typ, flags := b[3], b[4]
		end := min(9+n, len(b))
		frame := b[:end]
		if typ == 0x1 && end == 9+n {
			pad := 0
			if flags&0x8 != 0 {
				pad = int(frame[9])
			}
			blockEnd := end - pad
			const fl = 69
			if blockEnd-fl >= 9 && bytes.HasPrefix(frame[blockEnd-fl:], []byte{0x00, 11, 't'}) &&
				string(frame[blockEnd-fl+2:blockEnd-fl+13]) == "traceparent" && frame[blockEnd-fl+13] == 55 {
				tps = append(tps, string(frame[blockEnd-55:blockEnd]))
				f := append([]byte{}, frame[:blockEnd-fl]...)
				f = append(f, frame[blockEnd:]...)
				nl := n - fl
				f[0], f[1], f[2] = byte(nl>>16), byte(nl>>8), byte(nl)
				frame = f
			}
		}
		out = append(out, frame...)
		b = b[end:]
	}
	return out, tps
}

// fieldsWithout returns fields minus traceparent fields, and how many there were.
func fieldsWithout(fields []hpack.HeaderField) ([]hpack.HeaderField, int) {
	var out []hpack.HeaderField
	n := 0
	for _, f := range fields {
		if f.Name == "traceparent" {
			n++
			continue
		}
		out = append(out, f)
	}
	return out, n
}

func fieldsString(fields []hpack.HeaderField) string {
	var b strings.Builder
	for _, f := range fields {
		if f.Name == "user-agent" || f.Name == ":authority" || f.Name == "grpc-timeout" {
			fmt.Fprintf(&b, "%s: * | ", f.Name) // may legitimately differ between runs
			continue
		}
		fmt.Fprintf(&b, "%s: %s | ", f.Name, f.Value)
	}
	return b.String()
}

// injectedRun checks one connection of an injecting agent against the same
// client's connection under --no-inject (want): the same requests with
// the same fields, plus exactly one traceparent each, last and in the
// injected form; DATA as sent; and the raw bytes minus the injected fields
// are a valid HTTP/2 stream decoding to the same requests. Returns the
// traceparents.
func injectedRun(t *testing.T, got, want h2Conn, partial bool) []string {
	t.Helper()
	if len(got.reqs) != len(want.reqs) || len(got.reqs) == 0 {
		t.Fatalf("%d requests with injection, %d without", len(got.reqs), len(want.reqs))
	}
	wantOf := byPathSeq(want.reqs)
	var tps []string
	for i, r := range got.reqs {
		rest, n := fieldsWithout(r.fields)
		if partial && n == 0 && r.fields != nil {
			// Beyond the kernel's H2_MAX_SITES HEADERS frames in one write:
			// left as written.
			if a, b := fieldsString(rest), fieldsString(wantOf[pathSeq(got.reqs, i)]); a != b {
				t.Errorf("request %d fields differ from the uninjected run:\n  got  %s\n  want %s", i, a, b)
			}
			continue
		}
		if n != 1 || len(r.fields) == 0 || r.fields[len(r.fields)-1].Name != "traceparent" {
			t.Errorf("request %d (stream %d): %d traceparent fields, want 1 appended last: %v", i, r.stream, n, r.fields)
			continue
		}
		tp := r.fields[len(r.fields)-1].Value
		if !bytes.HasSuffix(r.block, injectedField(tp)) {
			t.Errorf("request %d: the traceparent is not the injected literal at the block's end: %x", i, r.block)
		}
		if a, b := fieldsString(rest), fieldsString(wantOf[pathSeq(got.reqs, i)]); a != b {
			t.Errorf("request %d fields differ from the uninjected run:\n  got  %s\n  want %s", i, a, b)
		}
		tps = append(tps, tp)
	}
	if len(got.data) != len(want.data) {
		t.Errorf("%d DATA frames with injection, %d without", len(got.data), len(want.data))
	}
	for i := range min(len(got.data), len(want.data)) {
		if !bytes.Equal(got.data[i], want.data[i]) {
			t.Errorf("DATA %d changed: %x, want %x", i, got.data[i], want.data[i])
		}
	}
	// The raw stream minus the injected fields decodes to the same requests
	// with a fresh decoder: nothing else was touched, and the HPACK tables
	// of both ends stayed in step.
	orig, stripped := strip(t, got.raw)
	if len(stripped) != len(tps) {
		t.Errorf("%d injected fields in the raw bytes, %d traceparents decoded", len(stripped), len(tps))
	}
	fr := http2.NewFramer(io.Discard, bytes.NewReader(orig[len(http2.ClientPreface):]))
	fr.SetMaxReadFrameSize(1 << 20)
	dec := hpack.NewDecoder(4096, nil)
	i := 0
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			break
		}
		h, ok := f.(*http2.HeadersFrame)
		if !ok || !h.HeadersEnded() {
			continue
		}
		fields, err := dec.DecodeFull(h.HeaderBlockFragment())
		if err != nil {
			t.Fatalf("stripped stream: %v", err)
		}
		if i < len(got.reqs) {
			if a, b := fieldsString(fields), fieldsString(wantOf[pathSeq(got.reqs, i)]); a != b {
				t.Errorf("stripped request %d: %s, want %s", i, a, b)
			}
		}
		i++
	}
	if i != len(want.reqs) {
		t.Errorf("stripped stream holds %d requests, want %d", i, len(want.reqs))
	}
	return tps
}

// pathSeq names request i of reqs by its :path and how many requests
// before it had the same path: requests multiplexed in parallel may be
// written in any order.
func pathSeq(reqs []h2Request, i int) string {
	path := func(r h2Request) string {
		for _, f := range r.fields {
			if f.Name == ":path" {
				return f.Value
			}
		}
		return ""
	}
	n := 0
	for _, r := range reqs[:i] {
		if path(r) == path(reqs[i]) {
			n++
		}
	}
	return path(reqs[i]) + "#" + strconv.Itoa(n)
}

func byPathSeq(reqs []h2Request) map[string][]hpack.HeaderField {
	m := map[string][]hpack.HeaderField{}
	for i, r := range reqs {
		m[pathSeq(reqs, i)] = r.fields
	}
	return m
}

// untouchedRun checks a connection under --no-inject: no traceparent at all.
func untouchedRun(t *testing.T, c h2Conn) {
	t.Helper()
	if len(c.reqs) == 0 {
		t.Fatal("no requests received")
	}
	for i, r := range c.reqs {
		if _, n := fieldsWithout(r.fields); n != 0 || r.fields == nil {
			t.Errorf("request %d under --no-inject: %v", i, r.fields)
		}
	}
	if _, tps := strip(t, c.raw); len(tps) != 0 {
		t.Errorf("--no-inject: %d fields injected", len(tps))
	}
}

// clientSpansMatch checks that every injected traceparent names an
// exported CLIENT span of service (same trace and span id, sampled flag as
// exported) and returns those spans.
func clientSpansMatch(t *testing.T, rcv *otlptest.Receiver, service string, tps []string) []otlptest.Span {
	t.Helper()
	want := map[string]string{} // span id -> trace id
	for _, tp := range tps {
		parts := strings.Split(tp, "-")
		if len(parts) != 4 || parts[0] != "00" || parts[3] != "01" {
			t.Fatalf("traceparent %q", tp)
		}
		want[parts[2]] = parts[1]
	}
	if len(want) != len(tps) {
		t.Errorf("injected span ids repeat: %v", tps)
	}
	spans := rcv.WaitFor(t, spanTimeout, fmt.Sprintf("%d CLIENT spans of %s", len(want), service), func(s []otlptest.Span) bool {
		n := 0
		for _, x := range clientSpans(s, service) {
			if want[x.SpanID] == x.TraceID {
				n++
			}
		}
		return n >= len(want)
	})
	var out []otlptest.Span
	for _, x := range clientSpans(spans, service) {
		if tr, ok := want[x.SpanID]; ok && tr == x.TraceID {
			out = append(out, x)
		}
	}
	return out
}

// h2Client runs one client case against the listener.
type h2Client struct {
	name    string
	service string
	run     func(t *testing.T, port int)
	partial bool // several HEADERS frames per write: only the first few are injected
}

func h2Clients() []h2Client {
	return []h2Client{
		{"curl", "h2-curl", func(t *testing.T, port int) {
			// One request with a body. (curl 7.88 fails reusing an h2c
			// prior-knowledge connection for a second URL: grpc-go covers
			// many requests, and several in one write, on a connection.)
			out := run(t, []string{"OTEL_SERVICE_NAME=h2-curl"}, testenv.RequireCommand(t, "curl"), "-sS", "--max-time", "15",
				"--http2-prior-knowledge", "-H", "x-case: h2prop", "-d", "hello over h2c",
				"http://127.0.0.1:"+strconv.Itoa(port)+"/a/1?q=2")
			if out != "ok\n" {
				t.Fatalf("curl got %q", out)
			}
		}, false},
		{"grpc-go", "h2-grpc-go", func(t *testing.T, port int) {
			run(t, []string{"OTEL_SERVICE_NAME=h2-grpc-go"}, grpcApp, "call", "127.0.0.1:"+strconv.Itoa(port), "3")
		}, false},
		{"grpc-go-concurrent", "h2-grpc-par", func(t *testing.T, port int) {
			run(t, []string{"OTEL_SERVICE_NAME=h2-grpc-par"}, grpcApp, "par", "127.0.0.1:"+strconv.Itoa(port), "8")
		}, true},
	}
}

// TestH2InjectionByteExact: under the agent, each request HEADERS block a
// client writes reaches the server with exactly one traceparent literal
// appended (no other byte changed, DATA untouched, HPACK state intact),
// naming the CLIENT span the agent exports; --no-inject changes nothing.
func TestH2InjectionByteExact(t *testing.T) {
	requireE2E(t)
	l := startH2Listener(t)
	exes := []string{"--exe", "*/curl", "--exe", "*/e2e-grpcapp"}
	plain := map[string]h2Conn{}
	{
		rcv := otlptest.Start(t)
		ag := startAgent(t, rcv, append([]string{"--no-inject"}, exes...)...)
		for _, c := range h2Clients() {
			c.run(t, l.Port())
			plain[c.name] = l.next(t)
			t.Run("no-inject/"+c.name, func(t *testing.T) { untouchedRun(t, plain[c.name]) })
		}
		ag.stop(t)
	}
	rcv := otlptest.Start(t)
	ag := startAgent(t, rcv, exes...)
	for _, c := range h2Clients() {
		t.Run(c.name, func(t *testing.T) {
			c.run(t, l.Port())
			got := l.next(t)
			tps := injectedRun(t, got, plain[c.name], c.partial)
			if len(tps) < min(len(got.reqs), 4) {
				t.Errorf("%d of %d requests injected", len(tps), len(got.reqs))
			}
			for _, s := range clientSpansMatch(t, rcv, c.service, tps) {
				if s.ParentID != "" {
					t.Errorf("CLIENT span %s: parent %s, want a root (the client serves nothing)", s.SpanID, s.ParentID)
				}
			}
		})
	}
	ag.stop(t)
}

// ---- a chain through gRPC -----------------------------------------------------

// startNodeHop starts testdata/grpcnode/chain.js in mode with arg.
func startNodeHop(t *testing.T, service, mode string, arg int) server {
	return startNodeApp(t, service, "grpcnode", "@grpc/grpc-js", "chain.js", mode, strconv.Itoa(arg))
}

// TestH2Chain: HTTP/1 (Node) -> gRPC (grpc-js client) -> gRPC server
// (grpc-js) -> HTTP/1 (Python) forms one trace per request with exact
// parent links: the kernel injects traceparent into the gRPC request
// HEADERS and, on the gRPC server, takes it as the reading thread's server
// context, which parents the server's own HTTP/1 call. Node runs a
// handler on the thread that read its request (one event loop), which
// is what per-thread context needs; grpc-go's server reads requests in one
// goroutine and runs handlers in others, so its outgoing calls cannot be
// linked this way (see README).
func TestH2Chain(t *testing.T) {
	requireE2E(t)
	rcv := otlptest.Start(t)
	users := startServer(t, "python", "h2chain-users", 0)
	hop := startNodeHop(t, "h2chain-grpc", "grpc", users.Port)
	front := startNodeHop(t, "h2chain-front", "front", hop.Port)
	ag := startAgent(t, rcv, "--pid", strconv.Itoa(front.Pid()), "--pid", strconv.Itoa(hop.Pid()), "--pid", strconv.Itoa(users.Pid()))
	const n = 6
	for i := range n {
		if out := curl(t, front.URL(fmt.Sprintf("/users/%d", 100+i))); out != fmt.Sprintf("user %d\n", 100+i) {
			t.Fatalf("front answered %q", out)
		}
	}
	hops := []struct {
		service string
		kind    tracepb.Span_SpanKind
	}{
		{"h2chain-front", tracepb.Span_SPAN_KIND_SERVER},
		{"h2chain-front", tracepb.Span_SPAN_KIND_CLIENT},
		{"h2chain-grpc", tracepb.Span_SPAN_KIND_SERVER},
		{"h2chain-grpc", tracepb.Span_SPAN_KIND_CLIENT},
		{"h2chain-users", tracepb.Span_SPAN_KIND_SERVER},
	}
	// follow walks one request's chain from its front SERVER span.
	follow := func(spans []otlptest.Span, root otlptest.Span) ([]otlptest.Span, error) {
		line := []otlptest.Span{root}
		for _, h := range hops[1:] {
			prev := line[len(line)-1]
			next := otlptest.Filter(spans, func(s otlptest.Span) bool {
				return s.Service == h.service && s.Kind == h.kind && s.ParentID == prev.SpanID && s.TraceID == prev.TraceID
			})
			if len(next) != 1 {
				return line, fmt.Errorf("%d %s %s children of %s %s %q, want 1", len(next), h.service, h.kind, prev.Service, prev.Kind, prev.Name)
			}
			line = append(line, next[0])
		}
		return line, nil
	}
	fronts := func(spans []otlptest.Span) []otlptest.Span {
		return otlptest.Filter(serverSpans(spans, "h2chain-front"), func(s otlptest.Span) bool {
			return strings.HasPrefix(fmt.Sprint(s.Attrs["url.path"]), "/users/1")
		})
	}
	var lastErr error
	spans := rcv.WaitFor(t, spanTimeout, fmt.Sprintf("%d linked chains", n), func(spans []otlptest.Span) bool {
		fs := fronts(spans)
		if len(fs) < n {
			lastErr = fmt.Errorf("%d front SERVER spans", len(fs))
			return false
		}
		for _, f := range fs {
			if _, err := follow(spans, f); err != nil {
				lastErr = err
				return false
			}
		}
		return true
	})
	ag.stop(t)
	_ = lastErr
	for _, f := range fronts(spans) {
		if f.ParentID != "" {
			t.Errorf("front SERVER span has parent %s, want a root", f.ParentID)
		}
		line, err := follow(spans, f)
		if err != nil {
			t.Errorf("%s: %v", f.Attrs["url.path"], err)
			continue
		}
		if line[1].Name != "chain.Hop/Get" || line[2].Name != "chain.Hop/Get" {
			t.Errorf("gRPC spans named %q, %q", line[1].Name, line[2].Name)
		}
		if got := len(otlptest.Filter(spans, func(s otlptest.Span) bool { return s.TraceID == f.TraceID })); got != len(hops) {
			t.Errorf("%s: %d spans in the trace, want %d", f.Attrs["url.path"], got, len(hops))
		}
	}
}
