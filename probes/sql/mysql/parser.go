package mysql

import (
	"encoding/binary"
	"strings"
	"time"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"github.com/tracer-agent/tracer-agent/probes/sql"
)

// Bounds on per-connection state.
const (
	maxPending = 32  // commands sent and not yet answered (pipelining)
	maxStmts   = 128 // prepared statements remembered
	rowKeep    = 128 // bytes kept of a row or definition (enough for an ERR or the final OK)
	respKeep   = 1024
)

// phase is where the connection is in the protocol.
type phase uint8

const (
	phStart   phase = iota // nothing seen yet
	phGreeted              // greeting seen: the client's handshake response is next
	phAuth                 // authentication exchange, until OK or ERR
	phCommand              // command phase
	phDead                 // TLS, compression or a fatal error: nothing more to parse
)

type parser struct {
	conn probe.Conn
	opts sql.Options
	fr   [2]framer // indexed by probe.Direction

	phase      phase
	system     string
	namespace  string
	authDB     string // database a COM_CHANGE_USER asks for
	serverCaps uint64
	clientCaps uint64
	capsKnown  bool // handshake seen: deprecateEOF below is reliable
	serverFull bool // the greeting's capabilities were all captured

	stmts    map[uint32]sql.Query
	lastStmt uint32
	queue    []*pending

	cur  *probe.Chunk
	out  []probe.Span
	keep [2]func() int
	emit [2]func(*packet)
}

func newParser(conn probe.Conn, opts sql.Options) *parser {
	p := &parser{conn: conn, opts: opts, system: "mysql", stmts: map[uint32]sql.Query{}}
	p.keep[probe.Send] = func() int { return maxKeep }
	p.keep[probe.Recv] = p.recvKeep
	p.emit[probe.Send] = p.onSend
	p.emit[probe.Recv] = p.onRecv
	return p
}

// deprecateEOF reports whether both ends negotiated CLIENT_DEPRECATE_EOF.
func (p *parser) deprecateEOF() bool {
	return p.capsKnown && p.clientCaps&p.serverCaps&capDeprecateEOF != 0
}

func (p *parser) Feed(c probe.Chunk) []probe.Span {
	p.out = nil
	if p.phase == phDead || c.Dir > probe.Send {
		return nil
	}
	p.cur = &c
	data := c.Data
	if len(data) > c.Len {
		data = data[:max(c.Len, 0)]
	}
	gap := c.Len - len(data)
	f := &p.fr[c.Dir]
	if f.lost && c.Dir == probe.Send && looksLikeCommand(data) {
		f.reset()
	}
	if f.lost {
		if c.Dir == probe.Recv && len(p.queue) > 0 {
			p.queue[0].lastEnd = c.End // the lost response is still arriving
		}
		p.cur = nil
		return p.out
	}
	f.feed(&c, data, gap, p.keep[c.Dir], p.emit[c.Dir])
	if c.Dir == probe.Recv && f.lost && len(p.queue) > 0 {
		head := p.queue[0]
		head.rs, head.answered, head.lastEnd = rsLost, true, c.End
	}
	p.cur = nil
	return p.out
}

// looksLikeCommand: where to resume a lost client stream.
func looksLikeCommand(b []byte) bool {
	if len(b) < 5 || b[3] != 0 {
		return false
	}
	switch b[4] {
	case comQuit, comInitDB, comQuery, comPing, comStmtPrepare, comStmtExecute, comStmtClose, comStmtReset, comResetConnection:
		return true
	}
	return false
}

// recvKeep: rows and column definitions are only counted.
func (p *parser) recvKeep() int {
	if p.phase == phCommand && len(p.queue) > 0 {
		switch p.queue[0].rs {
		case rsColumns, rsRows, rsSkip, rsLost:
			return rowKeep
		}
	}
	return respKeep
}

// onSend handles one client→server packet.
func (p *parser) onSend(pk *packet) {
	switch p.phase {
	case phStart:
		if pk.seq != 0 {
			return // the tail of a handshake we did not see
		}
		p.phase = phCommand // connection opened before the agent
		p.command(pk)
	case phGreeted, phAuth:
		if pk.seq == 0 {
			// A command: the end of the handshake went unseen.
			p.phase = phCommand
			p.command(pk)
			return
		}
		if p.phase == phAuth {
			return // auth switch response, more auth data
		}
		h, ok := parseHandshakeResponse(pk.data, pk.length)
		if !ok || h.ssl || h.caps&p.serverCaps&capCompress != 0 {
			p.phase = phDead // TLS or compressed packets from here on
			return
		}
		p.clientCaps, p.capsKnown = h.caps, p.serverFull
		p.namespace = h.db
		p.phase = phAuth
	case phCommand:
		if len(p.queue) > 0 && p.queue[0].rs == rsInfile {
			if pk.length == 0 { // end of the LOCAL INFILE upload
				p.queue[0].rs = rsFirst
			}
			p.queue[0].nextSeq = pk.lastSeq + 1
			return
		}
		if pk.seq == 0 {
			p.command(pk)
		}
	}
}

