package http

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"github.com/tracer-agent/tracer-agent/probes/probe/probetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// want describes one expected span of a capture, in request order.
type want struct {
	name     string
	path     string
	query    string
	status   int64
	version  string
	reqBody  int64 // -1: attribute absent
	respBody int64 // -1: attribute absent
}

var captures = []struct {
	file       string
	untilClose bool // last response ends at Close
	traced     bool // requests carry the test traceparent
	ua         string
	spans      []want
}{
	{file: "go-keepalive", traced: true, ua: "curl/7.88.1", spans: []want{
		{"GET /users/{id}", "/users/42", "verbose=1", 200, "1.1", -1, 20},
		{"GET /users/{id}/orders", "/users/550e8400-e29b-41d4-a716-446655440000/orders", "", 200, "1.1", -1, 61},
	}},
	{file: "go-chunked-trailer", ua: "curl/7.88.1", spans: []want{
		{"GET /stream", "/stream", "", 200, "1.1", -1, 21},
	}},
	{file: "go-post-100continue", ua: "curl/7.88.1", spans: []want{
		{"POST /upload", "/upload", "", 201, "1.1", 3000, 8},
	}},
	{file: "go-head-204-503", ua: "curl/7.88.1", spans: []want{
		{"HEAD /users/{id}", "/users/7", "", 200, "1.1", -1, -1},
		{"GET /empty", "/empty", "", 204, "1.1", -1, -1},
		{"GET /fail", "/fail", "", 503, "1.1", -1, 5},
	}},
	{file: "python-http10", ua: "curl/7.88.1", spans: []want{
		{"GET /hello.txt", "/hello.txt", "", 200, "1.1", -1, 18},
	}},
	{file: "python-until-close", untilClose: true, ua: "curl/7.88.1", spans: []want{
		{"GET /stream/until/close", "/stream/until/close", "", 200, "1.0", -1, 300},
	}},
	{file: "node-keepalive", ua: "probe-test/1.0", spans: []want{
		{"GET /items/{id}/details", "/items/123456/details", "", 200, "1.1", -1, 24},
		{"GET /chunks/{id}", "/chunks/a1b2c3d4e5", "", 200, "1.1", -1, 6},
		{"GET /", "/", "", 200, "1.1", -1, 4},
	}},
}

var testTraceparent = probe.ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "vendor=x")

// replay feeds a capture as seen by the server (client→server = Recv) or
// the client (client→server = Send). It returns spans and, per request,
// the expected Start and End (End of the last piece before the next request).
func replay(t *testing.T, recs []probetest.Record, client bool, split probetest.Splitter, limit int) (*probetest.Driver, []time.Time, []time.Time) {
	conn := serverConn
	if client {
		conn.Local, conn.Remote = conn.Remote, conn.Local
	}
	d := newDriver(conn)
	var starts, ends []time.Time
	for _, r := range recs {
		dir := probe.Recv
		if (r.Dir == '>') == client {
			dir = probe.Send
		}
		isReq := r.Dir == '>' && startsMessage(r.Data)
		for i, piece := range split(r.Data) {
			captured := len(piece)
			if limit > 0 {
				captured = min(captured, limit)
			}
			s, e := d.Feed(dir, piece, captured, trace.SpanContext{}, trace.SpanContext{})
			if isReq && i == 0 {
				if dir == probe.Recv {
					s = e // a read has the bytes at exit (see arrival)
				}
				starts = append(starts, s)
			}
			if r.Dir == '<' && len(ends) < len(starts) {
				ends = append(ends, time.Time{})
			}
			if r.Dir == '<' {
				ends[len(starts)-1] = e
			}
		}
	}
	return d, starts, ends
}

