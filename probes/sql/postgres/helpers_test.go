package postgres

import (
	"encoding/binary"
	"math/rand"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"github.com/tracer-agent/tracer-agent/probes/sql"
	"go.opentelemetry.io/otel/attribute"
)

var (
	t0         = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	clientConn = probe.Conn{
		PID: 42, FD: 7, ID: 1,
		Local:  netip.MustParseAddrPort("10.0.0.1:51000"),
		Remote: netip.MustParseAddrPort("10.0.0.2:5432"),
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
	recs, ok := decodeCapture(b)
	if !ok {
		t.Fatalf("%s: corrupt capture", name)
	}
	return recs
}

func decodeCapture(b []byte) ([]record, bool) {
	var recs []record
	for len(b) >= 5 {
		n := int(binary.BigEndian.Uint32(b[1:5]))
		if 5+n > len(b) {
			return recs, false
		}
		recs = append(recs, record{b[0], b[5 : 5+n]})
		b = b[5+n:]
	}
	return recs, len(b) == 0
}

// driver feeds chunks with increasing timestamps and collects spans.
type driver struct {
	p     probe.Parser
	now   time.Time
	spans []probe.Span
	tid   uint32
	sends map[time.Time]uint32 // Start of each Send chunk → its TID
	recvs map[time.Time]bool   // End of each Recv chunk
}

func newDriver() *driver {
	return &driver{p: New(sql.Options{}).NewParser(clientConn), now: t0,
		sends: map[time.Time]uint32{}, recvs: map[time.Time]bool{}}
}

// feed sends one syscall's bytes of which the kernel captured the first
// captured ones; it returns the chunk's start and end.
func (d *driver) feed(dir probe.Direction, b []byte, captured int) (time.Time, time.Time) {
	if captured > len(b) || captured < 0 {
		captured = len(b)
	}
	// A scratch copy clobbered afterwards: the parser must not keep Data.
	ring := append([]byte(nil), b[:captured]...)
	d.tid++
	c := probe.Chunk{Dir: dir, TID: d.tid, Start: d.now, End: d.now.Add(500 * time.Microsecond), Len: len(b), Data: ring}
	d.now = d.now.Add(time.Millisecond)
	if dir == probe.Send {
		d.sends[c.Start] = c.TID
	} else {
		d.recvs[c.End] = true
	}
	d.spans = append(d.spans, d.p.Feed(c)...)
	for i := range ring {
		ring[i] = 0xAA
	}
	return c.Start, c.End
}

func (d *driver) close() time.Time {
	at := d.now
	d.spans = append(d.spans, d.p.Close(at)...)
	return at
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

// replay feeds a capture as the client process sees it.
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
			d.feed(dir, piece, captured)
		}
	}
	return d
}

func attr(s probe.Span, key attribute.Key) (attribute.Value, bool) {
	for _, kv := range s.Attrs {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}
