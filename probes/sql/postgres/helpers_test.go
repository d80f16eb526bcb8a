package postgres

import (
	"time"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"github.com/tracer-agent/tracer-agent/probes/probe/probetest"
	"github.com/tracer-agent/tracer-agent/probes/sql"
	"go.opentelemetry.io/otel/trace"
)

var clientConn = probetest.Conn("10.0.0.1:51000", "10.0.0.2:5432")

// driver is probetest.Driver on a PostgreSQL parser of clientConn that
// also remembers every chunk, so span times and TIDs can be traced back to
// the syscalls they came from.
type driver struct {
	*probetest.Driver
	sends map[time.Time]uint32 // Start of each Send chunk → its TID
	recvs map[time.Time]bool   // End of each Recv chunk
}

func newDriver() *driver { return newDriverWith(sql.Options{}) }

func newDriverWith(opts sql.Options) *driver {
	d := &driver{Driver: probetest.NewDriver(New(opts).NewParser(clientConn)),
		sends: map[time.Time]uint32{}, recvs: map[time.Time]bool{}}
	d.Fill = 0xAA
	d.Observe = func(c probe.Chunk) {
		if c.Dir == probe.Send {
			d.sends[c.Start] = c.TID
		} else {
			d.recvs[c.End] = true
		}
	}
	return d
}

// feed sends one syscall's bytes of which the kernel captured the first
// captured ones, without kernel ids; it returns the chunk's start and end.
func (d *driver) feed(dir probe.Direction, b []byte, captured int) (time.Time, time.Time) {
	return d.Feed(dir, b, captured, trace.SpanContext{}, trace.SpanContext{})
}

// replay feeds a capture as the client process sees it.
func replay(recs []probetest.Record, split probetest.Splitter, limit int) *driver {
	d := newDriver()
	for _, r := range recs {
		dir := probe.Recv
		if r.Dir == '>' {
			dir = probe.Send
		}
		for _, piece := range split(r.Data) {
			captured := len(piece)
			if limit > 0 {
				captured = min(captured, limit)
			}
			d.feed(dir, piece, captured)
		}
	}
	return d
}
