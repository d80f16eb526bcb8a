package http

import (
	"strings"
	"testing"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"github.com/tracer-agent/tracer-agent/probes/probe/probetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

const (
	recv = probe.Recv
	send = probe.Send
)

func TestDetect(t *testing.T) {
	pr := New(Options{})
	if pr.Name() != "http" {
		t.Fatal(pr.Name())
	}
	for in, want := range map[string]bool{
		"GET / HTTP/1.1\r\n": true, "POST /x": true, "OPTIONS * HTTP/1.1": true, "TRACE ": true, "PATCH /": true,
		"CONNECT h:443 HTTP/1.1": true, "DELETE /a": true, "PUT /a": true, "HEAD /": true,
		"HTTP/1.1 200 OK\r\n": false, "GET": false, "GETX / HTTP/1.1": false, "get / HTTP/1.1": false,
		"": false, "\x16\x03\x01": false, "PRI * HTTP/2.0": false,
	} {
		if got := pr.Detect(&probe.Chunk{Data: []byte(in), Len: len(in)}); got != want {
			t.Errorf("Detect(%q) = %v want %v", in, got, want)
		}
	}
	if pr.Detect(nil) {
		t.Error("Detect(nil)")
	}
}

func TestPipelining(t *testing.T) {
	d := newDriver(serverConn)
	_, start := d.Send(recv, "GET /a/1 HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcDELETE /c/2 HTTP/1.1\r\nHost: x\r\n\r\n")
	d.Send(send, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 404 Not Found\r\nContent-")
	_, end := d.Send(send, "Length: 0\r\n\r\nHTTP/1.1 500 Oops\r\nContent-Length: 1\r\n\r\n!")
	probetest.WantNames(t, d.Spans, "GET /a/{id}", "POST /b", "DELETE /c/{id}")
	for i, code := range []int64{200, 404, 500} {
		probetest.WantInt(t, d.Spans[i], semconv.HTTPResponseStatusCodeKey, code)
		if d.Spans[i].Start != start {
			t.Errorf("span %d start", i)
		}
	}
	probetest.WantInt(t, d.Spans[1], semconv.HTTPRequestBodySizeKey, 3)
	if d.Spans[1].Error || !d.Spans[2].Error {
		t.Error("server: only 5xx is an error")
	}
	if d.Spans[2].End != end {
		t.Error("end of last span")
	}
	if d.Close(); len(d.Spans) != 3 {
		t.Error("close emitted extra spans")
	}
}

func TestChunkedTrailersAndExtensions(t *testing.T) {
	for name, split := range map[string]probetest.Splitter{"whole": probetest.Whole, "bytes": probetest.Bytewise, "rnd": probetest.Random(7)} {
		t.Run(name, func(t *testing.T) {
			d := newDriver(serverConn)
			d.Send(recv, "GET /c HTTP/1.1\r\nHost: h\r\n\r\n")
			resp := "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nTrailer: X-T\r\n\r\n" +
				"5;name=\"v\";x\r\nhello\r\nA\r\n0123456789\r\n0;last\r\nX-T: 1\r\nX-U: 2\r\n\r\n" +
				"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
			d.Send(recv, "GET /d HTTP/1.1\r\n\r\n")
			for _, piece := range split([]byte(resp)) {
				d.Send(send, string(piece))
			}
			probetest.WantNames(t, d.Spans, "GET /c", "GET /d")
			probetest.WantInt(t, d.Spans[0], semconv.HTTPResponseBodySizeKey, 15)
		})
	}
}

func TestChunkedRequest(t *testing.T) {
	d := newDriver(serverConn)
	d.Send(recv, "PUT /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
	d.Send(recv, "0\r\n\r\n")
	d.Send(send, "HTTP/1.1 204 No Content\r\n\r\n")
	probetest.WantNames(t, d.Spans, "PUT /up")
	probetest.WantInt(t, d.Spans[0], semconv.HTTPRequestBodySizeKey, 3)
	probetest.WantAbsent(t, d.Spans[0], semconv.HTTPResponseBodySizeKey)
}

func TestContinue(t *testing.T) {
	d := newDriver(serverConn)
	d.Send(recv, "POST /u HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
	d.Send(send, "HTTP/1.1 100 Continue\r\n\r\n")
	if len(d.Spans) != 0 {
		t.Fatal("100 Continue made a span")
	}
	d.Send(recv, "data")
	d.Send(send, "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	probetest.WantNames(t, d.Spans, "POST /u")
	probetest.WantInt(t, d.Spans[0], semconv.HTTPResponseStatusCodeKey, 200)
	probetest.WantInt(t, d.Spans[0], semconv.HTTPRequestBodySizeKey, 4)
}

func TestHeadAnd204And304HaveNoBody(t *testing.T) {
	d := newDriver(serverConn)
	d.Send(recv, "HEAD /big HTTP/1.1\r\n\r\nGET /n HTTP/1.1\r\n\r\nGET /m HTTP/1.1\r\n\r\nGET /last HTTP/1.1\r\n\r\n")
	d.Send(send, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
	d.Send(send, "HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n")
	d.Send(send, "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n")
	d.Send(send, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx")
	probetest.WantNames(t, d.Spans, "HEAD /big", "GET /n", "GET /m", "GET /last")
	probetest.WantAbsent(t, d.Spans[0], semconv.HTTPResponseBodySizeKey)
	probetest.WantInt(t, d.Spans[3], semconv.HTTPResponseBodySizeKey, 1)
}

func TestHTTP10UntilClose(t *testing.T) {
	d := newDriver(serverConn)
	d.Send(recv, "GET /old HTTP/1.0\r\n\r\n")
	d.Send(send, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nsome")
	d.Feed(send, []byte(strings.Repeat("b", 5000)), 100, trace.SpanContext{}, trace.SpanContext{})
	if len(d.Spans) != 0 {
		t.Fatal("until-close response ended early")
	}
	at := d.Close()
	probetest.WantNames(t, d.Spans, "GET /old")
	if d.Spans[0].End != at {
		t.Errorf("End %v want close %v", d.Spans[0].End, at)
	}
	probetest.WantInt(t, d.Spans[0], semconv.HTTPResponseBodySizeKey, 5004)
	probetest.WantStr(t, d.Spans[0], semconv.NetworkProtocolVersionKey, "1.0")
}

func TestUntilCloseEndsAtNextResponse(t *testing.T) {
	d := newDriver(serverConn)
	d.Send(recv, "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
	d.Send(send, "HTTP/1.1 200 OK\r\n\r\nbody")
	next, _ := d.Send(send, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	probetest.WantNames(t, d.Spans, "GET /a", "GET /b")
	if d.Spans[0].End != next {
		t.Error("until-close response should end at the next response's start")
	}
}

func TestResponseLargerThanCapture(t *testing.T) {
	d := newDriver(serverConn)
	d.Send(recv, "GET /big HTTP/1.1\r\n\r\nGET /small HTTP/1.1\r\n\r\n")
	head := "HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n"
	first := head + strings.Repeat("x", 100000-len(head))
	d.Feed(send, []byte(first), 4096, trace.SpanContext{}, trace.SpanContext{})
	if len(d.Spans) != 0 {
		t.Fatalf("span before body done: %v", probetest.Names(d.Spans))
	}
	rest := 200000 - (100000 - len(head))
	_, end := d.Feed(send, []byte(strings.Repeat("y", rest)), 10, trace.SpanContext{}, trace.SpanContext{})
	d.Send(send, "HTTP/1.1 404 NF\r\nContent-Length: 0\r\n\r\n")
	probetest.WantNames(t, d.Spans, "GET /big", "GET /small")
	if d.Spans[0].End != end {
		t.Error("big response should end with the chunk completing it")
	}
	probetest.WantInt(t, d.Spans[0], semconv.HTTPResponseBodySizeKey, 200000)
	probetest.WantInt(t, d.Spans[1], semconv.HTTPResponseStatusCodeKey, 404)
}

func TestGapPastBodyLosesNextMessage(t *testing.T) {
	d := newDriver(serverConn)
	d.Send(recv, "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\n")
	// One syscall: response a (body 10) + response b, captured up to a's body.
	both := "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
	d.Feed(send, []byte(both), 42, trace.SpanContext{}, trace.SpanContext{})
	probetest.WantNames(t, d.Spans, "GET /a")
	probetest.WantInt(t, d.Spans[0], semconv.HTTPResponseBodySizeKey, 10)
}

func TestChunkedLargerThanCapture(t *testing.T) {
	d := newDriver(serverConn)
	d.Send(recv, "GET /big HTTP/1.1\r\n\r\nGET /next HTTP/1.1\r\n\r\n")
	// One write holding head + a 0x186a0-byte chunk, captured to 4096.
	msg := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n186a0\r\n" + strings.Repeat("z", 100000)
	d.Feed(send, []byte(msg), 4096, trace.SpanContext{}, trace.SpanContext{})
	_, end := d.Send(send, "\r\n0\r\n\r\n")
	probetest.WantNames(t, d.Spans, "GET /big")
	if d.Spans[0].End != end {
		t.Error("end")
	}
	probetest.WantInt(t, d.Spans[0], semconv.HTTPResponseBodySizeKey, 100000)
	// Now a gap that overruns the chunk: framing is lost, the next
	// response resyncs and the lost one ends where its bytes stopped.
	_, lostEnd := d.Feed(send, []byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n"+strings.Repeat("q", 500)), 80, trace.SpanContext{}, trace.SpanContext{})
	d.Send(recv, "GET /third HTTP/1.1\r\n\r\n")
	d.Send(send, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	probetest.WantNames(t, d.Spans, "GET /big", "GET /next", "GET /third")
	if d.Spans[1].End != lostEnd {
		t.Error("lost chunked response should end at its last chunk")
	}
	probetest.WantAbsent(t, d.Spans[1], semconv.HTTPResponseBodySizeKey)
}

func TestHeaderSplitMidLine(t *testing.T) {
	d := newDriver(serverConn)
	_, start := d.Send(recv, "GET /a?q=1 HT")
	d.Send(recv, "TP/1.1\r\nHo")
	d.Send(recv, "st: example.com:9090\r\nUser-Ag")
	d.Send(recv, "ent: tester\r")
	d.Send(recv, "\n\r")
	d.Send(recv, "\n")
	d.Send(send, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	probetest.WantNames(t, d.Spans, "GET /a")
	sp := d.Spans[0]
	probetest.WantStr(t, sp, semconv.ServerAddressKey, "example.com")
	probetest.WantInt(t, sp, semconv.ServerPortKey, 9090)
	probetest.WantStr(t, sp, semconv.UserAgentOriginalKey, "tester")
	probetest.WantStr(t, sp, semconv.URLQueryKey, "q=1")
	if sp.Start != start || sp.TID != 1 {
		t.Error("start/tid should come from the first chunk")
	}
}

func TestTraceparent(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	t.Run("invalid", func(t *testing.T) {
		d := newDriver(serverConn)
		d.Send(recv, "GET / HTTP/1.1\r\ntraceparent: 00-zz-00f067aa0ba902b7-01\r\n\r\n")
		d.Send(send, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		if d.Spans[0].Parent.IsValid() {
			t.Error("invalid traceparent must give a root span")
		}
	})
	t.Run("uppercase", func(t *testing.T) {
		d := newDriver(serverConn)
		d.Send(recv, "GET / HTTP/1.1\r\nTRACEPARENT: "+tp+"\r\nTraceState: a=b\r\nHOST: svc\r\nCONTENT-LENGTH: 2\r\n\r\nhi")
		d.Send(send, "HTTP/1.1 200 OK\r\nCONTENT-LENGTH: 0\r\n\r\n")
		sp := d.Spans[0]
		if sp.Parent.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || !sp.Parent.IsRemote() || sp.Parent.TraceState().Get("a") != "b" {
			t.Errorf("parent %v", sp.Parent)
		}
		probetest.WantStr(t, sp, semconv.ServerAddressKey, "svc")
		probetest.WantInt(t, sp, semconv.ServerPortKey, 80)
		probetest.WantInt(t, sp, semconv.HTTPRequestBodySizeKey, 2)
	})
	server := probe.ParseTraceparent("00-11111111111111111111111111111111-2222222222222222-01", "").WithRemote(false)
	t.Run("client carries traceparent", func(t *testing.T) {
		// The process propagated its own context: that id is the client span's.
		d := newDriver(serverConn)
		own := probe.ParseTraceparent("00-11111111111111111111111111111111-3333333333333333-01", "").WithRemote(false)
		d.Feed(send, []byte("GET /x HTTP/1.1\r\nHost: up:81\r\ntraceparent: "+tp+"\r\n\r\n"), -1, own, server)
		d.Send(recv, "HTTP/1.1 429 Slow down\r\nContent-Length: 0\r\n\r\n")
		sp := d.Spans[0]
		if sp.Kind != trace.SpanKindClient || sp.SpanContext.SpanID().String() != "00f067aa0ba902b7" || sp.SpanContext.IsRemote() {
			t.Errorf("span context %v", sp.SpanContext)
		}
		if sp.Parent.IsValid() {
			t.Errorf("parent %v: the header's trace differs from the server span's", sp.Parent)
		}
		if !sp.Error {
			t.Error("client 4xx is an error")
		}
		probetest.WantStr(t, sp, semconv.ErrorTypeKey, "429")
		probetest.WantStr(t, sp, semconv.URLFullKey, "http://up:81/x")
		probetest.WantStr(t, sp, semconv.URLTemplateKey, "/x")
		probetest.WantStr(t, sp, semconv.ServerAddressKey, "up")
		probetest.WantInt(t, sp, semconv.ServerPortKey, 81)
	})
	t.Run("client with kernel context", func(t *testing.T) {
		own := probe.ParseTraceparent("00-11111111111111111111111111111111-3333333333333333-01", "").WithRemote(false)
		d := newDriver(serverConn)
		d.Feed(send, []byte("GET /x HTTP/1.1\r\n\r\n"), -1, own, server)
		d.Send(recv, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		sp := d.Spans[0]
		if !sp.SpanContext.Equal(own) || !sp.Parent.Equal(server) {
			t.Errorf("ctx %v parent %v", sp.SpanContext, sp.Parent)
		}
		probetest.WantStr(t, sp, semconv.URLFullKey, "http://10.0.0.2:51000/x")
		probetest.WantStr(t, sp, semconv.ServerAddressKey, "10.0.0.2")
	})
	t.Run("server with kernel context", func(t *testing.T) {
		own := probe.ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-4444444444444444-01", "").WithRemote(false)
		caller := probe.ParseTraceparent(tp, "")
		d := newDriver(serverConn)
		d.Feed(recv, []byte("GET / HTTP/1.1\r\ntraceparent: "+tp+"\r\ntracestate: k=v\r\n\r\n"), -1, own, caller)
		d.Send(send, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		sp := d.Spans[0]
		if !sp.SpanContext.Equal(own) || sp.Parent.SpanID() != caller.SpanID() || sp.Parent.TraceState().Get("k") != "v" {
			t.Errorf("ctx %v parent %v", sp.SpanContext, sp.Parent)
		}
	})
}

func TestUnansweredOnClose(t *testing.T) {
	d := newDriver(serverConn)
	d.Send(recv, "GET /a HTTP/1.1\r\n\r\n")
	at := d.Close()
	probetest.WantNames(t, d.Spans, "GET /a")
	sp := d.Spans[0]
	if !sp.Error || sp.End != at {
		t.Errorf("unanswered span %+v", sp)
	}
	probetest.WantStr(t, sp, semconv.ErrorTypeKey, errNotObserved)
	probetest.WantAbsent(t, sp, semconv.HTTPResponseStatusCodeKey)
	if d.Parser.Feed(probe.Chunk{Dir: recv, Data: []byte("GET / HTTP/1.1\r\n\r\n"), Len: 18}) != nil {
		t.Error("feed after close")
	}
}

func TestTruncatedHeadersResync(t *testing.T) {
	d := newDriver(serverConn)
	req := "GET /first/12345 HTTP/1.1\r\nHost: h\r\nCookie: " + strings.Repeat("c", 3000) + "\r\n\r\n"
	d.Feed(recv, []byte(req), 60, trace.SpanContext{}, trace.SpanContext{})
	d.Send(recv, "x-garbage-continuation\r\n\r\n") // unseen-tail leftovers: ignored
	d.Send(send, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	d.Send(recv, "GET /second HTTP/1.1\r\n\r\n")
	d.Send(send, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	probetest.WantNames(t, d.Spans, "GET /first/{id}", "GET /second")
	probetest.WantStr(t, d.Spans[0], semconv.ServerAddressKey, "h")
}

func TestHeaderCap(t *testing.T) {
	d := newDriver(serverConn)
	d.Send(recv, "GET /huge HTTP/1.1\r\nHost: h\r\n")
	for i := 0; i < 30; i++ {
		d.Send(recv, "X-Pad: "+strings.Repeat("p", 1000)+"\r\n")
	}
	d.Send(recv, "\r\n")
	p := d.Parser.(*parser)
	if c := cap(p.streams[recv].buf); c > 2*maxHead {
		t.Errorf("head buffer grew to %d", c)
	}
	d.Send(send, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	probetest.WantNames(t, d.Spans, "GET /huge")
}

func TestUnknownMethod(t *testing.T) {
	d := newDriver(serverConn)
	d.Send(recv, "GET /a HTTP/1.1\r\n\r\nPURGE /cache/99 HTTP/1.1\r\n\r\n")
	d.Send(send, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	probetest.WantNames(t, d.Spans, "GET /a", "HTTP /cache/{id}")
	probetest.WantStr(t, d.Spans[1], semconv.HTTPRequestMethodKey, "_OTHER")
	probetest.WantStr(t, d.Spans[1], semconv.HTTPRequestMethodOriginalKey, "PURGE")
}

func TestUpgradeStopsParsing(t *testing.T) {
	d := newDriver(serverConn)
	d.Send(recv, "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	d.Send(send, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello")
	d.Send(recv, "GET /not-http HTTP/1.1\r\n\r\n")
	d.Close()
	probetest.WantNames(t, d.Spans, "GET /ws")
	probetest.WantInt(t, d.Spans[0], semconv.HTTPResponseStatusCodeKey, 101)
}

func TestConnectTunnel(t *testing.T) {
	d := newDriver(serverConn)
	d.Send(send, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
	d.Send(recv, "HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x01")
	d.Close()
	probetest.WantNames(t, d.Spans, "CONNECT")
	probetest.WantStr(t, d.Spans[0], semconv.ServerAddressKey, "example.com")
	probetest.WantInt(t, d.Spans[0], semconv.ServerPortKey, 443)
}

func TestAbsoluteFormAndRedaction(t *testing.T) {
	d := newDriver(serverConn)
	d.Send(send, "GET http://proxy.example/s/3?sig=secret&a=1 HTTP/1.1\r\n\r\n")
	d.Send(recv, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	sp := d.Spans[0]
	probetest.WantStr(t, sp, semconv.URLFullKey, "http://proxy.example/s/3?sig=REDACTED&a=1")
	probetest.WantStr(t, sp, semconv.URLPathKey, "/s/3")
	probetest.WantStr(t, sp, semconv.URLQueryKey, "sig=REDACTED&a=1")
	probetest.WantStr(t, sp, semconv.ServerAddressKey, "proxy.example")
	probetest.WantInt(t, sp, semconv.ServerPortKey, 80)
}

func TestGarbageThenResync(t *testing.T) {
	d := newDriver(serverConn)
	d.Send(recv, "\x00\x01binary junk\r\n\r\n")
	d.Send(send, "more junk")
	d.Send(recv, "GET /ok HTTP/1.1\r\n\r\n")
	d.Send(send, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	probetest.WantNames(t, d.Spans, "GET /ok")
}

func TestQueueBounded(t *testing.T) {
	d := newDriver(serverConn)
	for i := 0; i < maxPending+10; i++ {
		d.Send(recv, "GET /q HTTP/1.1\r\n\r\n")
	}
	if got := d.Parser.(*parser).queues[recv].len(); got != maxPending {
		t.Errorf("queue %d", got)
	}
	if len(d.Spans) != 10 {
		t.Errorf("evicted %d, want 10", len(d.Spans))
	}
	probetest.CheckTimes(t, d.Spans)
}

func TestKernelContextOnLaterHeaderChunk(t *testing.T) {
	own := probe.ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-4444444444444444-01", "").WithRemote(false)
	caller := probe.ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "")
	d := newDriver(serverConn)
	d.Send(recv, "GET /split HTTP/1.1\r\n")
	d.Feed(recv, []byte("traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n"), -1, own, caller)
	d.Send(send, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	sp := d.Spans[0]
	if !sp.SpanContext.Equal(own) || sp.Parent.SpanID() != caller.SpanID() {
		t.Errorf("ctx %v parent %v", sp.SpanContext, sp.Parent)
	}
}

// TestKeepAliveHeadersChange: a stream reuses the previous request's Host
// and User-Agent strings when they repeat; a change must still be seen.
func TestKeepAliveHeadersChange(t *testing.T) {
	d := newDriver(serverConn)
	for _, h := range []struct{ host, ua string }{{"a:1", "x"}, {"a:1", "x"}, {"b:2", "y"}, {"b:2", ""}} {
		req := "GET / HTTP/1.1\r\nHost: " + h.host + "\r\n"
		if h.ua != "" {
			req += "User-Agent: " + h.ua + "\r\n"
		}
		d.Send(recv, req+"\r\n")
		d.Send(send, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	}
	if len(d.Spans) != 4 {
		t.Fatalf("%d spans", len(d.Spans))
	}
	for i, want := range []struct{ host, ua string }{{"a", "x"}, {"a", "x"}, {"b", "y"}, {"b", ""}} {
		probetest.WantStr(t, d.Spans[i], semconv.ServerAddressKey, want.host)
		if want.ua == "" {
			probetest.WantAbsent(t, d.Spans[i], semconv.UserAgentOriginalKey)
		} else {
			probetest.WantStr(t, d.Spans[i], semconv.UserAgentOriginalKey, want.ua)
		}
	}
}
