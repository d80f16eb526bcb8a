package kafka

import (
	"encoding/binary"
	"fmt"
	"math/rand"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// record is one proxy read of a capture: '>' client→broker, '<' back, on
// proxied connection conn.
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

type splitter func([]byte) [][]byte

func whole(b []byte) [][]byte { return [][]byte{b} }

func bytewise(b []byte) [][]byte {
	out := make([][]byte, len(b))
	for i := range b {
		out[i] = b[i : i+1]
	}
	return out
}

func randomSplits(seed int64) splitter {
	rng := rand.New(rand.NewSource(seed))
	return func(b []byte) [][]byte {
		var out [][]byte
		for len(b) > 0 {
			n := 1 + rng.Intn(min(len(b), 97))
			out = append(out, b[:n])
			b = b[n:]
		}
		return out
	}
}

var brokerAddr = netip.MustParseAddrPort("10.0.0.9:9092")

// driver replays a capture of several connections through one probe, as
// the agent would: one parser per connection, chunks in capture order.
type driver struct {
	pr      probe.Probe
	parsers map[int]probe.Parser
	now     time.Time
	spans   []probe.Span
	ctx     trace.SpanContext // Ctx given to every written chunk
}

func newDriver() *driver {
	return &driver{pr: New(Options{}), parsers: map[int]probe.Parser{}, now: t0}
}

func (d *driver) parser(conn int) probe.Parser {
	p, ok := d.parsers[conn]
	if !ok {
		p = d.pr.NewParser(probe.Conn{
			PID: 42, FD: int32(10 + conn), ID: uint64(conn + 1),
			Local:  netip.MustParseAddrPort(fmt.Sprintf("10.0.0.2:%d", 40000+conn)),
			Remote: brokerAddr,
		})
		d.parsers[conn] = p
	}
	return p
}

// feed gives one piece to a connection's parser; captured < len(piece)
// simulates the kernel capturing a prefix only.
func (d *driver) feed(conn int, dir probe.Direction, piece []byte, captured int) {
	s := d.now
	d.now = d.now.Add(time.Millisecond)
	e := d.now
	d.now = d.now.Add(time.Millisecond)
	data := append([]byte(nil), piece[:min(captured, len(piece))]...)
	c := probe.Chunk{Dir: dir, TID: 7, Start: s, End: e, Len: len(piece), Data: data}
	if dir == probe.Send {
		c.Ctx = d.ctx
	}
	d.spans = append(d.spans, d.parser(conn).Feed(c)...)
	clear(data) // parsers must have copied what they keep
}

func (d *driver) close() {
	keys := make([]int, 0, len(d.parsers))
	for k := range d.parsers {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	for _, k := range keys {
		d.spans = append(d.spans, d.parsers[k].Close(d.now)...)
	}
}

// replay feeds a whole capture; limit > 0 caps what each chunk captures.
func replay(recs []record, split splitter, limit int) *driver {
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

func attr(sp probe.Span, k attribute.Key) (attribute.Value, bool) {
	for _, a := range sp.Attrs {
		if a.Key == k {
			return a.Value, true
		}
	}
	return attribute.Value{}, false
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
