package conntrack

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"

	httpprobe "github.com/tracer-agent/tracer-agent/probes/http"
	"github.com/tracer-agent/tracer-agent/probes/probe"
)

// recorder collects emitted spans with a private copy of their
// attributes taken at emit time.
// recorder keeps the spans it is given, as a keeper must: with Attrs of
// their own (probe.Parser: a parser reuses them on its next call). shared
// holds the same spans as given, for checking what they hold until then.
type recorder struct {
	spans  []probe.Span
	shared []probe.Span
}

func (r *recorder) emit(s probe.Span) {
	r.shared = append(r.shared, s)
	s.CloneAttrs()
	r.spans = append(r.spans, s)
}

// checkCall fails if a span given since the last check no longer holds
// what it held when given; called right after a tracker call returns.
func (r *recorder) checkCall(t *testing.T) {
	t.Helper()
	from := len(r.spans) - len(r.shared)
	for i, s := range r.shared {
		if !reflect.DeepEqual(s.Attrs, r.spans[from+i].Attrs) {
			t.Fatalf("span %d changed before its call returned:\n%v\nwas\n%v", from+i, s.Attrs, r.spans[from+i].Attrs)
		}
	}
	r.shared = r.shared[:0]
}

func (r *recorder) attr(i int, k attribute.Key) string {
	for _, kv := range r.spans[i].Attrs {
		if kv.Key == k {
			return kv.Value.Emit()
		}
	}
	return ""
}

var t0 = time.Unix(1_790_000_000, 0)

func testConn(sock uint64) probe.Conn {
	return probe.Conn{PID: 1, ID: sock,
		Local:  netip.MustParseAddrPort("10.0.0.1:8080"),
		Remote: netip.MustParseAddrPort(fmt.Sprintf("10.0.0.%d:40000", 2+sock%200))}
}

func feed(t *Tracker, sock uint64, dir probe.Direction, s string) {
	t.Data(testConn(sock), probe.Chunk{Dir: dir, Start: t0, End: t0.Add(time.Microsecond), Len: len(s), Data: []byte(s)})
}

// A connection that closes mid-message must leave nothing behind for the
// next one, which gets its recycled parser and conn.
func TestRecycledStateDoesNotLeak(t *testing.T) {
	var r recorder
	tr := New([]probe.Probe{httpprobe.New(httpprobe.Options{})}, 16, r.emit)

	// A client request whose body never ends, on a connection then closed.
	feed(tr, 1, probe.Send, "POST /a HTTP/1.1\r\nHost: up\r\nContent-Length: 100\r\n\r\n0123456789")
	tr.Closed(1, 1, t0)
	// A connection ignored for never looking like a protocol.
	for range detectBudget {
		feed(tr, 2, probe.Recv, "garbage")
	}
	tr.Closed(1, 2, t0)
	for sock := uint64(3); sock < 6; sock++ {
		feed(tr, sock, probe.Recv, "GET /b HTTP/1.1\r\nHost: me\r\n\r\n")
		feed(tr, sock, probe.Send, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		tr.Closed(1, sock, t0)
	}

	if len(r.spans) != 4 {
		t.Fatalf("got %d spans, want 4: %+v", len(r.spans), r.spans)
	}
	if s := r.spans[0]; s.Name != "POST /a" || !s.Error {
		t.Errorf("span 0 = %q error %v, want POST /a unanswered", s.Name, s.Error)
	}
	for i := 1; i < 4; i++ {
		if s := r.spans[i]; s.Name != "GET /b" || s.Error || r.attr(i, "http.response.status_code") != "200" ||
			r.attr(i, "http.response.body.size") != "2" || r.attr(i, "server.address") != "me" {
			t.Errorf("span %d = %q %v, want GET /b answered 200 with a 2-byte body", i, s.Name, s.Attrs)
		}
	}
	if st, open := tr.Stats(); st.Ignored != 1 || open != 0 {
		t.Errorf("stats %+v, %d open; want 1 ignored, 0 open", st, open)
	}
}

// The spans of one call hold their own values until the call returns,
// the pipelined ones of one chunk included, whatever the tracker and its
// parsers did before (recycling connections, reusing buffers); the keeper
// copies them (recorder), and its copies stay as they were.
func TestEmittedSpansStayIntact(t *testing.T) {
	var r recorder
	tr := New([]probe.Probe{httpprobe.New(httpprobe.Options{})}, 4, r.emit)
	var kept [][]attribute.KeyValue
	for i := 0; i < 200; i += 2 {
		sock := uint64(i % 7)
		req := func(i int) string {
			return fmt.Sprintf("GET /u/%d?q=%d HTTP/1.1\r\nHost: h%d:81\r\nUser-Agent: ua%d\r\n\r\n", i, i, i%3, i%5)
		}
		resp := func(i int) string { return fmt.Sprintf("HTTP/1.1 %d X\r\nContent-Length: 0\r\n\r\n", 200+i%3) }
		feed(tr, sock, probe.Send, req(i)+req(i+1)) // pipelined: two spans from one call
		r.checkCall(t)
		feed(tr, sock, probe.Recv, resp(i)+resp(i+1))
		r.checkCall(t)
		if i%3 == 0 {
			tr.Closed(1, sock, t0)
			r.checkCall(t)
		}
		for len(kept) < len(r.spans) {
			kept = append(kept, slices.Clone(r.spans[len(kept)].Attrs))
		}
	}
	tr.FlushAll(t0)
	r.checkCall(t)
	if len(r.spans) != 200 {
		t.Fatalf("got %d spans, want 200", len(r.spans))
	}
	for i, s := range r.spans {
		if !reflect.DeepEqual(s.Attrs, kept[i]) {
			t.Fatalf("kept span %d changed:\n%v\nwas\n%v", i, s.Attrs, kept[i])
		}
		if want := fmt.Sprintf("http://h%d:81/u/%d?q=%d", i%3, i, i); r.attr(i, "url.full") != want {
			t.Errorf("span %d url.full %q, want %q", i, r.attr(i, "url.full"), want)
		}
	}
}
