package postgres

import (
	"time"

	"github.com/tracer-agent/tracer-agent/probes/sql"
)

// finish emits the call of a Query or Execute item.
func (p *parser) finish(it *item, end time.Time, incomplete bool) {
	if it.kind != kSimple && it.kind != kExecute && it.errCode == "" {
		return // Parse/Bind/Describe only become calls when they fail
	}
	c := sql.Call{
		System:     system,
		Namespace:  p.namespace,
		Start:      it.from.start,
		End:        end,
		TID:        it.from.tid,
		Ctx:        it.from.ctx,
		Parent:     it.from.parent,
		Rows:       it.rows,
		ErrCode:    it.errCode,
		ErrMessage: it.errMsg,
		Incomplete: incomplete && it.errCode == "",
	}
	if it.q != nil {
		c.Query = *it.q
	}
	if c.Rows < 0 && it.dataRows > 0 && !incomplete {
		c.Rows = it.dataRows // PortalSuspended, or a tag without a count
	}
	p.emit(c)
}
