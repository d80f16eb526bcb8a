package postgres

import (
	"bytes"
	"encoding/binary"
	"time"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"github.com/tracer-agent/tracer-agent/probes/sql"
)

// parser follows one client connection: the process sends frontend
// messages (Send) and reads backend messages (Recv).
type parser struct {
	conn    probe.Conn
	opts    sql.Options
	client  stream // Send: frontend → backend
	server  stream // Recv: backend → frontend
	started bool
	isDead  bool // encrypted or otherwise not followable any more

	namespace string
	m         matcher
	out       []probe.Span
}

func newParser(conn probe.Conn, opts sql.Options) *parser {
	p := &parser{conn: conn, opts: opts}
	p.client.dir, p.server.dir = probe.Send, probe.Recv
	p.m.init()
	return p
}

func (p *parser) dead() bool { return p.isDead }

func (p *parser) Feed(c probe.Chunk) []probe.Span {
	if p.isDead || (c.Dir != probe.Send && c.Dir != probe.Recv) {
		return nil
	}
	if !p.started {
		if c.Dir != probe.Send {
			return nil // the tail of something we never saw the start of
		}
		if len(c.Data) == 0 {
			return nil
		}
		p.started = true
		// A startup-phase packet starts with its length's high byte, 0;
		// a connection opened before the agent starts with a typed message.
		p.client.untyped = c.Data[0] == 0
	}
	s := &p.server
	if c.Dir == probe.Send {
		s = &p.client
	}
	if s.st == fLost {
		switch {
		case chainValid(s.dir, c.Data, c.Len):
			s.resync()
			if c.Dir == probe.Recv && p.m.groups() > 1 {
				// The client sent another request after the one whose
				// answer we lost: that answer most likely ended in the
				// lost bytes (clients wait for ReadyForQuery).
				p.m.ready(p, s.lostEnd)
			}
		case c.Dir == probe.Recv && endsWithReady(&c):
			// The tail of the lost answer: the oldest request finished here.
			p.m.ready(p, c.End)
			s.resync()
			return p.flush()
		default:
			if c.Dir == probe.Recv {
				s.lostEnd = c.End // more of the lost reply
			}
			return nil
		}
	}
	s.feed(&c, p)
	if s.st == fLost {
		s.lostEnd = c.End
	}
	return p.flush()
}

func (p *parser) flush() []probe.Span {
	out := p.out
	p.out = nil
	return out
}

// Close reports the calls still waiting for an answer as incomplete.
func (p *parser) Close(at time.Time) []probe.Span {
	if !p.isDead {
		p.m.closeAll(p, at)
	}
	p.isDead = true
	p.m.init()
	return p.flush()
}

// message dispatches one framed message.
func (p *parser) message(s *stream, m *message) {
	if s.dir == probe.Recv {
		p.m.backend(p, m)
		return
	}
	switch m.typ {
	case 0:
		p.startup(m)
	case 'Q':
		p.m.query(p, m)
	case 'P', 'B', 'D', 'E', 'C', 'S', 'F':
		p.m.extended(p, m)
	}
	// 'H' Flush, 'X' Terminate, 'p' auth responses, COPY data: no reply to match.
}

// startup handles an untyped startup-phase packet.
func (p *parser) startup(m *message) {
	code, user, db := startupParams(m.body)
	switch {
	case code == codeSSL || code == codeGSSENC:
		p.server.sslReply = true // the client stays in the startup phase
	case code>>16 == 3:
		p.client.untyped = false
		p.namespace = db
		if db == "" {
			p.namespace = user // the server's default database
		}
		p.m.push(p, &item{kind: kStartup, from: m.first})
	default:
		p.client.untyped = false // CancelRequest: nothing else comes
	}
}

// sslAnswer: 'S' (SSL) or 'G' (GSSAPI) means everything after is encrypted.
func (p *parser) sslAnswer(_ *stream, b byte, _ *probe.Chunk) {
	if b == 'N' {
		return
	}
	p.isDead = true
	p.m.init()
}

// emit turns a finished call into a span.
func (p *parser) emit(c sql.Call) { p.out = append(p.out, c.Span(p.conn)) }

// endsWithReady reports whether a fully captured chunk ends with a
// ReadyForQuery message ('Z', length 5, status I/T/E).
func endsWithReady(c *probe.Chunk) bool {
	b := c.Data
	if c.Truncated() || len(b) < 6 {
		return false
	}
	t := b[len(b)-6:]
	st := t[5]
	return t[0] == 'Z' && binary.BigEndian.Uint32(t[1:5]) == 5 && (st == 'I' || st == 'T' || st == 'E')
}

// chainValid reports whether a chunk of a lost stream starts at a message
// boundary: typed messages of known types chain exactly to its end (or
// past the captured prefix when the syscall moved more).
func chainValid(dir probe.Direction, b []byte, total int) bool {
	if dir == probe.Send && (isStartupPacket(b) || isQueryStart(b, total)) {
		return true
	}
	pos := 0
	for pos < len(b) {
		if len(b)-pos < 5 {
			return false
		}
		l := int(binary.BigEndian.Uint32(b[pos+1:]))
		if !knownType(dir, b[pos]) || l < 4 || l > maxMessage {
			return false
		}
		pos += 1 + l
		if pos > len(b) {
			return pos <= total // the rest was moved but not captured
		}
	}
	return pos == len(b) && len(b) > 0
}

var (
	kwDiscard    = []byte("DISCARD")
	kwDeallocate = []byte("DEALLOCATE")
)

// resetsStatements reports what a simple query does to prepared
// statements: DISCARD ALL / DEALLOCATE ALL drop all, DEALLOCATE x one.
func resetsStatements(text []byte) (all bool, name string) {
	f := bytes.Fields(bytes.TrimRight(text, "; \t\r\n\x00"))
	if len(f) < 2 {
		return false, ""
	}
	switch {
	case bytes.EqualFold(f[0], kwDiscard):
		return bytes.EqualFold(f[1], []byte("ALL")), ""
	case bytes.EqualFold(f[0], kwDeallocate):
		n := f[1]
		if bytes.EqualFold(n, []byte("PREPARE")) && len(f) > 2 {
			n = f[2]
		}
		if bytes.EqualFold(n, []byte("ALL")) {
			return true, ""
		}
		return false, string(bytes.Trim(n, `"`))
	}
	return false, ""
}