// onRecv handles one server→client packet.
func (p *parser) onRecv(pk *packet) {
	b := pk.data
	switch p.phase {
	case phStart:
		if pk.seq == 0 && len(b) > 0 && b[0] == protoV10 {
			if g, ok := parseGreeting(b); ok {
				p.serverCaps, p.serverFull = g.caps, g.capsFull
				if strings.Contains(g.version, "MariaDB") {
					p.system = "mariadb"
				}
				p.phase = phGreeted
				return
			}
		}
		if pk.seq == 0 && len(b) > 0 && b[0] == 0xff {
			p.phase = phDead // refused before the handshake
			return
		}
		p.phase = phCommand // a response to a command we did not see
	case phGreeted:
		if len(b) > 0 && b[0] == 0xff {
			p.phase = phDead
		}
	case phAuth:
		if len(b) == 0 {
			return
		}
		switch b[0] {
		case 0x00:
			p.phase = phCommand
			if p.authDB != "" {
				p.namespace, p.authDB = p.authDB, ""
			}
			if ok, good := parseOK(b); good && ok.schema != "" {
				p.namespace = ok.schema
			}
		case 0xff:
			if e := parseErr(b); e.code != 0xffff {
				p.phase = phDead // the server closes the connection
			}
		}
		// 0xfe auth switch, 0x01 more data: the exchange goes on.
	case phCommand:
		if len(p.queue) == 0 {
			return // unsolicited, or the rest of a response already given up
		}
		head := p.queue[0]
		if pk.seq != head.nextSeq {
			if pk.seq != 1 {
				return // the rest of a response already given up
			}
			if head.answered {
				// A response starts (seq 1) where the head's went on: its
				// end went unseen.
				p.queue = p.queue[1:]
				head.uncertain = true
				p.finish(head, head.lastEnd, false)
				if len(p.queue) == 0 {
					return
				}
				head = p.queue[0]
			}
		}
		head.nextSeq = pk.lastSeq + 1
		if p.respond(head, pk) {
			p.queue = p.queue[1:]
			p.finish(head, p.cur.End, false)
		}
	}
}

// command starts tracking one client command packet (seq 0).
func (p *parser) command(pk *packet) {
	b := pk.data
	if len(b) == 0 {
		return
	}
	// The client speaks again: a response we lost track of is over.
	rf := &p.fr[probe.Recv]
	if rf.lost || (len(p.queue) == 0 && !rf.atBoundary()) || (len(p.queue) > 0 && (p.queue[0].rs == rsLost || p.queue[0].uncertain)) {
		p.flushQueue()
		rf.reset()
	}
	pe := &pending{from: pk.from, namespace: p.namespace, rs: rsFirst, resp: respFull, nextSeq: pk.lastSeq + 1}
	switch b[0] {
	case comQuit, comStmtSendLongData:
		return // no response
	case comStmtClose:
		if len(b) >= 5 {
			delete(p.stmts, binary.LittleEndian.Uint32(b[1:5]))
		}
		return
	case comQuery:
		text := string(b[1:])
		pe.kind, pe.q = kindQuery, sql.ParseQuery(text, p.opts.RawQueryText)
		if pe.q.Operation == "USE" {
			pe.useDB = useTarget(text)
		}
	case comStmtPrepare:
		pe.kind, pe.q = kindPrepare, sql.ParseQuery(string(b[1:]), p.opts.RawQueryText)
		pe.resp = respPrepare
	case comStmtExecute, comStmtBulkExecute:
		pe.kind, pe.op = kindExecute, "EXECUTE"
		if len(b) >= 5 {
			id := binary.LittleEndian.Uint32(b[1:5])
			if id == 0xffffffff { // MariaDB: the statement prepared just before
				id = p.lastStmt
			}
			if q, ok := p.stmts[id]; ok {
				pe.q, pe.op = q, ""
			}
		}
	case comInitDB:
		pe.kind, pe.op, pe.resp = kindInitDB, "USE", respOne
		pe.useDB = printable(b[1:])
		pe.namespace = pe.useDB
	case comChangeUser:
		p.authDB = changeUserDB(b[1:], p.clientCaps)
		p.phase = phAuth
		return
	case comStmtFetch, comFieldList:
		pe.kind, pe.rs = kindSilent, rsRows // rows (or fields) then EOF
	default: // ping, resets, set option, statistics, unknown: one packet
		pe.kind, pe.resp = kindSilent, respOne
	}
	if len(p.queue) >= maxPending {
		old := p.queue[0]
		p.queue = p.queue[1:]
		p.finish(old, old.lastEnd, !old.answered)
	}
	p.queue = append(p.queue, pe)
}

// flushQueue ends every pending command whose response was lost.
func (p *parser) flushQueue() {
	q := p.queue
	p.queue = nil
	for _, pe := range q {
		pe.rs = rsLost
		p.finish(pe, pe.lastEnd, !pe.answered)
	}
}

// useTarget extracts the database of a "USE db" statement.
func useTarget(text string) string {
	f := strings.Fields(text)
	if len(f) < 2 {
		return ""
	}
	return printable([]byte(strings.Trim(f[1], "`;\"")))
}

// changeUserDB reads COM_CHANGE_USER: user NUL, auth data, database NUL.
func changeUserDB(b []byte, caps uint64) string {
	i := indexNUL(b)
	if i < 0 {
		return ""
	}
	b = b[i+1:]
	if caps&capSecureConn != 0 {
		if len(b) < 1 || len(b) < 1+int(b[0]) {
			return ""
		}
		b = b[1+int(b[0]):]
	} else if j := indexNUL(b); j >= 0 {
		b = b[j+1:]
	} else {
		return ""
	}
	if j := indexNUL(b); j >= 0 {
		return printable(b[:j])
	}
	return ""
}

func indexNUL(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return -1
}

// Close ends what is pending: commands never answered are incomplete.
func (p *parser) Close(at time.Time) []probe.Span {
	p.out = nil
	q := p.queue
	p.queue = nil
	for _, pe := range q {
		if pe.answered {
			pe.rs = rsLost
			p.finish(pe, pe.lastEnd, false)
		} else {
			p.finish(pe, at, true)
		}
	}
	return p.out
}
