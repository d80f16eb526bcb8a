package http2

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"github.com/tracer-agent/tracer-agent/probes/probe/probetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// want describes one expected span of a capture, in completion order.
type want struct {
	stream uint32
	name   string
	grpc   string // rpc.response.status_code; "" for plain HTTP
	status int64  // http.response.status_code (plain HTTP)
	srvErr bool   // status ERROR on the server side
	cliErr bool   // status ERROR on the client side
	msg    string // StatusMessage when an error
	path   string // url.path (plain HTTP)
	orig   string // rpc.method_original (gRPC method the server did not know)
}

var testTraceparent = probe.ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "vendor=x")

var captures = []struct {
	file   string
	traced []uint32 // streams carrying the test traceparent (+ tracestate vendor=x)
	noTS   bool     // traceparent without tracestate
	spans  []want
}{
	{file: "grpc-go", traced: []uint32{1}, spans: []want{
		{stream: 1, name: "demo.v1.Echo/Say", grpc: "OK"},
		{stream: 3, name: "demo.v1.Echo/Say", grpc: "OK"},
		{stream: 5, name: "demo.v1.Echo/Say", grpc: "INTERNAL", srvErr: true, cliErr: true, msg: "boom: ünïcode 100%"},
		{stream: 7, name: "demo.v1.Echo/Say", grpc: "NOT_FOUND", cliErr: true, msg: "no such thing"},
		{stream: 9, name: "demo.v1.Echo/Count", grpc: "OK"},
		{stream: 11, name: "grpc.health.v1.Health/Check", grpc: "OK"},
		{stream: 13, name: "grpc", grpc: "UNIMPLEMENTED", srvErr: true, cliErr: true, msg: "unknown method Nope for service demo.v1.Echo", orig: "demo.v1.Echo/Nope"},
		{stream: 15, name: "demo.v1.Echo/Say", grpc: "DEADLINE_EXCEEDED", srvErr: true, cliErr: true},
	}},
	{file: "grpc-python", traced: []uint32{3}, noTS: true, spans: []want{
		{stream: 1, name: "demo.Echo/Unary", grpc: "OK"},
		{stream: 3, name: "demo.Echo/Unary", grpc: "OK"},
		{stream: 5, name: "demo.Echo/Stream", grpc: "OK"},
		{stream: 7, name: "demo.Echo/Fail", grpc: "NOT_FOUND", cliErr: true, msg: "no such thing: 100%"},
		{stream: 9, name: "demo.Echo/Crash", grpc: "UNKNOWN", srvErr: true, cliErr: true, msg: "Exception calling application: boom"},
		{stream: 11, name: "grpc", grpc: "UNIMPLEMENTED", srvErr: true, cliErr: true, msg: "Method not found!", orig: "demo.Echo/Missing"},
	}},
	{file: "go-h2c", traced: []uint32{1, 3}, noTS: true, spans: []want{
		{stream: 1, name: "GET /users/{id}/orders", status: 200, path: "/users/550e8400-e29b-41d4-a716-446655440000/orders"},
		{stream: 3, name: "GET /fail", status: 503, srvErr: true, cliErr: true, path: "/fail"},
		{stream: 5, name: "POST /upload", status: 201, path: "/upload"},
	}},
	{file: "curl-h2c-get", traced: []uint32{1}, spans: []want{
		{stream: 1, name: "GET /users/{id}", status: 200, path: "/users/42"},
	}},
	{file: "curl-h2c-post", spans: []want{
		{stream: 1, name: "POST /upload", status: 201, path: "/upload"},
	}},
}

// fed is one chunk given to the parser: its direction (client→server or
// back) and the byte range of that direction's stream it held.
type fed struct {
	toServer   bool
	from, to   int64
	start, end time.Time
}

// replay feeds a capture as seen by the server (client→server = Recv) or
// the client (client→server = Send). limit > 0 caps each chunk's capture.
func replay(recs []probetest.Record, client bool, split probetest.Splitter, limit func(i int, r probetest.Record) int) (*probetest.Driver, []fed) {
	return replayWith(recs, client, split, limit, nil)
}

