package postgres

import (
	"strings"
	"time"

	"github.com/tracer-agent/tracer-agent/probes/sql"
)

// Bounds on per-connection state, whatever the peer sends.
const (
	maxQueue      = 512 // frontend messages awaiting an answer
	maxStatements = 512 // named prepared statements (pgx caches 512)
	maxPortals    = 64
)

// kind is what a queued frontend message waits for.
type kind uint8

const (
	kStartup  kind = iota // StartupMessage: ends at the first ReadyForQuery
	kSimple               // Query: results..., ReadyForQuery
	kParse                // ParseComplete '1'
	kBind                 // BindComplete '2'
	kDescribe             // ['t'] then RowDescription 'T' or NoData 'n'
	kExecute              // DataRow* then CommandComplete/EmptyQuery/PortalSuspended
	kClose                // CloseComplete '3'
	kSync                 // ReadyForQuery 'Z'
	kFunc                 // FunctionCallResponse 'V'
)

// item is a frontend message waiting for the backend's answer, in the
// order the backend answers them (the protocol is strictly FIFO, also
// when pipelined).
type item struct {
	kind kind
	q    *sql.Query // statement text of Query/Parse/Bind/Describe/Execute
	from origin     // the syscall that carried the message
	// results so far
	rows     int64 // sum of CommandComplete counts (-1: none had one)
	dataRows int64
	errCode  string
	errMsg   string
}

// matcher holds the queue and the connection's prepared statements and
// portals. Statements are kept parsed (sql.Query, text ≤ 2 KiB), so an
// Execute long after its Parse still has its text at a bounded cost.
type matcher struct {
	queue   []*item
	stmts   map[string]*sql.Query
	portals map[string]*sql.Query
}

func (m *matcher) init() {
	m.queue = nil
	m.stmts = map[string]*sql.Query{}
	m.portals = map[string]*sql.Query{}
}

func (m *matcher) head() *item {
	if len(m.queue) == 0 {
		return nil
	}
	return m.queue[0]
}

func (m *matcher) pop() *item {
	it := m.queue[0]
	m.queue[0] = nil
	m.queue = m.queue[1:]
	return it
}

func (m *matcher) push(p *parser, it *item) {
	if len(m.queue) >= maxQueue {
		// A backend that never answers: give up on the oldest.
		old := m.pop()
		p.finish(old, it.from.start, true)
	}
	it.rows = -1
	m.queue = append(m.queue, it)
}

// query queues a simple Query.
func (m *matcher) query(p *parser, msg *message) {
	text, _, _ := cstring(msg.body)
	q := sql.ParseQuery(string(text), p.opts.RawQueryText)
	if all, name := resetsStatements(text); all {
		clear(m.stmts)
		clear(m.portals)
	} else if name != "" {
		delete(m.stmts, name)
		delete(m.stmts, strings.ToLower(name))
	}
	m.push(p, &item{kind: kSimple, q: &q, from: msg.first})
}

// extended queues one message of the extended query protocol, keeping
// statements and portals up to date.
func (m *matcher) extended(p *parser, msg *message) {
	it := &item{from: msg.first}
	switch msg.typ {
	case 'P':
		name, text := parseMsg(msg.body)
		q := sql.ParseQuery(text, p.opts.RawQueryText)
		setBounded(m.stmts, name, &q, maxStatements)
		it.kind, it.q = kParse, &q
	case 'B':
		portal, stmt := bindMsg(msg.body)
		q := m.stmts[stmt] // nil: prepared before we attached
		setBounded(m.portals, portal, q, maxPortals)
		it.kind, it.q = kBind, q
	case 'D':
		k, name := nameMsg(msg.body, true)
		it.kind, it.q = kDescribe, m.stmts[name]
		if k == 'P' {
			it.q = m.portals[name]
		}
	case 'E':
		_, portal := nameMsg(msg.body, false)
		it.kind, it.q = kExecute, m.portals[portal]
	case 'C':
		k, name := nameMsg(msg.body, true)
		if k == 'S' {
			delete(m.stmts, name)
		} else {
			delete(m.portals, name)
		}
		it.kind = kClose
	case 'S':
		it.kind = kSync
	case 'F':
		it.kind = kFunc
	default:
		return
	}
	m.push(p, it)
}

// setBounded stores v under k, evicting an arbitrary entry when full.
func setBounded(mp map[string]*sql.Query, k string, v *sql.Query, limit int) {
	if _, ok := mp[k]; !ok && len(mp) >= limit {
		for old := range mp {
			delete(mp, old)
			break
		}
	}
	mp[k] = v
}

