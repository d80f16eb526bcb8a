package http2

import (
	"github.com/tracer-agent/tracer-agent/probes/probe"
	"github.com/tracer-agent/tracer-agent/probes/probe/probetest"
)

var serverConn = probetest.Conn("10.0.0.1:8080", "10.0.0.2:51000")

const (
	recv = probe.Recv
	send = probe.Send
)

// newDriver feeds an HTTP/2 parser of conn (see probetest.Driver).
func newDriver(conn probe.Conn) *probetest.Driver {
	return probetest.NewDriver(New(Options{}).NewParser(conn))
}
