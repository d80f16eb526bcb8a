// Package postgres turns PostgreSQL wire protocol (v3) bytes of one client
// connection into CLIENT spans, one per query.
//
// Layout: framing.go cuts each direction's byte stream into messages
// (skipping uncaptured bytes by message length), decode.go reads the few
// message bodies the probe needs, matching.go pairs backend responses with
// the frontend messages they answer (prepared statements, portals,
// pipelining), calls.go builds the sql.Call of a finished query, detect.go
// recognises a connection's first bytes.
package postgres

import (
	"github.com/tracer-agent/tracer-agent/probes/probe"
	"github.com/tracer-agent/tracer-agent/probes/sql"
)

// system is db.system.name.
const system = "postgresql"

type pgProbe struct{ opts sql.Options }

// New returns the PostgreSQL probe.
func New(opts sql.Options) probe.Probe { return &pgProbe{opts: opts} }

func (*pgProbe) Name() string { return system }

// Detect claims a connection whose first sent bytes are a startup-phase
// packet (StartupMessage, SSLRequest, GSSENCRequest) or, for a connection
// opened before the agent, a well-formed simple Query or Parse message.
func (*pgProbe) Detect(c *probe.Chunk) bool {
	if c == nil || c.Dir != probe.Send {
		return false
	}
	return isStartupPacket(c.Data) || isQueryStart(c.Data, c.Len)
}

func (p *pgProbe) NewParser(conn probe.Conn) probe.Parser { return newParser(conn, p.opts) }
