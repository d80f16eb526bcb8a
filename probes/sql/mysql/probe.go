// Package mysql turns MySQL/MariaDB client/server protocol bytes of one TCP
// connection (seen from the client) into CLIENT spans, one per query or
// prepared statement execution.
//
// Layout: framing.go cuts each direction into (logical) packets, wire.go
// decodes the packets the probe cares about, parser.go follows the
// connection (handshake, commands, prepared statements), response.go
// matches a command with its response, calls.go builds the spans.
//
// Choices: COM_INIT_DB (USE db) gets a span named "USE" carrying the
// requested database; COM_PING, COM_STMT_RESET/CLOSE/FETCH, COM_QUIT and
// successful COM_STMT_PREPARE get none (the executions carry the text; a
// failed prepare gets a span, else its error would be invisible).
// TLS (SSL request) and compressed connections stop the parser.
package mysql

import (
	"github.com/tracer-agent/tracer-agent/probes/probe"
	"github.com/tracer-agent/tracer-agent/probes/sql"
)

type mysqlProbe struct{ opts sql.Options }

// New returns the MySQL/MariaDB probe.
func New(opts sql.Options) probe.Probe { return &mysqlProbe{opts: opts} }

func (*mysqlProbe) Name() string { return "mysql" }

// Detect accepts a server greeting read by the client or, for connections
// opened before the agent, a text command (COM_QUERY / COM_STMT_PREPARE)
// written as one whole packet.
func (*mysqlProbe) Detect(c *probe.Chunk) bool {
	if c == nil {
		return false
	}
	if c.Dir == probe.Recv {
		return isGreeting(c.Data, c.Len)
	}
	return isTextCommand(c.Data, c.Len)
}

func (p *mysqlProbe) NewParser(conn probe.Conn) probe.Parser { return newParser(conn, p.opts) }

// isGreeting: a seq-0 packet of protocol version 10 with a printable,
// NUL-terminated version string, and the whole syscall being that packet.
func isGreeting(b []byte, total int) bool {
	if len(b) < 4+1+2 || b[3] != 0 || b[4] != protoV10 {
		return false
	}
	n := int(b[0]) | int(b[1])<<8 | int(b[2])<<16
	if n < 1+2+4+8 || n > 1024 || total != 4+n {
		return false
	}
	end := min(len(b), 4+n)
	ver := b[5:end]
	for i, c := range ver {
		if c == 0 {
			return i > 0
		}
		if c < 0x20 || c > 0x7e || i > 100 {
			return false
		}
	}
	return false // no NUL within what was captured
}

// isTextCommand: a seq-0 COM_QUERY/COM_STMT_PREPARE packet exactly as long
// as the syscall, whose text starts like SQL and is printable.
func isTextCommand(b []byte, total int) bool {
	if len(b) < 4+2 || b[3] != 0 || (b[4] != comQuery && b[4] != comStmtPrepare) {
		return false
	}
	n := int(b[0]) | int(b[1])<<8 | int(b[2])<<16
	if n < 2 || n == maxPhysical || total != 4+n {
		return false
	}
	text := b[5:min(len(b), 4+n, 5+256)]
	first := true
	for _, c := range text {
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			continue
		case first && !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '(' || c == '/'):
			return false
		case c < 0x20 || c == 0x7f:
			return false
		}
		first = false
	}
	return !first
}