// replayWith is replay with the kernel's HTTP/2 segments (segs) past
// each chunk's captured prefix.
func replayWith(recs []probetest.Record, client bool, split probetest.Splitter, limit func(i int, r probetest.Record) int,
	segs func(probe.Direction, []byte, int) []probe.Segment) (*probetest.Driver, []fed) {
	conn := serverConn
	if client {
		conn.Local, conn.Remote = conn.Remote, conn.Local
	}
	d := newDriver(conn)
	d.Segments = segs
	var log []fed
	var off [2]int64
	for i, r := range recs {
		toServer := r.Dir == '>'
		dir := probe.Recv
		if toServer == client {
			dir = probe.Send
		}
		k := 0
		if toServer {
			k = 1
		}
		if toServer && frameAt(r.Data, frameRSTStream, 0) >= 0 {
			// The client cancels when its deadline passed: keep the
			// replayed timeline that realistic.
			d.Now = d.Now.Add(150 * time.Millisecond)
		}
		for _, piece := range split(r.Data) {
			captured := len(piece)
			if limit != nil {
				captured = min(captured, limit(i, r))
			}
			s, e := d.Feed(dir, piece, captured, trace.SpanContext{}, trace.SpanContext{})
			log = append(log, fed{toServer, off[k], off[k] + int64(len(piece)), s, e})
			off[k] += int64(len(piece))
		}
	}
	return d, log
}

// streamEvents are independent frame-walk facts about one stream: byte
// offsets (in their direction) of its request HEADERS, of the ends of its
// END_STREAM frames and of the first RST_STREAM.
type streamEvents struct {
	headers         int64
	reqEnd, respEnd int64    // -1 when absent
	rst             [2]int64 // per direction (0: to client, 1: to server)
}

func walkFrames(recs []probetest.Record) map[uint32]*streamEvents {
	var buf [2][]byte
	for _, r := range recs {
		k := 0
		if r.Dir == '>' {
			k = 1
		}
		buf[k] = append(buf[k], r.Data...)
	}
	ev := map[uint32]*streamEvents{}
	get := func(id uint32) *streamEvents {
		if ev[id] == nil {
			ev[id] = &streamEvents{headers: -1, reqEnd: -1, respEnd: -1, rst: [2]int64{-1, -1}}
		}
		return ev[id]
	}
	for k := range buf {
		b, off := buf[k], int64(0)
		if k == 1 {
			off = int64(len(clientPreface))
		}
		for off+9 <= int64(len(b)) {
			h := parseFrameHeader(b[off:])
			end := off + 9 + int64(h.length)
			switch {
			case h.typ == frameHeaders && k == 1 && get(h.stream).headers < 0:
				get(h.stream).headers = off
			case h.typ == frameRSTStream && get(h.stream).rst[k] < 0:
				get(h.stream).rst[k] = end - 1
			}
			if (h.typ == frameHeaders || h.typ == frameData) && h.flags&flagEndStream != 0 {
				if k == 1 {
					get(h.stream).reqEnd = end - 1
				} else {
					get(h.stream).respEnd = end - 1
				}
			}
			off = end
		}
	}
	return ev
}

// locate returns the index of the chunk holding byte off of a direction.
func locate(log []fed, toServer bool, off int64) int {
	for i, f := range log {
		if f.toServer == toServer && f.from <= off && off < f.to {
			return i
		}
	}
	return -1
}

// expectedTimes derives a stream's Start (arrival of the chunk holding the
// request HEADERS) and End (the chunk completing both END_STREAMs or the
// first RST_STREAM, whichever came first).
func expectedTimes(log []fed, ev *streamEvents, client bool) (time.Time, time.Time) {
	h := log[locate(log, true, ev.headers)]
	start := h.start
	if !client { // the server reads the request: it has it at exit
		start = h.end
	}
	done := -1
	if ev.reqEnd >= 0 && ev.respEnd >= 0 {
		done = max(locate(log, true, ev.reqEnd), locate(log, false, ev.respEnd))
	}
	for k, off := range ev.rst {
		if off < 0 {
			continue
		}
		if r := locate(log, k == 1, off); done < 0 || r < done {
			done = r
		}
	}
	if done < 0 {
		return start, time.Time{}
	}
	return start, log[done].end
}

