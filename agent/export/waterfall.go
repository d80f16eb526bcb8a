package export

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

const (
	barWidth  = 30
	maxIndent = 16 // deeper spans stop indenting: bounded line width
	maxText   = 80 // runes of a name or service shown
)

// spanRow is the little the waterfall needs of a span; the console keeps
// these rather than whole SDK spans to bound its memory.
type spanRow struct {
	id, parent trace.SpanID
	kind       trace.SpanKind
	service    string
	name       string
	status     string // http.response.status_code, "" when absent
	isErr      bool
	start, end time.Time
}

func rowOf(s sdktrace.ReadOnlySpan) spanRow {
	r := spanRow{
		id:     s.SpanContext().SpanID(),
		parent: s.Parent().SpanID(),
		kind:   s.SpanKind(),
		name:   s.Name(),
		isErr:  s.Status().Code == codes.Error,
		start:  s.StartTime(),
		end:    s.EndTime(),
	}
	if res := s.Resource(); res != nil {
		if v, ok := res.Set().Value(semconv.ServiceNameKey); ok {
			r.service = v.Emit()
		}
	}
	for _, kv := range s.Attributes() {
		if kv.Key == semconv.HTTPResponseStatusCodeKey {
			if kv.Value.Type() == attribute.INT64 {
				r.status = strconv.FormatInt(kv.Value.AsInt64(), 10)
			} else {
				r.status = kv.Value.Emit()
			}
		}
	}
	return r
}

func traceStart(rows []spanRow) time.Time {
	var t time.Time
	for i, r := range rows {
		if i == 0 || r.start.Before(t) {
			t = r.start
		}
	}
	return t
}

// renderWaterfall draws one trace: a header, then the span tree ordered by
// start time with a timeline bar per span.
func renderWaterfall(tid trace.TraceID, rows []spanRow) string {
	if len(rows) == 0 {
		return ""
	}
	t0 := traceStart(rows)
	t1 := rows[0].end
	for _, r := range rows {
		if r.end.After(t1) {
			t1 = r.end
		}
	}
	total := t1.Sub(t0)

	// Order everything by start so siblings and roots read top-down in time.
	order := make([]int, len(rows))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		ra, rb := &rows[order[a]], &rows[order[b]]
		if !ra.start.Equal(rb.start) {
			return ra.start.Before(rb.start)
		}
		return string(ra.id[:]) < string(rb.id[:])
	})
	present := make(map[trace.SpanID]bool, len(rows))
	for _, r := range rows {
		present[r.id] = true
	}
	children := map[trace.SpanID][]int{}
	var roots []int
	for _, i := range order {
		r := &rows[i]
		if r.parent.IsValid() && r.parent != r.id && present[r.parent] {
			children[r.parent] = append(children[r.parent], i)
		} else {
			roots = append(roots, i)
		}
	}

	type line struct {
		left string
		i    int
	}
	lines := make([]line, 0, len(rows))
	seen := make([]bool, len(rows))
	var walk func(i int, prefix, branch string, depth int)
	walk = func(i int, prefix, branch string, depth int) {
		seen[i] = true
		lines = append(lines, line{prefix + branch + describe(&rows[i]), i})
		kids := children[rows[i].id]
		// Extend the prefix for the children unless the tree is already deep.
		next := prefix
		if depth > 0 && depth < maxIndent {
			if branch == "└─ " {
				next += "   "
			} else {
				next += "│  "
			}
		}
		var todo []int
		for _, k := range kids {
			if !seen[k] {
				todo = append(todo, k)
			}
		}
		for n, k := range todo {
			if seen[k] { // reached meanwhile through a duplicate span id
				continue
			}
			b := "├─ "
			if n == len(todo)-1 {
				b = "└─ "
			}
			walk(k, next, b, depth+1)
		}
	}
	for _, i := range roots {
		walk(i, "", "", 0)
	}
	// Spans caught in a parent cycle have no root: show them at top level.
	for _, i := range order {
		if !seen[i] {
			walk(i, "", "", 0)
		}
	}

	width := 0
	for _, l := range lines {
		width = max(width, utf8.RuneCountInString(l.left))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "trace %s  %d spans  %s\n", tid, len(rows), humanDuration(total))
	for _, l := range lines {
		b.WriteString(l.left)
		b.WriteString(strings.Repeat(" ", width-utf8.RuneCountInString(l.left)+2))
		b.WriteString(bar(rows[l.i].start.Sub(t0), rows[l.i].end.Sub(rows[l.i].start), total))
		b.WriteByte('\n')
	}
	return b.String()
}

func describe(r *spanRow) string {
	parts := []string{
		humanDuration(r.end.Sub(r.start)),
		strings.ToUpper(r.kind.String()),
		clean(r.service),
		clean(r.name),
	}
	if r.status != "" {
		parts = append(parts, clean(r.status))
	}
	if r.isErr {
		parts = append(parts, "ERROR")
	}
	return strings.Join(parts, "  ")
}

// bar draws the span's place on the trace's timeline.
func bar(offset, dur, total time.Duration) string {
	from, n := 0, barWidth
	if total > 0 {
		from = int(float64(offset) / float64(total) * barWidth)
		from = min(max(from, 0), barWidth-1)
		n = int(float64(dur)/float64(total)*barWidth + 0.5)
		n = min(max(n, 1), barWidth-from)
	}
	return "[" + strings.Repeat(" ", from) + strings.Repeat("█", n) + strings.Repeat(" ", barWidth-from-n) + "]"
}

// humanDuration renders d with 3 significant digits: 812ns, 1.23µs, 45.6ms, 2.00s.
func humanDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	units := []struct {
		name string
		size float64
	}{{"ns", 1}, {"µs", 1e3}, {"ms", 1e6}, {"s", 1e9}}
	for i, u := range units {
		v := float64(d) / u.size
		if i == 0 && v < 999.5 {
			return strconv.FormatInt(int64(d), 10) + "ns"
		}
		if v < 999.5 || i == len(units)-1 {
			switch {
			case v < 9.995:
				return strconv.FormatFloat(v, 'f', 2, 64) + u.name
			case v < 99.95:
				return strconv.FormatFloat(v, 'f', 1, 64) + u.name
			default:
				return strconv.FormatFloat(v, 'f', 0, 64) + u.name
			}
		}
	}
	return d.String()
}

// clean makes network-supplied text safe for a terminal: no control
// characters (escape sequences), valid UTF-8, bounded length.
func clean(s string) string {
	if s == "" {
		return "-"
	}
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == maxText {
			b.WriteString("…")
			break
		}
		if r < 0x20 || (r >= 0x7f && r < 0xa0) || r == utf8.RuneError {
			r = '?'
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}
