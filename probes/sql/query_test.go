package sql

import "testing"

func TestParseQuery(t *testing.T) {
	cases := []struct {
		in, text, op, coll, summary string
	}{
		{"SELECT * FROM users WHERE id = 42 AND name = 'bob''s'", "SELECT * FROM users WHERE id = ? AND name = ?", "SELECT", "users", "SELECT users"},
		{"select u.id from public.users u join orders o on o.uid = u.id where o.total > 10.5", "select u.id from public.users u join orders o on o.uid = u.id where o.total > ?", "SELECT", "public.users", "SELECT public.users orders"},
		{"INSERT INTO items (a, b) VALUES (1, 'x'), (2, 'y')", "INSERT INTO items (a, b) VALUES (?, ?), (?, ?)", "INSERT", "items", "INSERT items"},
		{"UPDATE accounts SET balance = balance - 5 WHERE id IN (1, 2, 3)", "UPDATE accounts SET balance = balance - ? WHERE id IN (?)", "UPDATE", "accounts", "UPDATE accounts"},
		{"DELETE FROM \"Sessions\" WHERE expires < $1", "DELETE FROM \"Sessions\" WHERE expires < $1", "DELETE", "Sessions", "DELETE Sessions"},
		{"CREATE TABLE IF NOT EXISTS t1 (id int)", "CREATE TABLE IF NOT EXISTS t1 (id int)", "CREATE", "t1", "CREATE t1"},
		{"BEGIN", "BEGIN", "BEGIN", "", "BEGIN"},
		{"/* app */ SELECT 1 -- c\n", "SELECT ?", "SELECT", "", "SELECT"},
		{"WITH x AS (SELECT id FROM a) SELECT * FROM x JOIN b ON true", "WITH x AS (SELECT id FROM a) SELECT * FROM x JOIN b ON true", "SELECT", "x", "SELECT x b"},
		{"SELECT $tag$it's$tag$, E'a\\'b', x'ff'", "SELECT ?, ?, ?", "SELECT", "", "SELECT"},
		{"COPY t FROM STDIN", "COPY t FROM STDIN", "COPY", "t", "COPY t"},
		{"", "", "", "", ""},
	}
	for _, c := range cases {
		q := ParseQuery(c.in, false)
		if q.Text != c.text || q.Operation != c.op || q.Collection != c.coll || q.Summary != c.summary {
			t.Errorf("ParseQuery(%q) = %+v\nwant text=%q op=%q coll=%q summary=%q", c.in, q, c.text, c.op, c.coll, c.summary)
		}
	}
	if q := ParseQuery("SELECT 'secret'", true); q.Text != "SELECT 'secret'" {
		t.Errorf("raw text: %q", q.Text)
	}
}

func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"SELECT 1", "INSERT INTO t VALUES ('a''b', $x$y$x$)", "/* x", "'", "$", "WITH (((", "IN ("} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q := ParseQuery(s, false)
		if len(q.Text) > maxQueryText+len("…") {
			t.Fatalf("text too long: %d", len(q.Text))
		}
	})
}
