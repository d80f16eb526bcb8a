package probetest

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// recorder is a Parser that keeps (copies of) what it is fed and can be
// told to return a span per chunk.
type recorder struct {
	chunks []probe.Chunk
	data   [][]byte
	alias  [][]byte // Data as given, to see the driver overwrite it
	span   func(c probe.Chunk) []probe.Span
	closed []time.Time
}

func (r *recorder) Feed(c probe.Chunk) []probe.Span {
	r.chunks = append(r.chunks, c)
	r.data = append(r.data, append([]byte(nil), c.Data...))
	r.alias = append(r.alias, c.Data)
	if r.span != nil {
		return r.span(c)
	}
	return nil
}

func (r *recorder) Close(at time.Time) []probe.Span {
	r.closed = append(r.closed, at)
	return []probe.Span{{Name: "close", Start: at, End: at}}
}

func TestDriver(t *testing.T) {
	r := &recorder{span: func(c probe.Chunk) []probe.Span { return []probe.Span{{Name: "s", Start: c.Start, End: c.End}} }}
	d := NewDriver(r)
	s1, e1 := d.Feed(probe.Send, []byte("hello"), 2, trace.SpanContext{}, trace.SpanContext{})
	s2, e2 := d.Send(probe.Recv, "ok")
	if s1 != T0 || e1 != T0.Add(500*time.Microsecond) || s2 != T0.Add(time.Millisecond) || e2.Sub(s2) != 500*time.Microsecond {
		t.Fatalf("times %v %v %v %v", s1, e1, s2, e2)
	}
	c := r.chunks[0]
	if c.Dir != probe.Send || c.TID != 1 || c.Len != 5 || string(r.data[0]) != "he" || !c.Truncated() {
		t.Fatalf("first chunk %+v data %q", c, r.data[0])
	}
	if r.chunks[1].TID != 2 || string(r.data[1]) != "ok" || d.Last.TID != 2 || d.TID != 2 {
		t.Fatalf("second chunk %+v", r.chunks[1])
	}
	if string(r.alias[0]) != "ZZ" {
		t.Fatalf("data not overwritten after Feed: %q", r.alias[0])
	}
	if at := d.Close(); at != T0.Add(2*time.Millisecond) || len(d.Spans) != 3 || d.Spans[2].Name != "close" {
		t.Fatalf("close at %v spans %v", at, Names(d.Spans))
	}
}

func TestDriverSharedClock(t *testing.T) {
	clock := &Clock{Now: T0, Latency: time.Millisecond, Step: 2 * time.Millisecond}
	a := &Driver{Clock: clock, Parser: &recorder{}, TID: 7, FixedTID: true}
	b := &Driver{Clock: clock, Parser: &recorder{}, TID: 7, FixedTID: true}
	a.Send(probe.Send, "x")
	s, e := b.Send(probe.Send, "y")
	if s != T0.Add(2*time.Millisecond) || e != T0.Add(3*time.Millisecond) || b.Last.TID != 7 || a.Last.TID != 7 {
		t.Fatalf("%v %v tids %d %d", s, e, a.Last.TID, b.Last.TID)
	}
	if got := b.Parser.(*recorder).alias[0][0]; got != 0 {
		t.Fatalf("zero Fill left %q", got)
	}
}

func TestSplitters(t *testing.T) {
	in := bytes.Repeat([]byte("0123456789"), 30)
	for name, split := range map[string]Splitter{"whole": Whole, "bytes": Bytewise, "rnd": Random(1), "rnd97": RandomUpTo(2, 97)} {
		pieces := split(in)
		if !bytes.Equal(bytes.Join(pieces, nil), in) {
			t.Errorf("%s: pieces do not add up", name)
		}
		for _, p := range pieces {
			if len(p) == 0 || name == "rnd" && len(p) > 40 || name == "rnd97" && len(p) > 97 {
				t.Errorf("%s: piece of %d", name, len(p))
			}
		}
	}
	if len(Bytewise(in)) != len(in) || len(Whole(in)) != 1 {
		t.Error("piece counts")
	}
	if fmt.Sprint(Random(5)(in)) != fmt.Sprint(Random(5)(in)) {
		t.Error("Random is not reproducible")
	}
}

