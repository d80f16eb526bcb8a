package http2

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"github.com/tracer-agent/tracer-agent/probes/probe/probetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// peer builds one side's frames with the x/net framer and HPACK encoder
// (tests only: the probe itself decodes with its own framing).
type peer struct {
	buf bytes.Buffer
	fr  *http2.Framer
	hb  bytes.Buffer
	enc *hpack.Encoder
}

func newPeer() *peer {
	p := &peer{}
	p.fr = http2.NewFramer(&p.buf, nil)
	p.fr.AllowIllegalWrites = true
	p.enc = hpack.NewEncoder(&p.hb)
	return p
}

// block HPACK-encodes name/value pairs.
func (p *peer) block(kv ...string) []byte {
	p.hb.Reset()
	for i := 0; i+1 < len(kv); i += 2 {
		p.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return append([]byte(nil), p.hb.Bytes()...)
}

func (p *peer) take() []byte {
	b := append([]byte(nil), p.buf.Bytes()...)
	p.buf.Reset()
	return b
}

func (p *peer) headers(id uint32, end bool, kv ...string) []byte {
	p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: p.block(kv...), EndStream: end, EndHeaders: true})
	return p.take()
}

func (p *peer) data(id uint32, end bool, s string) []byte {
	p.fr.WriteData(id, end, []byte(s))
	return p.take()
}

