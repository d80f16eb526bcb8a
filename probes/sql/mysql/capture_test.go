package mysql

import (
	"fmt"
	"testing"

	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"github.com/tracer-agent/tracer-agent/probes/probe/probetest"
	"github.com/tracer-agent/tracer-agent/probes/sql"
)

// want is one expected span of a capture, in order. rows < -1: not checked.
type want struct {
	name, ns, text string
	rows           int64
	errCode        string
}

var captures = []struct {
	file  string
	spans []want
}{
	{file: "mariadb-cli", spans: []want{
		{"SELECT users", "test", "SELECT id, name FROM users WHERE email = ?", 1, ""},
		{"INSERT items", "test", "INSERT INTO items(name, price) VALUES (?, ?), (?, ?)", 2, ""},
		{"SELECT missing_table", "test", "SELECT * FROM missing_table", -1, "1146"},
		{"SELECT", "test", "SELECT DATABASE()", 1, ""},
		{"USE", "mysql", "", -1, ""},
		{"SELECT db", "mysql", "SELECT COUNT(*) FROM db", 1, ""},
		{"UPDATE test.users", "mysql", "UPDATE test.users SET name = ? WHERE id = ?", 1, ""},
	}},
	{file: "go-mysql", spans: []want{
		{"INSERT items", "test", "INSERT INTO items(name, price) VALUES (?, ?)", 1, ""},
		{"INSERT items", "test", "INSERT INTO items(name, price) VALUES (?, ?)", 1, ""},
		{"SELECT users", "test", "SELECT id, name FROM users WHERE id > ?", 3, ""},
		{"SELECT users", "test", "SELECT id, name FROM users WHERE id > ?", 1, ""},
		{"SELECT missing_table", "test", "SELECT * FROM missing_table WHERE id = ?", -1, "1146"},
		{"SELECT users", "test", "SELECT name FROM users; SELECT COUNT(*) FROM items", 4, ""},
	}},
	{file: "pymysql", spans: []want{
		{"SET", "test", "SET AUTOCOMMIT = ?", 0, ""},
		{"SELECT users", "test", "SELECT id, name, email FROM users WHERE name = ?", 1, ""},
		{"INSERT items", "test", "INSERT INTO items(name, price) VALUES (?, ?)", 1, ""},
		{"COMMIT", "test", "COMMIT", 0, ""},
		{"DELETE missing_table", "test", "DELETE FROM missing_table WHERE id = ?", -1, "1146"},
		{"USE", "mysql", "", -1, ""},
		{"SELECT user", "mysql", "SELECT COUNT(*) FROM user", 1, ""},
	}},
}

// replay feeds a capture as the client saw it; limit > 0 captures only
// that many bytes of each syscall.
func replay(recs []probetest.Record, split probetest.Splitter, limit int) *driver {
	d := newDriver(sql.Options{})
	for _, r := range recs {
		dir := probe.Recv
		if r.Dir == '>' {
			dir = probe.Send
		}
		for _, piece := range split(r.Data) {
			captured := -1
			if limit > 0 {
				captured = limit
			}
			d.feed(dir, piece, captured, noCtx, noCtx)
		}
	}
	d.Close()
	return d
}

func TestCaptures(t *testing.T) {
	splits := []struct {
		name  string
		split probetest.Splitter
	}{{"whole", probetest.Whole}, {"bytewise", probetest.Bytewise}, {"random1", probetest.Random(1)}, {"random7", probetest.Random(7)}}
	for _, c := range captures {
		recs := probetest.LoadCapture(t, c.file)
		for _, s := range splits {
			t.Run(c.file+"/"+s.name, func(t *testing.T) {
				d := replay(recs, s.split, 0)
				checkSpans(t, d.Spans, c.spans, true)
			})
		}
		// The kernel captures a bounded prefix of each syscall: names,
		// namespaces and errors survive; row counts may not.
		t.Run(c.file+"/truncated", func(t *testing.T) {
			d := replay(recs, probetest.Whole, 60)
			checkSpans(t, d.Spans, c.spans, false)
		})
	}
}

func checkSpans(t *testing.T, got []probe.Span, spans []want, exact bool) {
	t.Helper()
	if len(got) != len(spans) {
		for _, sp := range got {
			t.Logf("got %q %v", sp.Name, sp.Attrs)
		}
		t.Fatalf("%d spans, want %d", len(got), len(spans))
	}
	for i, w := range spans {
		sp := got[i]
		if sp.Name != w.name {
			t.Errorf("span %d: name %q, want %q", i, sp.Name, w.name)
			continue
		}
		probetest.WantStr(t, sp, semconv.DBSystemNameKey, "mariadb")
		probetest.WantStr(t, sp, semconv.DBNamespaceKey, w.ns)
		if sp.End.Before(sp.Start) {
			t.Errorf("%s: End before Start", sp.Name)
		}
		if (w.errCode != "") != sp.Error {
			t.Errorf("%s: Error %v, want code %q", sp.Name, sp.Error, w.errCode)
		}
		if w.errCode != "" {
			probetest.WantStr(t, sp, semconv.DBResponseStatusCodeKey, w.errCode)
			if sp.StatusMessage == "" {
				t.Errorf("%s: no status message", sp.Name)
			}
		}
		if !exact {
			continue
		}
		if w.text == "" {
			probetest.WantAbsent(t, sp, semconv.DBQueryTextKey)
		} else {
			probetest.WantStr(t, sp, semconv.DBQueryTextKey, w.text)
		}
		if w.rows < 0 {
			probetest.WantAbsent(t, sp, semconv.DBResponseReturnedRowsKey)
		} else {
			probetest.WantInt(t, sp, semconv.DBResponseReturnedRowsKey, w.rows)
		}
	}
}

var _ = fmt.Sprint
