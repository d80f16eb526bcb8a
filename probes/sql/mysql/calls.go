package mysql

import (
	"time"

	"github.com/tracer-agent/tracer-agent/probes/sql"
)

// finish turns a pending command into a span, when its kind gets one.
func (p *parser) finish(pe *pending, end time.Time, incomplete bool) {
	switch pe.kind {
	case kindSilent:
		return
	case kindPrepare:
		if pe.err == nil && !incomplete {
			return // the executions carry the statement
		}
	}
	if end.IsZero() || end.Before(pe.from.start) {
		end = pe.from.start
	}
	c := sql.Call{
		System:     p.system,
		Namespace:  pe.namespace,
		Query:      pe.q,
		Operation:  pe.op,
		Start:      pe.from.start,
		End:        end,
		TID:        pe.from.tid,
		Ctx:        pe.from.ctx,
		Parent:     pe.from.parent,
		Rows:       pe.rows,
		Incomplete: incomplete,
	}
	if pe.kind == kindInitDB || pe.kind == kindPrepare || incomplete || pe.rs == rsLost || pe.uncertain {
		c.Rows = -1
	}
	if e := pe.err; e != nil {
		c.Rows = -1
		c.ErrCode = sql.Itoa(int(e.code))
		c.ErrMessage = e.message
	}
	p.out = append(p.out, c.Span(p.conn))
}