func TestCaptures(t *testing.T) {
	splits := map[string]probetest.Splitter{
		"whole": probetest.Whole, "bytes": probetest.Bytewise, "random1": probetest.Random(1), "random2": probetest.Random(2),
	}
	for _, c := range captures {
		recs := probetest.LoadCapture(t, c.file)
		ev := walkFrames(recs)
		for _, client := range []bool{false, true} {
			for sname, split := range splits {
				t.Run(fmt.Sprintf("%s/client=%v/%s", c.file, client, sname), func(t *testing.T) {
					d, log := replay(recs, client, split, nil)
					if len(d.Spans) != len(c.spans) {
						t.Fatalf("got %d spans %q, want %d", len(d.Spans), probetest.Names(d.Spans), len(c.spans))
					}
					d.Close()
					if len(d.Spans) != len(c.spans) {
						t.Fatalf("Close emitted more: %q", probetest.Names(d.Spans))
					}
					probetest.CheckTimes(t, d.Spans)
					for i, w := range c.spans {
						sp := d.Spans[i]
						checkSpan(t, sp, w, client)
						start, end := expectedTimes(log, ev[w.stream], client)
						if sp.Start != start || sp.End != end {
							t.Errorf("%s (stream %d): times %v..%v want %v..%v", sp.Name, w.stream, sp.Start, sp.End, start, end)
						}
						if sp.PID != 42 || sp.TID == 0 {
							t.Errorf("span %d PID/TID %d/%d", i, sp.PID, sp.TID)
						}
						traced := false
						for _, id := range c.traced {
							traced = traced || id == w.stream
						}
						checkTraced(t, sp, traced, !c.noTS, client)
					}
					p := d.Parser.(*parser)
					for k := range p.dirs {
						if h := p.dirs[k].hp; h == nil || h.degraded || h.lost != 0 {
							t.Errorf("dir %d: hpack %+v, want whole", k, h)
						}
					}
				})
			}
		}
	}
}

func checkSpan(t *testing.T, sp probe.Span, w want, client bool) {
	t.Helper()
	if sp.Name != w.name {
		t.Errorf("stream %d: name %q want %q", w.stream, sp.Name, w.name)
	}
	kind := trace.SpanKindServer
	if client {
		kind = trace.SpanKindClient
	}
	if sp.Kind != kind {
		t.Errorf("%s: kind %v want %v", sp.Name, sp.Kind, kind)
	}
	isErr := w.srvErr
	if client {
		isErr = w.cliErr
	}
	if sp.Error != isErr {
		t.Errorf("%s: Error %v want %v", sp.Name, sp.Error, isErr)
	}
	probetest.WantStr(t, sp, semconv.ServerAddressKey, "127.0.0.1")
	probetest.WantStr(t, sp, semconv.NetworkPeerAddressKey, map[bool]string{false: "10.0.0.2", true: "10.0.0.1"}[client])
	if client {
		probetest.WantAbsent(t, sp, semconv.ClientAddressKey)
	} else {
		probetest.WantStr(t, sp, semconv.ClientAddressKey, "10.0.0.2")
		probetest.WantInt(t, sp, semconv.ClientPortKey, 51000)
	}
	if w.grpc != "" {
		probetest.WantStr(t, sp, semconv.RPCSystemNameKey, "grpc")
		probetest.WantStr(t, sp, semconv.RPCResponseStatusCodeKey, w.grpc)
		probetest.WantAbsent(t, sp, semconv.HTTPRequestMethodKey)
		if w.name == "grpc" {
			probetest.WantStr(t, sp, semconv.RPCMethodKey, "_OTHER")
			probetest.WantStr(t, sp, semconv.RPCMethodOriginalKey, w.orig)
		} else {
			probetest.WantStr(t, sp, semconv.RPCMethodKey, w.name)
		}
		if isErr {
			probetest.WantStr(t, sp, semconv.ErrorTypeKey, w.grpc)
			if sp.StatusMessage != w.msg {
				t.Errorf("%s: message %q want %q", sp.Name, sp.StatusMessage, w.msg)
			}
		} else {
			probetest.WantAbsent(t, sp, semconv.ErrorTypeKey)
		}
		return
	}
	method, route, _ := strings.Cut(w.name, " ")
	probetest.WantStr(t, sp, semconv.HTTPRequestMethodKey, method)
	probetest.WantInt(t, sp, semconv.HTTPResponseStatusCodeKey, w.status)
	probetest.WantStr(t, sp, semconv.NetworkProtocolVersionKey, "2")
	probetest.WantStr(t, sp, semconv.URLSchemeKey, "http")
	probetest.WantStr(t, sp, semconv.URLPathKey, w.path)
	probetest.WantAbsent(t, sp, semconv.RPCSystemNameKey)
	if client {
		probetest.WantStr(t, sp, semconv.URLTemplateKey, route)
		full, _ := probetest.Attr(sp, semconv.URLFullKey)
		if !strings.HasPrefix(full.AsString(), "http://127.0.0.1:") || !strings.Contains(full.AsString(), w.path) {
			t.Errorf("url.full %q", full.AsString())
		}
	} else {
		probetest.WantStr(t, sp, semconv.HTTPRouteKey, route)
	}
	if isErr {
		probetest.WantStr(t, sp, semconv.ErrorTypeKey, fmt.Sprint(w.status))
	} else {
		probetest.WantAbsent(t, sp, semconv.ErrorTypeKey)
	}
}