func TestDetect(t *testing.T) {
	pr := New(Options{})
	if pr.Name() != "http2" {
		t.Fatal(pr.Name())
	}
	settings := []byte("\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64")
	ping := []byte("\x00\x00\x08\x06\x00\x00\x00\x00\x00\x01\x02\x03\x04\x05\x06\x07\x08")
	c := newPeer()
	hdr := c.headers(1, true, ":method", "GET", ":path", "/", ":scheme", "http", ":authority", "x")
	data := c.data(3, false, "hello")
	for name, tc := range map[string]struct {
		b    []byte
		want bool
	}{
		"preface":          {[]byte(clientPreface + string(settings)), true},
		"preface only":     {[]byte(clientPreface), true},
		"settings":         {settings, true},
		"headers":          {hdr, true},
		"data":             {data, true},
		"ping":             {ping, true},
		"headers+data":     {append(append([]byte{}, hdr...), data...), true},
		"partial frame":    {hdr[:12], true},
		"settings ack":     {[]byte("\x00\x00\x00\x04\x01\x00\x00\x00\x00"), true},
		"http1 get":        {[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), false},
		"http1 response":   {[]byte("HTTP/1.1 200 OK\r\n\r\n"), false},
		"pg startup":       {[]byte("\x00\x00\x00\x08\x04\xd2\x16\x2f"), false},
		"pg startup long":  {[]byte("\x00\x00\x00\x29\x00\x03\x00\x00user\x00postgres\x00database\x00db\x00\x00"), false},
		"pg ssl request":   {[]byte("\x00\x00\x00\x08\x04\xd2\x16\x2f\x00"), false},
		"mysql greeting":   {[]byte("\x4a\x00\x00\x00\x0a8.0.36\x00\x08\x00\x00\x00"), false},
		"kafka request":    {[]byte("\x00\x00\x00\x2b\x00\x12\x00\x03\x00\x00\x00\x01\x00\x07client1\x00"), false},
		"kafka size 0x100": {[]byte("\x00\x00\x01\x00\x00\x03\x00\x09\x00\x00\x00\x05\x00\x07client1" + strings.Repeat("\x00", 240)), false},
		"tls hello":        {[]byte("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), false},
		"settings bad val": {[]byte("\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x05"), false},
		"settings stream":  {[]byte("\x00\x00\x06\x04\x00\x00\x00\x00\x01\x00\x03\x00\x00\x00\x64"), false},
		"data stream 0":    {[]byte("\x00\x00\x01\x00\x00\x00\x00\x00\x00x"), false},
		"bad flags":        {[]byte("\x00\x00\x00\x04\x02\x00\x00\x00\x00"), false},
		"continuation":     {[]byte("\x00\x00\x01\x09\x04\x00\x00\x00\x01\x82"), false},
		"short":            {[]byte("\x00\x00"), false},
		"empty":            {nil, false},
		"garbage tail":     {append(append([]byte{}, settings...), "GET / HTTP/1.1\r\n"...), false},
	} {
		for _, dir := range []probe.Direction{probe.Recv, probe.Send} {
			if got := pr.Detect(&probe.Chunk{Dir: dir, Data: tc.b, Len: len(tc.b)}); got != tc.want {
				t.Errorf("%s/%v: Detect = %v want %v", name, dir, got, tc.want)
			}
		}
	}
	if pr.Detect(nil) {
		t.Error("Detect(nil)")
	}
	// A capture cut inside the preface.
	if !pr.Detect(&probe.Chunk{Data: []byte(clientPreface[:10]), Len: 100}) {
		t.Error("truncated preface")
	}
}

// conversation drives a client→server exchange seen from the server.
type conversation struct {
	*probetest.Driver
	c, s *peer
}

func newConversation() *conversation {
	cv := &conversation{Driver: newDriver(serverConn), c: newPeer(), s: newPeer()}
	cv.Send(recv, clientPreface)
	return cv
}

func (cv *conversation) in(b []byte) (time.Time, time.Time) {
	return cv.Feed(recv, b, -1, trace.SpanContext{}, trace.SpanContext{})
}

func (cv *conversation) out(b []byte) (time.Time, time.Time) {
	return cv.Feed(send, b, -1, trace.SpanContext{}, trace.SpanContext{})
}

func TestPaddingPriorityContinuation(t *testing.T) {
	cv := newConversation()
	blk := cv.c.block(":method", "PUT", ":path", "/items/123?sig=abc&x=1", ":scheme", "http", ":authority", "api.local:8443",
		"user-agent", "t/1", "x-pad", strings.Repeat("p", 300))
	cv.c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk[:10], PadLength: 7,
		Priority: http2.PriorityParam{StreamDep: 0, Weight: 20}})
	cv.c.fr.WriteContinuation(1, false, blk[10:200])
	cv.c.fr.WriteContinuation(1, true, blk[200:])
	cv.c.fr.WriteDataPadded(1, true, []byte("body!"), make([]byte, 9))
	_, start := cv.in(cv.c.take())
	cv.s.fr.WritePriority(1, http2.PriorityParam{Weight: 1})
	cv.out(append(cv.s.take(), cv.s.headers(1, false, ":status", "100")...))
	cv.out(cv.s.headers(1, false, ":status", "200", "content-type", "text/plain"))
	_, end := cv.out(cv.s.data(1, true, "ok"))
	probetest.WantNames(t, cv.Spans, "PUT /items/{id}")
	sp := cv.Spans[0]
	if sp.Start != start || sp.End != end {
		t.Errorf("times %v..%v want %v..%v", sp.Start, sp.End, start, end)
	}
	probetest.WantInt(t, sp, semconv.HTTPResponseStatusCodeKey, 200)
	probetest.WantInt(t, sp, semconv.HTTPRequestBodySizeKey, 5)
	probetest.WantInt(t, sp, semconv.HTTPResponseBodySizeKey, 2)
	probetest.WantStr(t, sp, semconv.URLQueryKey, "sig=REDACTED&x=1")
	probetest.WantStr(t, sp, semconv.ServerAddressKey, "api.local")
	probetest.WantInt(t, sp, semconv.ServerPortKey, 8443)
	probetest.WantStr(t, sp, semconv.UserAgentOriginalKey, "t/1")
	probetest.WantStr(t, sp, semconv.HTTPRouteKey, "/items/{id}")
}

