package http2

import (
	"encoding/binary"
	"math/rand"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

var (
	t0         = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	serverConn = probe.Conn{
		PID: 42, FD: 7, ID: 1,
		Local:  netip.MustParseAddrPort("10.0.0.1:8080"),
		Remote: netip.MustParseAddrPort("10.0.0.2:51000"),
	}
)

// record is one proxy read of a capture: '>' client→server, '<' back.
type record struct {
	dir  byte
	data []byte
}

func loadCapture(t testing.TB, name string) []record {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".bin"))
	if err != nil {
		t.Fatal(err)
	}
	var recs []record
	for len(b) >= 5 {
		n := int(binary.BigEndian.Uint32(b[1:5]))
		if 5+n > len(b) {
			t.Fatalf("%s: corrupt capture", name)
		}
		recs = append(recs, record{b[0], b[5 : 5+n]})
		b = b[5+n:]
	}
	return recs
}

// driver feeds chunks with increasing timestamps and collects spans.
type driver struct {
	p     probe.Parser
	now   time.Time
	spans []probe.Span
	tid   uint32
}

func newDriver(conn probe.Conn) *driver {
	return &driver{p: New(Options{}).NewParser(conn), now: t0}
}

// feed sends one syscall's bytes; captured < len(b) simulates the kernel
// capturing only a prefix. It returns the chunk's start and end times.
func (d *driver) feedChunk(dir probe.Direction, b []byte, captured int, ctx trace.SpanContext) (time.Time, time.Time) {
	return d.feedCtx(dir, b, captured, ctx, trace.SpanContext{})
}

// feedCtx feeds a chunk carrying kernel-decided ids (ctx) and their parent.
func (d *driver) feedCtx(dir probe.Direction, b []byte, captured int, ctx, parent trace.SpanContext) (time.Time, time.Time) {
	if captured > len(b) || captured < 0 {
		captured = len(b)
	}
	// Copy into a scratch buffer and clobber it afterwards: the parser must
	// not keep references to Data.
	ring := append([]byte(nil), b[:captured]...)
	d.tid++
	c := probe.Chunk{Dir: dir, TID: d.tid, Start: d.now, End: d.now.Add(500 * time.Microsecond), Len: len(b), Data: ring, Ctx: ctx, Parent: parent}
	d.now = d.now.Add(time.Millisecond)
	d.spans = append(d.spans, d.p.Feed(c)...)
	for i := range ring {
		ring[i] = 'Z'
	}
	return c.Start, c.End
}

func (d *driver) send(dir probe.Direction, s string) (time.Time, time.Time) {
	return d.feedChunk(dir, []byte(s), -1, trace.SpanContext{})
}

func (d *driver) close() time.Time {
	at := d.now
	d.spans = append(d.spans, d.p.Close(at)...)
	return at
}

// splitter cuts one record into syscall-sized pieces.
type splitter func(b []byte) [][]byte

func whole(b []byte) [][]byte { return [][]byte{b} }

func bytewise(b []byte) [][]byte {
	out := make([][]byte, len(b))
	for i := range b {
		out[i] = b[i : i+1]
	}
	return out
}

func randomSplits(seed int64) splitter {
	r := rand.New(rand.NewSource(seed))
	return func(b []byte) [][]byte {
		var out [][]byte
		for len(b) > 0 {
			n := 1 + r.Intn(min(len(b), 40))
			out = append(out, b[:n])
			b = b[n:]
		}
		return out
	}
}

func attr(sp probe.Span, k attribute.Key) (attribute.Value, bool) {
	for _, kv := range sp.Attrs {
		if kv.Key == k {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

func wantStr(t *testing.T, sp probe.Span, k attribute.Key, want string) {
	t.Helper()
	v, ok := attr(sp, k)
	if !ok || v.Emit() != want {
		t.Errorf("%s: %s = %q (present %v), want %q", sp.Name, k, v.Emit(), ok, want)
	}
}

func wantInt(t *testing.T, sp probe.Span, k attribute.Key, want int64) {
	t.Helper()
	v, ok := attr(sp, k)
	if !ok || v.AsInt64() != want {
		t.Errorf("%s: %s = %v (present %v), want %d", sp.Name, k, v.Emit(), ok, want)
	}
}

func wantAbsent(t *testing.T, sp probe.Span, k attribute.Key) {
	t.Helper()
	if v, ok := attr(sp, k); ok {
		t.Errorf("%s: %s = %v, want absent", sp.Name, k, v.Emit())
	}
}

func checkTimes(t *testing.T, spans []probe.Span) {
	t.Helper()
	for _, sp := range spans {
		if sp.End.Before(sp.Start) {
			t.Errorf("%s: End %v before Start %v", sp.Name, sp.End, sp.Start)
		}
	}
}

const (
	recv = probe.Recv
	send = probe.Send
)

func names(spans []probe.Span) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

func wantNames(t *testing.T, spans []probe.Span, want ...string) {
	t.Helper()
	got := names(spans)
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("spans %q, want %q", got, want)
	}
}