// backend matches one backend message with the queue.
func (m *matcher) backend(p *parser, msg *message) {
	h := m.head()
	switch msg.typ {
	case 'Z':
		m.ready(p, msg.end)
	case 'E':
		m.error(p, msg)
	case '1':
		m.answer(kParse)
	case '2':
		m.answer(kBind)
	case '3':
		m.answer(kClose)
	case 'n':
		m.answer(kDescribe)
	case 'V':
		m.answer(kFunc)
	case 'T':
		if h != nil && h.kind == kDescribe {
			m.pop()
		}
	case 'D':
		if h != nil && (h.kind == kExecute || h.kind == kSimple) {
			h.dataRows++
		}
	case 'C':
		if h == nil {
			return
		}
		n := tagRows(msg.body)
		switch h.kind {
		case kSimple:
			if n >= 0 {
				h.rows = max(h.rows, 0) + n
			}
		case kExecute:
			h.rows = n
			p.finish(m.pop(), msg.end, false)
		}
	case 'I', 's': // EmptyQueryResponse, PortalSuspended end an Execute
		if h != nil && h.kind == kExecute {
			p.finish(m.pop(), msg.end, false)
		}
	}
	// R, S, K, N, A, v, t, G, H, W, d, c: nothing to match.
}

// answer pops the item a one-message reply answers. Unanswered
// non-query items before it are dropped (we lost their replies); a reply
// that matches nothing pending is ignored.
func (m *matcher) answer(k kind) {
	for i, it := range m.queue {
		if it.kind == k {
			for range i + 1 {
				m.pop()
			}
			return
		}
		if it.kind != kParse && it.kind != kBind && it.kind != kDescribe && it.kind != kClose {
			return
		}
	}
}

// ready ends everything up to the first Query, Sync or startup item.
func (m *matcher) ready(p *parser, end time.Time) {
	idx := -1
	for i, it := range m.queue {
		if it.kind == kSimple || it.kind == kSync || it.kind == kStartup {
			idx = i
			break
		}
	}
	for range idx + 1 {
		it := m.pop()
		if it.kind == kSimple || it.kind == kExecute {
			p.finish(it, end, false) // an Execute here lost its reply: rows unknown
		}
	}
}

// error handles an ErrorResponse. In a simple Query it fails the query
// (which still ends at ReadyForQuery). In the extended protocol the backend
// skips every message up to the next Sync: the first Execute of those is
// the call that failed (a failing Parse or Bind fails it too) and is
// emitted with the error; the later Executes of the batch never ran and
// are dropped. A batch without Execute (a failed prepare, as pgx and
// lib/pq do before executing) is reported as a call of the failed
// statement, so the error is not lost.
func (m *matcher) error(p *parser, msg *message) {
	h := m.head()
	if h == nil {
		return
	}
	code, text := errorFields(msg.body)
	if code == "" {
		// SQLSTATE not captured: still an error (semconv's error.type
		// fallback value).
		code = "_OTHER"
	}
	switch h.kind {
	case kStartup:
		m.pop() // authentication failed; the server closes
		return
	case kSimple:
		if h.errCode == "" {
			h.errCode, h.errMsg = code, text
		}
		return
	case kSync:
		return // e.g. a deferred constraint failing at the implicit commit
	}
	var failed, firstStmt *item
	for len(m.queue) > 0 {
		it := m.head()
		if it.kind == kSync || it.kind == kSimple || it.kind == kStartup {
			break
		}
		m.pop()
		if it.kind == kExecute && failed == nil {
			failed = it
		}
		if firstStmt == nil && it.q != nil {
			firstStmt = it
		}
	}
	if failed == nil {
		failed = firstStmt
	}
	if failed == nil {
		return
	}
	failed.errCode, failed.errMsg = code, text
	p.finish(failed, msg.end, false)
}

// groups counts the requests in flight that end at a ReadyForQuery.
func (m *matcher) groups() int {
	n := 0
	for _, it := range m.queue {
		if it.kind == kSimple || it.kind == kSync || it.kind == kStartup {
			n++
		}
	}
	return n
}

// closeAll reports queued queries as incomplete.
func (m *matcher) closeAll(p *parser, at time.Time) {
	for len(m.queue) > 0 {
		it := m.pop()
		if it.kind == kSimple || it.kind == kExecute {
			p.finish(it, at, true)
		}
	}
}