func TestDecodeCapture(t *testing.T) {
	good := []byte(">\x00\x00\x00\x03abc<\x00\x00\x00\x00")
	recs, ok := DecodeCapture(good)
	if !ok || len(recs) != 2 || recs[0].Dir != '>' || string(recs[0].Data) != "abc" || recs[1].Dir != '<' || len(recs[1].Data) != 0 {
		t.Fatalf("%v %+v", ok, recs)
	}
	for name, b := range map[string][]byte{
		"short data": append(good[:9:9], ">\x00\x00\x00\x09ab"...),
		"bad dir":    append(good[:9:9], "?\x00\x00\x00\x00"...),
		"trailing":   append(good[:9:9], ">\x00"...),
	} {
		recs, ok := DecodeCapture(b)
		if ok || len(recs) != 1 || string(recs[0].Data) != "abc" {
			t.Errorf("%s: ok %v, %d records", name, ok, len(recs))
		}
	}
}

func TestProgram(t *testing.T) {
	big := bytes.Repeat([]byte{'x'}, 300)
	prog := Program([]Record{{'>', []byte("ab")}, {'<', big}, {'>', nil}}, '<')
	want := append([]byte{0, 2, 'a', 'b', 1, 255}, big[:255]...)
	want = append(append(want, 1, 45), big[255:]...)
	if !bytes.Equal(prog, want) {
		t.Fatalf("program % x", prog)
	}
}

// fatalTB turns Fatalf into a recoverable panic.
type fatalTB struct{ testing.TB }

type fatal string

func (fatalTB) Helper()                           {}
func (fatalTB) Fatal(args ...any)                 { panic(fatal(fmt.Sprint(args...))) }
func (fatalTB) Fatalf(format string, args ...any) { panic(fatal(fmt.Sprintf(format, args...))) }

func runFuzz(fz Fuzz, prog []byte) (msg string) {
	defer func() {
		if v := recover(); v != nil {
			msg = string(v.(fatal))
		}
	}()
	fz.Run(fatalTB{}, prog)
	return ""
}

func TestFuzzLanes(t *testing.T) {
	a, b := &recorder{}, &recorder{}
	after := 0
	// Ops: Send on lane 1 with step 1; Recv on lane 0 with step 2; a cut op.
	prog := []byte{0b111, 2, 'h', 'i', 0b1000, 1, 'x', 0, 9, 'y'}
	if msg := runFuzz(Fuzz{Parsers: []probe.Parser{a, b}, After: func() { after++ }}, prog); msg != "" {
		t.Fatal(msg)
	}
	if len(b.chunks) != 1 || b.chunks[0].Dir != probe.Send || b.chunks[0].Len != 2+37 || string(b.data[0]) != "hi" {
		t.Fatalf("lane 1: %+v", b.chunks)
	}
	if len(a.chunks) != 2 || a.chunks[0].Len != 1+4*37 || a.chunks[1].Len != 1 || string(a.data[1]) != "y" {
		t.Fatalf("lane 0: %+v", a.chunks)
	}
	if after != 3 || len(a.closed) != 1 || len(b.closed) != 1 || !bytes.Equal(b.alias[0], []byte{0, 0}) {
		t.Fatalf("after %d closed %d/%d alias %q", after, len(a.closed), len(b.closed), b.alias[0])
	}

	one := &recorder{}
	runFuzz(Fuzz{Parsers: []probe.Parser{one}}, []byte{0b11, 0})
	if one.chunks[0].Dir != probe.Send || one.chunks[0].Len != 37 {
		t.Fatalf("one lane: %+v", one.chunks[0])
	}
}

func TestFuzzChecks(t *testing.T) {
	backwards := &recorder{span: func(c probe.Chunk) []probe.Span { return []probe.Span{{Name: "b", Start: c.End, End: c.Start}} }}
	if msg := runFuzz(Fuzz{Parsers: []probe.Parser{backwards}}, []byte{0, 0}); msg == "" {
		t.Error("span ending before its start not reported")
	}
	extra := Fuzz{Parsers: []probe.Parser{&recorder{}}, Span: func(s probe.Span) { panic(fatal("extra " + s.Name)) }}
	if msg := runFuzz(extra, nil); msg != "extra close" {
		t.Errorf("extra check: %q", msg)
	}
	if msg := runFuzz(Fuzz{}, nil); msg == "" {
		t.Error("no parsers accepted")
	}
}

func TestAttrs(t *testing.T) {
	sp := probe.Span{Name: "x", Attrs: []attribute.KeyValue{attribute.String("s", "v"), attribute.Int64("i", 3)}}
	WantStr(t, sp, "s", "v")
	WantInt(t, sp, "i", 3)
	WantAbsent(t, sp, "nope")
	if _, ok := Attr(sp, "nope"); ok {
		t.Error("Attr found a missing key")
	}
	CheckTimes(t, []probe.Span{sp})
	WantNames(t, []probe.Span{sp, {Name: "y"}}, "x", "y")
}