func TestInterleavedStreamsAndRST(t *testing.T) {
	cv := newConversation()
	cv.in(cv.c.headers(1, false, ":method", "POST", ":path", "/a", ":scheme", "http"))
	cv.in(cv.c.headers(3, true, ":method", "GET", ":path", "/b", ":scheme", "http"))
	cv.in(cv.c.headers(5, true, ":method", "PURGE", ":path", "/c", ":scheme", "http"))
	cv.out(cv.s.headers(3, false, ":status", "404"))
	cv.in(cv.c.data(1, true, "xyz"))
	cv.out(cv.s.data(3, true, "nf"))
	cv.c.fr.WriteRSTStream(5, http2.ErrCodeCancel)
	cv.in(cv.c.take())
	cv.out(cv.s.headers(1, true, ":status", "500"))
	probetest.WantNames(t, cv.Spans, "GET /b", "HTTP /c", "POST /a")
	if cv.Spans[0].Error {
		t.Error("server 404 is not an error")
	}
	probetest.WantStr(t, cv.Spans[1], semconv.HTTPRequestMethodKey, "_OTHER")
	probetest.WantStr(t, cv.Spans[1], semconv.HTTPRequestMethodOriginalKey, "PURGE")
	probetest.WantStr(t, cv.Spans[1], semconv.ErrorTypeKey, "CANCEL")
	if !cv.Spans[1].Error || !cv.Spans[2].Error {
		t.Error("RST before response and 500 are errors")
	}
	probetest.WantStr(t, cv.Spans[2], semconv.ErrorTypeKey, "500")
}

func TestGoAwayEndsUnprocessedStreams(t *testing.T) {
	cv := newConversation()
	cv.in(cv.c.headers(1, true, ":method", "GET", ":path", "/one", ":scheme", "http"))
	cv.in(cv.c.headers(3, true, ":method", "GET", ":path", "/three", ":scheme", "http"))
	cv.s.fr.WriteGoAway(1, http2.ErrCodeNo, []byte("bye"))
	cv.out(cv.s.take())
	probetest.WantNames(t, cv.Spans, "GET /three")
	probetest.WantStr(t, cv.Spans[0], semconv.ErrorTypeKey, "goaway")
	cv.out(cv.s.headers(1, true, ":status", "204"))
	probetest.WantNames(t, cv.Spans, "GET /three", "GET /one")
}

func TestHeaderTableSize(t *testing.T) {
	// The server allows a 64 KiB table; the client switches to it (size
	// update) and indexes big values that a 4 KiB table would evict.
	cv := newConversation()
	cv.s.fr.WriteSettings(http2.Setting{ID: http2.SettingHeaderTableSize, Val: 65536})
	cv.out(cv.s.take())
	cv.c.enc.SetMaxDynamicTableSizeLimit(65536)
	cv.c.enc.SetMaxDynamicTableSize(65536)
	big := strings.Repeat("v", 3000)
	for id := uint32(1); id <= 7; id += 2 {
		cv.in(cv.c.headers(id, true, ":method", "GET", ":path", "/t", ":scheme", "http", "x-a", big, "x-b", big+"b", "x-c", big+"c"))
		cv.out(cv.s.headers(id, true, ":status", "200"))
	}
	probetest.WantNames(t, cv.Spans, "GET /t", "GET /t", "GET /t", "GET /t")
	if h := cv.d().dirs[recv].hp; h.lost != 0 || h.degraded {
		t.Errorf("hpack %+v", h)
	}
}

func (cv *conversation) d() *parser { return cv.Parser.(*parser) }

