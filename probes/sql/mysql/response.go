package mysql

import (
	"time"

	"github.com/tracer-agent/tracer-agent/probes/sql"
)

// cmdKind is what a pending command becomes on a span.
type cmdKind uint8

const (
	kindSilent  cmdKind = iota // ping, resets, fetch...: no span
	kindQuery                  // COM_QUERY
	kindPrepare                // COM_STMT_PREPARE: a span only on error
	kindExecute                // COM_STMT_EXECUTE
	kindInitDB                 // COM_INIT_DB: span "USE"
)

// respShape is how a command's response is framed.
type respShape uint8

const (
	respFull    respShape = iota // OK, ERR, LOCAL INFILE or result sets
	respPrepare                  // STMT_PREPARE_OK + definitions, or ERR
	respOne                      // exactly one packet
)

// respState is where a response is.
type respState uint8

const (
	rsFirst   respState = iota // next packet starts a response (or the next result)
	rsColumns                  // column definitions left: pending.left
	rsRows                     // rows until EOF/OK (0xfe) or ERR
	rsInfile                   // the client uploads a LOCAL INFILE
	rsSkip                     // prepare: parameter/column definitions left
	rsLost                     // out of sync: ends at the next command or Close
)

// pending is a command waiting for (the end of) its response.
type pending struct {
	kind      cmdKind
	resp      respShape
	rs        respState
	from      origin // the chunk where the command began
	namespace string
	q         sql.Query
	op        string // operation when there is no text
	useDB     string // database a USE / COM_INIT_DB switches to on success

	left       int64 // definitions left to skip
	eofPending bool  // an EOF may still separate column definitions from rows
	rows       int64
	stmtID     uint32
	prepared   bool
	err        *errPacket
	answered   bool
	nextSeq    byte // sequence id the next response packet should carry
	uncertain  bool // a packet's kind was guessed: the end may have gone by
	lastEnd    time.Time
}

// respond feeds one server packet to the command it answers; it reports
// whether the response is complete.
func (p *parser) respond(pe *pending, pk *packet) bool {
	pe.answered, pe.lastEnd = true, p.cur.End
	b := pk.data
	if len(b) == 0 {
		if pe.rs == rsColumns || pe.rs == rsRows || pe.rs == rsSkip {
			// An uncaptured packet: counted as a row or definition, but it
			// may have been the end; the next command settles it.
			pe.uncertain = true
			b = []byte{0x01}
		} else {
			pe.rs = rsLost
			return false
		}
	}
	if b[0] == 0xff {
		e := parseErr(b)
		if e.code == 0xffff {
			return false // MariaDB progress report, not an error
		}
		if pe.rs != rsSkip && pe.rs != rsColumns {
			pe.err = &e
			return true
		}
	}
	if pe.resp == respOne {
		p.okEffects(pe, b)
		return true
	}
	switch pe.rs {
	case rsFirst, rsInfile:
		pe.rs = rsFirst
		return p.first(pe, pk, b)
	case rsColumns:
		if pe.left--; pe.left <= 0 {
			pe.rs = rsRows
		}
	case rsRows:
		eof := b[0] == 0xfe && pk.length < 9 // rows starting 0xfe are ≥ 16 MiB
		switch {
		case eof && pe.eofPending && pk.length == 5:
			pe.eofPending = false // between column definitions and rows
			if eofStatus(b)&statusCursorExists != 0 {
				return true // rows come with COM_STMT_FETCH
			}
		case eof:
			status := eofStatus(b)
			if pk.length != 5 {
				ok, _ := parseOK(b)
				status = ok.status
				p.okEffects(pe, b)
			}
			if status&statusMoreResults != 0 {
				pe.rs = rsFirst
				return false
			}
			return true
		default:
			pe.rows++
		}
	case rsSkip:
		if pe.left--; pe.left <= 0 {
			return true
		}
	}
	return false
}

// first handles the first packet of a response or of a further result.
func (p *parser) first(pe *pending, pk *packet, b []byte) bool {
	switch b[0] {
	case 0x00:
		if pe.resp == respPrepare {
			return p.prepareOK(pe, b)
		}
		ok, _ := parseOK(b)
		pe.rows += ok.affected
		p.okEffects(pe, b)
		if ok.status&statusMoreResults != 0 {
			return false
		}
		return true
	case 0xfb:
		pe.rs = rsInfile
		return false
	case 0xfe:
		if pk.length < 9 { // EOF (COM_SET_OPTION, old servers) or OK
			status := eofStatus(b)
			if pk.length != 5 {
				ok, _ := parseOK(b)
				status = ok.status
			}
			p.okEffects(pe, b)
			return status&statusMoreResults == 0
		}
	}
	// A result set: column count [, MariaDB metadata-follows flag].
	n, k, ok := lenenc(b)
	if !ok || n == 0 {
		pe.rs = rsLost
		return false
	}
	pe.left = int64(min(n, 1<<20))
	if pk.length > k && len(b) > k && b[k] == 0 {
		pe.left = 0 // metadata cached by the client (MARIADB_CLIENT_CACHE_METADATA)
	}
	pe.eofPending = !p.deprecateEOF()
	pe.rs = rsColumns
	if pe.left == 0 {
		pe.rs = rsRows
	}
	return false
}

// prepareOK reads STMT_PREPARE_OK: 0x00, id u32, columns u16, params u16.
func (p *parser) prepareOK(pe *pending, b []byte) bool {
	if len(b) < 9 {
		pe.rs = rsLost
		return false
	}
	pe.stmtID = uint32(b[1]) | uint32(b[2])<<8 | uint32(b[3])<<16 | uint32(b[4])<<24
	cols := int64(b[5]) | int64(b[6])<<8
	params := int64(b[7]) | int64(b[8])<<8
	pe.prepared = true
	pe.left = cols + params
	if p.capsKnown && !p.deprecateEOF() {
		if cols > 0 {
			pe.left++
		}
		if params > 0 {
			pe.left++
		}
	}
	p.remember(pe)
	if pe.left == 0 {
		return true
	}
	pe.rs = rsSkip
	return false
}

// remember stores a prepared statement's text under its id.
func (p *parser) remember(pe *pending) {
	if _, ok := p.stmts[pe.stmtID]; !ok && len(p.stmts) >= maxStmts {
		for id := range p.stmts { // evict one; drivers close most anyway
			delete(p.stmts, id)
			break
		}
	}
	p.stmts[pe.stmtID] = pe.q
	p.lastStmt = pe.stmtID
}

// okEffects applies what a successful OK changes on the connection.
func (p *parser) okEffects(pe *pending, b []byte) {
	if len(b) == 0 || (b[0] != 0x00 && b[0] != 0xfe) {
		return
	}
	ok, good := parseOK(b)
	switch {
	case good && ok.schema != "":
		p.namespace = ok.schema
	case pe.useDB != "":
		p.namespace = pe.useDB
	}
	if pe.resp == respOne && b[0] == 0x00 && good {
		pe.rows = ok.affected
	}
}
