package postgres

import (
	"fmt"
	"testing"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"github.com/tracer-agent/tracer-agent/probes/probe/probetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// want is one expected span of a capture, in order.
type want struct {
	name string
	text string // db.query.text (sanitized)
	rows int64  // -1: attribute absent
	code string // SQLSTATE of an error
}

var captures = []struct {
	file  string
	spans []want
}{
	{"psql", []want{ // SSLRequest answered N, simple queries, COPY in and out
		{"SELECT users", "SELECT id, name FROM users WHERE id = ?;", 1, ""},
		{"INSERT items", "INSERT INTO items (name, price) VALUES (?, ?);", 1, ""},
		{"UPDATE users", "UPDATE users SET name = ? WHERE id = ?;", 1, ""},
		{"DELETE items", "DELETE FROM items WHERE price > ?;", 1, ""},
		{"SELECT missing_table", "SELECT * FROM missing_table;", -1, "42P01"},
		{"SELECT users", "SELECT count(*) FROM users ; SELECT ?;", 2, ""}, // one Query, two statements
		{"COPY items", "COPY items (name, price) FROM STDIN;", 3, ""},
		{"COPY items", "COPY items (name) TO STDOUT;", 4, ""},
	}},
	{"pgx", []want{ // statement cache: Parse+Describe+Sync once, then Bind+Execute+Sync
		{"SELECT users", "SELECT name FROM users WHERE id = $1", 1, ""},
		{"SELECT users", "SELECT name FROM users WHERE id = $1", 1, ""},
		{"SELECT users", "SELECT name FROM users WHERE id = $1", 1, ""},
		{"INSERT items", "INSERT INTO items (name, price) VALUES ($1, $2)", 1, ""},
		{"UPDATE users", "UPDATE users SET name = $1 WHERE id > $2", 2, ""},
		{"SELECT missing_table", "SELECT * FROM missing_table WHERE id = $1", -1, "42P01"}, // failed prepare
		// batch: three Executes of cached statements before one Sync
		{"SELECT users", "SELECT name FROM users WHERE id = $1", 1, ""},
		{"INSERT items", "INSERT INTO items (name, price) VALUES ($1, $2)", 1, ""},
		{"SELECT items", "SELECT count(*) FROM items", 1, ""},
		// batch whose second Execute fails: the third is skipped by the server
		{"DELETE items", "DELETE FROM items WHERE name = $1", 1, ""},
		{"SELECT", "SELECT ? / $1::int", -1, "22012"},
	}},
	{"libpq-go", []want{ // lib/pq: simple Query without args, unnamed and named statements
		{"UPDATE items", "UPDATE items SET price = price + ?", 6, ""},
		{"SELECT users", "SELECT id, name FROM users WHERE id > $1", 3, ""},
		{"SELECT users", "SELECT name FROM users WHERE id = $1", 1, ""},
		{"SELECT users", "SELECT name FROM users WHERE id = $1", 1, ""},
		{"SELECT users", "SELECT name FROM users WHERE id = $1", 1, ""},
		{"DELETE items", "DELETE FROM items WHERE name = $1", 0, ""},
		{"INSERT missing_table", "INSERT INTO missing_table VALUES ($1)", -1, "42P01"},
	}},
	{"psycopg2", []want{ // client-side interpolation, implicit transactions, copy_from
		{"BEGIN", "BEGIN", -1, ""},
		{"SELECT users", "SELECT id, name FROM users WHERE id = ?", 1, ""},
		{"INSERT items", "INSERT INTO items (name, price) VALUES (?, ?)", 1, ""},
		{"COMMIT", "COMMIT", -1, ""},
		{"BEGIN", "BEGIN", -1, ""},
		{"SELECT missing_table", "SELECT * FROM missing_table", -1, "42P01"},
		{"ROLLBACK", "ROLLBACK", -1, ""},
		{"BEGIN", "BEGIN", -1, ""},
		{"COPY items", `COPY "items"("name","price") FROM stdin WITH DELIMITER AS ? NULL AS ?`, 2, ""},
		{"COMMIT", "COMMIT", -1, ""},
	}},
}

func TestCaptures(t *testing.T) {
	splits := map[string]probetest.Splitter{
		"whole": probetest.Whole, "bytes": probetest.Bytewise, "random1": probetest.Random(1), "random2": probetest.Random(2), "random3": probetest.Random(3),
	}
	for _, c := range captures {
		recs := probetest.LoadCapture(t, c.file)
		for sname, split := range splits {
			t.Run(fmt.Sprintf("%s/%s", c.file, sname), func(t *testing.T) {
				d := replay(recs, split, 0)
				d.Close()
				if len(d.Spans) != len(c.spans) {
					for _, s := range d.Spans {
						t.Logf("%q", s.Name)
					}
					t.Fatalf("got %d spans, want %d", len(d.Spans), len(c.spans))
				}
				for i, w := range c.spans {
					checkSpan(t, d, i, w)
				}
			})
		}
	}
}

func checkSpan(t *testing.T, d *driver, i int, w want) {
	t.Helper()
	s := d.Spans[i]
	if s.Name != w.name {
		t.Errorf("span %d name %q want %q", i, s.Name, w.name)
	}
	if s.Kind != trace.SpanKindClient || s.PID != clientConn.PID {
		t.Errorf("span %d kind %v pid %d", i, s.Kind, s.PID)
	}
	if v, _ := probetest.Attr(s, semconv.DBSystemNameKey); v.AsString() != "postgresql" {
		t.Errorf("span %d db.system.name %q", i, v.AsString())
	}
	if v, _ := probetest.Attr(s, semconv.DBNamespaceKey); v.AsString() != "shop" {
		t.Errorf("span %d db.namespace %q", i, v.AsString())
	}
	if v, _ := probetest.Attr(s, semconv.DBQueryTextKey); v.AsString() != w.text {
		t.Errorf("span %d db.query.text %q want %q", i, v.AsString(), w.text)
	}
	v, ok := probetest.Attr(s, semconv.DBResponseReturnedRowsKey)
	if got := map[bool]int64{true: v.AsInt64(), false: -1}[ok]; got != w.rows {
		t.Errorf("span %d rows %d want %d", i, got, w.rows)
	}
	code, _ := probetest.Attr(s, semconv.DBResponseStatusCodeKey)
	if code.AsString() != w.code || s.Error != (w.code != "") {
		t.Errorf("span %d error %v code %q want %q (%s)", i, s.Error, code.AsString(), w.code, s.StatusMessage)
	}
	if w.code == "42P01" && s.StatusMessage != `relation "missing_table" does not exist` {
		t.Errorf("span %d status message %q", i, s.StatusMessage)
	}
	// Start: the syscall that sent the query (its TID); End: a read.
	if tid, ok := d.sends[s.Start]; !ok || tid != s.TID {
		t.Errorf("span %d Start %v / TID %d is not a send chunk's", i, s.Start, s.TID)
	}
	if !d.recvs[s.End] || !s.End.After(s.Start) {
		t.Errorf("span %d End %v is not a later read's end", i, s.End)
	}
	if v, _ := probetest.Attr(s, semconv.ServerPortKey); v.AsInt64() != 5432 {
		t.Errorf("span %d server.port %d", i, v.AsInt64())
	}
}

// TestCapturesTruncated replays the captures with the kernel keeping only
// a prefix of each syscall. Framing skips by message length, so with a
// prefix as large as the small messages every call is still seen; tiny
// prefixes may lose calls but never invent out-of-order times or panic.
func TestCapturesTruncated(t *testing.T) {
	for _, c := range captures {
		recs := probetest.LoadCapture(t, c.file)
		for _, limit := range []int{1, 5, 16, 64, 128, 256, 512} {
			t.Run(fmt.Sprintf("%s/%d", c.file, limit), func(t *testing.T) {
				d := replay(recs, probetest.Whole, limit)
				d.Close()
				if len(d.Spans) > len(c.spans)+1 {
					t.Fatalf("got %d spans, want at most %d", len(d.Spans), len(c.spans)+1)
				}
				for _, s := range d.Spans {
					if s.End.Before(s.Start) {
						t.Errorf("span %q ends before it starts", s.Name)
					}
				}
				if limit >= 512 {
					for i, w := range c.spans {
						checkSpan(t, d, i, w)
					}
				}
				t.Logf("limit %d: %d/%d spans", limit, len(d.Spans), len(c.spans))
			})
		}
	}
}

// TestCaptureRepliesTruncated cuts only the server's replies. With 64
// bytes kept every reply's framing survives; with 24 some ReadyForQuery
// and ErrorResponse messages fall in uncaptured bytes, and the parser
// resynchronises on later replies: queries keep their names and order,
// but a call whose error was not seen may be reported as done.
func TestCaptureRepliesTruncated(t *testing.T) {
	for _, c := range captures {
		recs := probetest.LoadCapture(t, c.file)
		for _, limit := range []int{24, 64} {
			t.Run(fmt.Sprintf("%s/%d", c.file, limit), func(t *testing.T) {
				d := newDriver()
				for _, r := range recs {
					if r.Dir == '>' {
						d.feed(probe.Send, r.Data, len(r.Data))
					} else {
						d.feed(probe.Recv, r.Data, limit)
					}
				}
				d.Close()
				names := map[string]bool{}
				for _, w := range c.spans {
					names[w.name] = true
				}
				for _, s := range d.Spans {
					if !names[s.Name] || s.End.Before(s.Start) {
						t.Errorf("unexpected span %q", s.Name)
					}
				}
				if limit < 64 {
					if n := len(d.Spans); n < len(c.spans)-1 || n > len(c.spans)+1 {
						t.Fatalf("got %d spans, want %d±1", n, len(c.spans))
					}
					return
				}
				if len(d.Spans) != len(c.spans) {
					t.Fatalf("got %d spans, want %d", len(d.Spans), len(c.spans))
				}
				for i, w := range c.spans {
					if d.Spans[i].Name != w.name {
						t.Errorf("span %d %q want %q", i, d.Spans[i].Name, w.name)
					}
				}
			})
		}
	}
}