func TestGRPCTrailersOnlyAndContext(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	own := probe.ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-4444444444444444-01", "").WithRemote(false)
	cv := newConversation()
	cv.Feed(recv, cv.c.headers(1, false, ":method", "POST", ":path", "/pkg.Svc/Get", ":scheme", "http",
		":authority", "svc:50051", "content-type", "application/grpc+proto", "traceparent", tp, "tracestate", "k=v"), -1, own, probe.ParseTraceparent(tp, ""))
	cv.in(cv.c.data(1, true, "\x00\x00\x00\x00\x00"))
	cv.out(cv.s.headers(1, true, ":status", "200", "content-type", "application/grpc", "grpc-status", "14", "grpc-message", "down%20for%zzmaint"))
	probetest.WantNames(t, cv.Spans, "pkg.Svc/Get")
	sp := cv.Spans[0]
	probetest.WantStr(t, sp, semconv.RPCResponseStatusCodeKey, "UNAVAILABLE")
	probetest.WantStr(t, sp, semconv.ServerAddressKey, "svc")
	probetest.WantInt(t, sp, semconv.ServerPortKey, 50051)
	if !sp.Error || sp.StatusMessage != "down for%zzmaint" {
		t.Errorf("error %v %q", sp.Error, sp.StatusMessage)
	}
	if !sp.SpanContext.Equal(StreamSpan(own, 1)) || sp.SpanContext.SpanID().String() != "4444444444444445" || sp.Parent.SpanID().String() != "00f067aa0ba902b7" || sp.Parent.TraceState().Get("k") != "v" {
		t.Errorf("ctx %v parent %v", sp.SpanContext, sp.Parent)
	}
}

func TestGRPCHTTPStatusFallback(t *testing.T) {
	d := newDriver(serverConn)
	c, s := newPeer(), newPeer()
	d.Send(send, clientPreface)
	d.Feed(send, c.headers(1, true, ":method", "POST", ":path", "/a.B/C", "content-type", "application/grpc"), -1, trace.SpanContext{}, trace.SpanContext{})
	d.Feed(recv, s.headers(1, true, ":status", "503", "content-type", "text/html"), -1, trace.SpanContext{}, trace.SpanContext{})
	probetest.WantNames(t, d.Spans, "a.B/C")
	probetest.WantStr(t, d.Spans[0], semconv.RPCResponseStatusCodeKey, "UNAVAILABLE")
	if d.Spans[0].Kind != trace.SpanKindClient || !d.Spans[0].Error {
		t.Errorf("%+v", d.Spans[0])
	}
}

func TestServerPushDecodedNotReported(t *testing.T) {
	cv := newConversation()
	cv.in(cv.c.headers(1, true, ":method", "GET", ":path", "/", ":scheme", "http"))
	cv.s.fr.WritePushPromise(http2.PushPromiseParam{StreamID: 1, PromiseID: 2, EndHeaders: true,
		BlockFragment: cv.s.block(":method", "GET", ":path", "/style.css", ":scheme", "http", "x-idx", "pushed")})
	cv.out(cv.s.take())
	cv.out(cv.s.headers(2, true, ":status", "200", "x-idx", "pushed")) // uses the table entry PUSH_PROMISE added
	cv.out(cv.s.headers(1, true, ":status", "200", "x-idx", "pushed"))
	probetest.WantNames(t, cv.Spans, "GET /")
	if h := cv.d().dirs[send].hp; h.lost != 0 {
		t.Errorf("push promise block not decoded: %+v", h)
	}
}

func TestUnansweredOnCloseAndStreamCap(t *testing.T) {
	cv := newConversation()
	for id := uint32(1); id < 2*maxStreams+20; id += 2 {
		cv.in(cv.c.headers(id, true, ":method", "GET", ":path", "/x", ":scheme", "http"))
	}
	if n := len(cv.d().streams); n > maxStreams {
		t.Fatalf("%d streams kept", n)
	}
	evicted := len(cv.Spans)
	at := cv.Close()
	if len(cv.Spans) != maxStreams+10 || evicted != 10 {
		t.Fatalf("%d spans, %d evicted", len(cv.Spans), evicted)
	}
	last := cv.Spans[len(cv.Spans)-1]
	if last.End != at || !last.Error {
		t.Errorf("%+v", last)
	}
	probetest.WantStr(t, last, semconv.ErrorTypeKey, errNotObserved)
	if cv.Parser.Feed(probe.Chunk{Dir: recv, Data: []byte("x"), Len: 1}) != nil || cv.Parser.Close(at) != nil {
		t.Error("feed/close after close")
	}
}

