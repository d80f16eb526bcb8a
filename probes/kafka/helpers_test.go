package kafka

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"github.com/tracer-agent/tracer-agent/probes/probe/probetest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// record is one proxy read of a capture: '>' client→broker, '<' back, on
// proxied connection conn. Kafka captures hold several connections, so
// their format is not probetest's single-connection one.
type record struct {
	dir  byte
	conn int
	data []byte
}

// loadCapture reads testdata/name.bin: records of [dir][conn u16][len u32][data].
func loadCapture(t testing.TB, name string) []record {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".bin"))
	if err != nil {
		t.Fatal(err)
	}
	var recs []record
	for len(b) >= 7 {
		n := int(binary.BigEndian.Uint32(b[3:7]))
		if 7+n > len(b) {
			t.Fatalf("%s: corrupt capture", name)
		}
		recs = append(recs, record{b[0], int(binary.BigEndian.Uint16(b[1:3])), b[7 : 7+n]})
		b = b[7+n:]
	}
	return recs
}

// randomSplits cuts pieces of up to 97 bytes: Kafka headers are longer
// than probetest.Random's 40.
func randomSplits(seed int64) probetest.Splitter { return probetest.RandomUpTo(seed, 97) }

var brokerAddr = netip.MustParseAddrPort("10.0.0.9:9092")

// driver replays a capture of several connections through one probe, as
// the agent would: one parser per connection, chunks in capture order on
// one clock (each chunk lasts 1ms, 1ms apart), all on thread 7.
type driver struct {
	*probetest.Clock
	pr    probe.Probe
	conns map[int]*probetest.Driver
	spans []probe.Span
	ctx   trace.SpanContext // Ctx given to every written chunk
}

func newDriver() *driver {
	return &driver{
		Clock: &probetest.Clock{Now: probetest.T0, Latency: time.Millisecond, Step: 2 * time.Millisecond},
		pr:    New(Options{}), conns: map[int]*probetest.Driver{},
	}
}

func (d *driver) conn(conn int) *probetest.Driver {
	c, ok := d.conns[conn]
	if !ok {
		p := d.pr.NewParser(probe.Conn{
			PID: 42, FD: int32(10 + conn), ID: uint64(conn + 1),
			Local:  netip.MustParseAddrPort(fmt.Sprintf("10.0.0.2:%d", 40000+conn)),
			Remote: brokerAddr,
		})
		c = &probetest.Driver{Clock: d.Clock, Parser: p, TID: 7, FixedTID: true} // Fill 0: data cleared
		d.conns[conn] = c
	}
	return c
}

// feed gives one piece to a connection's parser; captured < len(piece)
// simulates the kernel capturing a prefix only.
func (d *driver) feed(conn int, dir probe.Direction, piece []byte, captured int) {
	var ctx trace.SpanContext
	if dir == probe.Send {
		ctx = d.ctx
	}
	c := d.conn(conn)
	n := len(c.Spans)
	c.Feed(dir, piece, captured, ctx, trace.SpanContext{})
	d.spans = append(d.spans, c.Spans[n:]...)
}

func (d *driver) close() {
	keys := make([]int, 0, len(d.conns))
	for k := range d.conns {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	for _, k := range keys {
		c := d.conns[k]
		n := len(c.Spans)
		c.Close()
		d.spans = append(d.spans, c.Spans[n:]...)
	}
}

// replay feeds a whole capture; limit > 0 caps what each chunk captures.
func replay(recs []record, split probetest.Splitter, limit int) *driver {
	d := newDriver()
	for _, r := range recs {
		dir := probe.Recv
		if r.dir == '>' {
			dir = probe.Send
		}
		for _, piece := range split(r.data) {
			captured := len(piece)
			if limit > 0 {
				captured = min(captured, limit)
			}
			d.feed(r.conn, dir, piece, captured)
		}
	}
	d.close()
	return d
}

func describe(sp probe.Span) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %q err=%v", sp.Kind, sp.Name, sp.Error)
	for _, a := range sp.Attrs {
		fmt.Fprintf(&b, " %s=%s", a.Key, a.Value.Emit())
	}
	if sp.Parent.IsValid() {
		fmt.Fprintf(&b, " parent=%s", sp.Parent.TraceID())
	}
	for _, l := range sp.Links {
		fmt.Fprintf(&b, " link=%s", l.TraceID())
	}
	return b.String()
}

func attrKey(k string) attribute.Key { return attribute.Key(k) }