func TestCaptures(t *testing.T) {
	splits := map[string]probetest.Splitter{
		"whole": probetest.Whole, "bytes": probetest.Bytewise, "random1": probetest.Random(1), "random2": probetest.Random(2),
	}
	for _, c := range captures {
		recs := probetest.LoadCapture(t, c.file)
		for _, client := range []bool{false, true} {
			for sname, split := range splits {
				t.Run(fmt.Sprintf("%s/client=%v/%s", c.file, client, sname), func(t *testing.T) {
					d, starts, ends := replay(t, recs, client, split, 0)
					closeAt := d.Close()
					if len(d.Spans) != len(c.spans) {
						t.Fatalf("got %d spans, want %d: %+v", len(d.Spans), len(c.spans), d.Spans)
					}
					probetest.CheckTimes(t, d.Spans)
					for i, w := range c.spans {
						checkCaptureSpan(t, d.Spans[i], w, c.ua, client)
						if d.Spans[i].Start != starts[i] {
							t.Errorf("span %d Start %v want %v", i, d.Spans[i].Start, starts[i])
						}
						wantEnd := ends[i]
						if c.untilClose && i == len(c.spans)-1 {
							wantEnd = closeAt
						}
						if d.Spans[i].End != wantEnd {
							t.Errorf("span %d End %v want %v", i, d.Spans[i].End, wantEnd)
						}
						if d.Spans[i].PID != 42 || d.Spans[i].TID == 0 {
							t.Errorf("span %d PID/TID %d/%d", i, d.Spans[i].PID, d.Spans[i].TID)
						}
						if c.traced {
							checkTraced(t, d.Spans[i], client)
						}
					}
				})
			}
		}
	}
}

func checkCaptureSpan(t *testing.T, sp probe.Span, w want, ua string, client bool) {
	t.Helper()
	if sp.Name != w.name {
		t.Errorf("name %q want %q", sp.Name, w.name)
	}
	wantKind := trace.SpanKindServer
	if client {
		wantKind = trace.SpanKindClient
	}
	if sp.Kind != wantKind {
		t.Errorf("%s: kind %v want %v", sp.Name, sp.Kind, wantKind)
	}
	probetest.WantStr(t, sp, semconv.URLPathKey, w.path)
	if w.query != "" {
		probetest.WantStr(t, sp, semconv.URLQueryKey, w.query)
	} else {
		probetest.WantAbsent(t, sp, semconv.URLQueryKey)
	}
	probetest.WantStr(t, sp, semconv.URLSchemeKey, "http")
	probetest.WantInt(t, sp, semconv.HTTPResponseStatusCodeKey, w.status)
	probetest.WantStr(t, sp, semconv.NetworkProtocolVersionKey, w.version)
	probetest.WantStr(t, sp, semconv.UserAgentOriginalKey, ua)
	probetest.WantStr(t, sp, semconv.ServerAddressKey, "127.0.0.1")
	if w.reqBody >= 0 {
		probetest.WantInt(t, sp, semconv.HTTPRequestBodySizeKey, w.reqBody)
	} else {
		probetest.WantAbsent(t, sp, semconv.HTTPRequestBodySizeKey)
	}
	if w.respBody >= 0 {
		probetest.WantInt(t, sp, semconv.HTTPResponseBodySizeKey, w.respBody)
	} else {
		probetest.WantAbsent(t, sp, semconv.HTTPResponseBodySizeKey)
	}
	route := sp.Name[len("GET "):]
	if i := bytes.IndexByte([]byte(sp.Name), ' '); i >= 0 {
		route = sp.Name[i+1:]
	}
	isErr := w.status >= 500 || (client && w.status >= 400)
	if sp.Error != isErr {
		t.Errorf("%s: Error %v want %v", sp.Name, sp.Error, isErr)
	}
	if isErr {
		probetest.WantStr(t, sp, semconv.ErrorTypeKey, fmt.Sprint(w.status))
	} else {
		probetest.WantAbsent(t, sp, semconv.ErrorTypeKey)
	}
	if client {
		probetest.WantStr(t, sp, semconv.URLTemplateKey, route)
		probetest.WantAbsent(t, sp, semconv.HTTPRouteKey)
		probetest.WantStr(t, sp, semconv.NetworkPeerAddressKey, "10.0.0.1")
		probetest.WantInt(t, sp, semconv.NetworkPeerPortKey, 8080)
		full, _ := probetest.Attr(sp, semconv.URLFullKey)
		if !bytes.HasPrefix([]byte(full.AsString()), []byte("http://127.0.0.1:")) {
			t.Errorf("url.full %q", full.AsString())
		}
	} else {
		probetest.WantStr(t, sp, semconv.HTTPRouteKey, route)
		probetest.WantStr(t, sp, semconv.ClientAddressKey, "10.0.0.2")
		probetest.WantInt(t, sp, semconv.ClientPortKey, 51000)
		probetest.WantStr(t, sp, semconv.NetworkPeerAddressKey, "10.0.0.2")
		probetest.WantAbsent(t, sp, semconv.URLFullKey)
	}
}