func TestServerSettingsBeforePreface(t *testing.T) {
	// A server may write its SETTINGS before reading the preface; the
	// connection is still whole once the preface shows up.
	d := newDriver(serverConn)
	c, s := newPeer(), newPeer()
	s.fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 100})
	d.Feed(send, s.take(), -1, trace.SpanContext{}, trace.SpanContext{})
	c.fr.WriteSettings()
	d.Feed(recv, append([]byte(clientPreface), c.take()...), -1, trace.SpanContext{}, trace.SpanContext{})
	d.Feed(recv, c.headers(1, true, ":method", "GET", ":path", "/", ":scheme", "http"), -1, trace.SpanContext{}, trace.SpanContext{})
	d.Feed(send, s.headers(1, true, ":status", "200"), -1, trace.SpanContext{}, trace.SpanContext{})
	probetest.WantNames(t, d.Spans, "GET /")
	p := d.Parser.(*parser)
	for k := range p.dirs {
		if p.dirs[k].hp.degraded {
			t.Errorf("dir %d degraded", k)
		}
	}
}

func TestGRPCHelpers(t *testing.T) {
	for in, want := range map[string]time.Duration{"1S": time.Second, "100m": 100 * time.Millisecond, "99999u": 99999 * time.Microsecond, "2H": 2 * time.Hour} {
		if got, ok := parseGRPCTimeout(in); !ok || got != want {
			t.Errorf("%s: %v %v", in, got, ok)
		}
	}
	for _, bad := range []string{"", "S", "123456789S", "1x", "-1S"} {
		if _, ok := parseGRPCTimeout(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
	for in, want := range map[string]string{"0": "OK", "16": "UNAUTHENTICATED", "17": "17", "x": "UNKNOWN", "99999999999": "UNKNOWN"} {
		if got := grpcCodeName(in); got != want {
			t.Errorf("%s: %s", in, got)
		}
	}
	if got := decodeGRPCMessage("a%20b%C3%BC%"); got != "a bü%" {
		t.Errorf("%q", got)
	}
	if !grpcPath("/a.B/Call") || grpcPath("/api/users") || grpcPath("/v1.2/users") || grpcPath("/a.B/C/d") {
		t.Error("grpcPath")
	}
}

// One write opening two streams carries one kernel span id: each stream's
// CLIENT span gets the id the kernel injected for it (base XOR stream id).
func TestStreamSpansOfOneWrite(t *testing.T) {
	base := probe.ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01", "").WithRemote(false)
	parent := probe.ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-2222222222222222-01", "").WithRemote(false)
	d := newDriver(serverConn)
	c, s := newPeer(), newPeer()
	d.Send(send, clientPreface)
	req := func(id uint32, path string) []byte {
		return c.headers(id, true, ":method", "GET", ":path", path, ":scheme", "http", ":authority", "x")
	}
	d.Feed(send, append(req(1, "/a"), req(3, "/b")...), -1, base, parent)
	d.Feed(recv, append(s.headers(1, true, ":status", "200"), s.headers(3, true, ":status", "200")...), -1,
		trace.SpanContext{}, trace.SpanContext{})
	want := map[string]string{"GET /a": "1111111111111110", "GET /b": "1111111111111112"}
	if len(d.Spans) != 2 {
		t.Fatalf("%d spans", len(d.Spans))
	}
	for _, sp := range d.Spans {
		if sp.SpanContext.SpanID().String() != want[sp.Name] || sp.SpanContext.TraceID() != base.TraceID() || !sp.Parent.Equal(parent) {
			t.Errorf("%s: %s parent %s", sp.Name, sp.SpanContext.SpanID(), sp.Parent.SpanID())
		}
	}
}
