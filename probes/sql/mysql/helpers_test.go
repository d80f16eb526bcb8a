package mysql

import (
	"go.opentelemetry.io/otel/trace"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"github.com/tracer-agent/tracer-agent/probes/probe/probetest"
	"github.com/tracer-agent/tracer-agent/probes/sql"
)

var clientConn = probetest.Conn("10.0.0.1:51000", "10.0.0.2:3306")

var noCtx trace.SpanContext

// driver is probetest.Driver on a MySQL parser of clientConn, with feeds
// that return the chunk: tests compare spans with its TID and times.
type driver struct{ *probetest.Driver }

func newDriver(opts sql.Options) *driver {
	return &driver{probetest.NewDriver(New(opts).NewParser(clientConn))}
}

// feed is probetest.Driver.Feed returning the chunk fed.
func (d *driver) feed(dir probe.Direction, b []byte, captured int, ctx, parent trace.SpanContext) probe.Chunk {
	d.Feed(dir, b, captured, ctx, parent)
	return d.Last
}

// send feeds all of b without kernel ids.
func (d *driver) send(dir probe.Direction, b []byte) probe.Chunk {
	return d.feed(dir, b, -1, noCtx, noCtx)
}

// pkt frames payload as one packet with sequence id seq.
func pkt(seq byte, payload ...byte) []byte {
	n := len(payload)
	return append([]byte{byte(n), byte(n >> 8), byte(n >> 16), seq}, payload...)
}