func checkTraced(t *testing.T, sp probe.Span, client bool) {
	t.Helper()
	if !client {
		if !sp.Parent.Equal(testTraceparent) || !sp.Parent.IsRemote() {
			t.Errorf("server parent %v want %v", sp.Parent, testTraceparent)
		}
		if sp.Parent.TraceState().Get("vendor") != "x" {
			t.Errorf("tracestate lost: %v", sp.Parent.TraceState())
		}
		return
	}
	if sp.SpanContext.TraceID() != testTraceparent.TraceID() || sp.SpanContext.SpanID() != testTraceparent.SpanID() || sp.SpanContext.IsRemote() {
		t.Errorf("client span context %v", sp.SpanContext)
	}
	if sp.Parent.IsValid() {
		t.Errorf("client parent should be invalid without chunk ctx: %v", sp.Parent)
	}
}

// TestCapturesTruncated replays captures with the kernel capturing only a
// prefix of every syscall: same spans (partial heads still count), sane
// times, and body sizes only when they were knowable.
func TestCapturesTruncated(t *testing.T) {
	for _, limit := range []int{16, 64, 120, 200} {
		for _, c := range captures {
			recs := probetest.LoadCapture(t, c.file)
			for _, client := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/limit=%d/client=%v", c.file, limit, client), func(t *testing.T) {
					d, _, _ := replay(t, recs, client, probetest.Whole, limit)
					d.Close()
					probetest.CheckTimes(t, d.Spans)
					if len(d.Spans) != len(c.spans) {
						t.Fatalf("got %d spans want %d: %+v", len(d.Spans), len(c.spans), d.Spans)
					}
					for i, w := range c.spans {
						sp := d.Spans[i]
						if limit >= 64 && sp.Name != w.name {
							// 16 bytes may cut the path itself.
							t.Errorf("name %q want %q", sp.Name, w.name)
						}
						if v, ok := probetest.Attr(sp, semconv.HTTPResponseStatusCodeKey); limit >= 16 && (!ok || v.AsInt64() != w.status) {
							t.Errorf("%s: status %v want %d", sp.Name, v.Emit(), w.status)
						}
					}
				})
			}
		}
	}
}

// TestCapturePostBodyGap: the 3000-byte upload captured as 200 bytes still
// frames (length known), so the request body size is exact.
func TestCapturePostBodyGap(t *testing.T) {
	recs := probetest.LoadCapture(t, "go-post-100continue")
	d := newDriver(serverConn)
	for _, r := range recs {
		dir := probe.Recv
		if r.Dir == '<' {
			dir = probe.Send
		}
		limit := -1
		if len(r.Data) == 3000 {
			limit = 200
		}
		d.Feed(dir, r.Data, limit, trace.SpanContext{}, trace.SpanContext{})
	}
	if len(d.Spans) != 1 {
		t.Fatalf("spans: %+v", d.Spans)
	}
	probetest.WantInt(t, d.Spans[0], semconv.HTTPRequestBodySizeKey, 3000)
	probetest.WantInt(t, d.Spans[0], semconv.HTTPResponseStatusCodeKey, 201)
}