func checkTraced(t *testing.T, sp probe.Span, traced, withState, client bool) {
	t.Helper()
	if !traced {
		if sp.Parent.IsValid() || sp.SpanContext.IsValid() {
			t.Errorf("%s: untraced span has context %v / parent %v", sp.Name, sp.SpanContext, sp.Parent)
		}
		return
	}
	if !client {
		if !sp.Parent.Equal(testTraceparent.WithTraceState(sp.Parent.TraceState())) || !sp.Parent.IsRemote() {
			t.Errorf("%s: server parent %v want %v", sp.Name, sp.Parent, testTraceparent)
		}
		if withState && sp.Parent.TraceState().Get("vendor") != "x" {
			t.Errorf("tracestate lost: %v", sp.Parent.TraceState())
		}
		return
	}
	if sp.SpanContext.TraceID() != testTraceparent.TraceID() || sp.SpanContext.SpanID() != testTraceparent.SpanID() || sp.SpanContext.IsRemote() {
		t.Errorf("%s: client span context %v", sp.Name, sp.SpanContext)
	}
	if sp.Parent.IsValid() {
		t.Errorf("client parent should be invalid without chunk ctx: %v", sp.Parent)
	}
}

// frameAt returns the offset in record data of the first frame of type typ
// on stream id (any stream when 0; records hold whole frames in these
// captures), or -1.
func frameAt(data []byte, typ uint8, id uint32) int {
	off := 0
	if strings.HasPrefix(string(data), clientPreface) {
		off = len(clientPreface)
	}
	for off+9 <= len(data) {
		h := parseFrameHeader(data[off:])
		if h.typ == typ && (h.stream == id || id == 0) {
			return off
		}
		off += 9 + int(h.length)
	}
	return -1
}

// TestLostHeadersBlock: a request HEADERS frame cut by the capture limit
// leaves its stream reported with unknown request headers; HPACK decoding
// of that direction restarts from an empty table and never yields wrong
// headers afterwards.
func TestLostHeadersBlock(t *testing.T) {
	for _, c := range captures {
		if c.file == "curl-h2c-post" {
			continue
		}
		if c.file == "grpc-python" {
			// The cut block holds only indexed fields and a literal
			// never indexed: the table is dropped, but later C-core
			// requests send :path as a literal and :method from the
			// static table, so every span stays exact (nothing to see).
			continue
		}
		recs := probetest.LoadCapture(t, c.file)
		lostID := c.spans[min(1, len(c.spans)-1)].stream
		rec, cut := -1, 0
		for i, r := range recs {
			if r.Dir == '>' {
				if at := frameAt(r.Data, frameHeaders, lostID); at >= 0 {
					rec, cut = i, at+11 // frame header + 2 bytes of the block
					break
				}
			}
		}
		if rec < 0 {
			t.Fatalf("%s: no HEADERS for stream %d", c.file, lostID)
		}
		for _, client := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/client=%v", c.file, client), func(t *testing.T) {
				d, _ := replay(recs, client, probetest.Whole, func(i int, r probetest.Record) int {
					if i == rec {
						return cut
					}
					return len(r.Data)
				})
				d.Close()
				probetest.CheckTimes(t, d.Spans)
				p := d.Parser.(*parser)
				reqDir := probe.Recv
				if client {
					reqDir = probe.Send
				}
				if h := p.dirs[reqDir].hp; h.lost == 0 || !h.degraded {
					t.Errorf("request direction hpack %+v: want a lost block", h)
				}
				byStream := map[uint32]want{}
				for _, w := range c.spans {
					byStream[w.stream] = w
				}
				seenLost := false
				for _, sp := range d.Spans {
					exact, ok := allowedName(sp.Name, c.spans)
					if !ok {
						t.Errorf("span %q: neither an expected name nor an honest degradation", sp.Name)
					}
					if sp.Name == "grpc" {
						// Request headers lost: the response side still tells the status.
						if _, ok := probetest.Attr(sp, semconv.RPCResponseStatusCodeKey); !ok {
							t.Errorf("degraded gRPC span lost its status")
						}
					}
					seenLost = seenLost || !exact
				}
				if !seenLost {
					t.Errorf("no degraded span: %q", probetest.Names(d.Spans))
				}
				if len(d.Spans) != len(c.spans) {
					t.Errorf("got %d spans %q want %d", len(d.Spans), probetest.Names(d.Spans), len(c.spans))
				}
			})
		}
	}
}

// TestCapturesTruncated replays captures with every syscall captured only
// up to a prefix: no panic, sane times, and every span either exact or
// honestly generic.
func TestCapturesTruncated(t *testing.T) {
	for _, limit := range []int{9, 16, 40, 64, 120, 200, 1000} {
		for _, c := range captures {
			recs := probetest.LoadCapture(t, c.file)
			for _, client := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/limit=%d/client=%v", c.file, limit, client), func(t *testing.T) {
					d, _ := replay(recs, client, probetest.Whole, func(int, probetest.Record) int { return limit })
					d.Close()
					probetest.CheckTimes(t, d.Spans)
					if len(d.Spans) > len(c.spans) {
						t.Fatalf("got %d spans %q, more than %d", len(d.Spans), probetest.Names(d.Spans), len(c.spans))
					}
					for _, sp := range d.Spans {
						if _, ok := allowedName(sp.Name, c.spans); !ok {
							t.Errorf("unexpected span name %q", sp.Name)
						}
					}
				})
			}
		}
	}
}

// TestBigDataGap: the 20000-byte POST body captured as 200 bytes is skipped
// by frame length: the stream, its body size and later frames stay exact.
func TestBigDataGap(t *testing.T) {
	recs := probetest.LoadCapture(t, "go-h2c")
	d, _ := replay(recs, false, probetest.Whole, func(_ int, r probetest.Record) int {
		if len(r.Data) > 10000 {
			return 200
		}
		return len(r.Data)
	})
	probetest.WantNames(t, d.Spans, "GET /users/{id}/orders", "GET /fail", "POST /upload")
	probetest.WantInt(t, d.Spans[2], semconv.HTTPRequestBodySizeKey, 20000)
	probetest.WantInt(t, d.Spans[2], semconv.HTTPResponseStatusCodeKey, 201)
	probetest.WantInt(t, d.Spans[2], semconv.HTTPResponseBodySizeKey, 9)
}

// TestJoinMidConnection: an agent started after the connection sees no
// preface; the probe recognises the frames, decodes what the (fresh) HPACK
// tables allow and reports the rest generically.
func TestJoinMidConnection(t *testing.T) {
	recs := probetest.LoadCapture(t, "grpc-go")
	// Start at the client's write opening stream 5.
	first := -1
	for i, r := range recs {
		if first < 0 && r.Dir == '>' && frameAt(r.Data, frameHeaders, 5) >= 0 {
			first = i
			break
		}
	}
	rest := recs[first:]
	if !New(Options{}).Detect(&probe.Chunk{Dir: probe.Recv, Data: rest[0].Data, Len: len(rest[0].Data)}) {
		t.Fatal("Detect should accept a mid-connection frame run")
	}
	d, _ := replay(rest, false, probetest.Whole, nil)
	d.Close()
	probetest.CheckTimes(t, d.Spans)
	var spans []want
	for _, c := range captures {
		if c.file == "grpc-go" {
			spans = c.spans
		}
	}
	if len(d.Spans) != 6 {
		t.Fatalf("spans %q", probetest.Names(d.Spans))
	}
	// grpc-go indexes :path, content-type, grpc-status... in the dynamic
	// table on first use: a fresh table resolves only what is literal
	// after the join, and must not guess the rest.
	got := probetest.Names(d.Spans)
	for _, sp := range d.Spans {
		if _, ok := allowedName(sp.Name, spans); !ok {
			t.Errorf("span %q: not an honest name", sp.Name)
		}
		if sp.Kind != trace.SpanKindServer {
			t.Errorf("kind %v", sp.Kind)
		}
	}
	if got[2] != "demo.v1.Echo/Count" || got[3] != "grpc.health.v1.Health/Check" {
		t.Errorf("literal paths after the join should decode: %q", got)
	}
	p := d.Parser.(*parser)
	if !p.dirs[probe.Recv].hp.degraded {
		t.Error("joined connection should be flagged degraded")
	}
}

// allowedName reports whether name is one of the expected span names
// (exact) or what losing headers may honestly leave of one: "HTTP", "grpc",
// or the bare method.
func allowedName(name string, spans []want) (exact, ok bool) {
	for _, w := range spans {
		method, _, _ := strings.Cut(w.name, " ")
		switch {
		case name == w.name:
			return true, true
		case name == "HTTP" || name == "grpc" && w.grpc != "":
			ok = true
		case w.grpc == "" && name == method || w.grpc != "" && name == "POST":
			ok = true
		case w.orig != "" && name == w.orig:
			ok = true // the status (UNIMPLEMENTED) was lost: the method is what the client asked
		}
	}
	return false, ok
}
