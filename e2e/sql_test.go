package e2e

import (
	"database/sql"
	"fmt"
	"os/exec"
	"strconv"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/lib/pq"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/tracer-agent/tracer-agent/internal/otlptest"
	"github.com/tracer-agent/tracer-agent/internal/testdb"
	"github.com/tracer-agent/tracer-agent/internal/testenv"
)

// seed creates the users table the services query.
func seed(t *testing.T, driver, dsn string) {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		"DROP TABLE IF EXISTS users",
		"CREATE TABLE users (id int PRIMARY KEY, name varchar(64))",
		"INSERT INTO users VALUES (1, 'ada'), (2, 'grace')",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %s: %v", driver, q, err)
		}
	}
}

// dbChild finds the SELECT span of service whose parent is the SERVER span
// for path (drivers add their own calls around it: BEGIN, SET AUTOCOMMIT).
func dbChild(spans []otlptest.Span, service, path string) (server, db otlptest.Span, ok bool) {
	for _, s := range serverSpans(spans, service) {
		if s.Attrs["url.path"] != path {
			continue
		}
		for _, c := range spans {
			if c.ParentID == s.SpanID && c.Kind == tracepb.Span_SPAN_KIND_CLIENT && c.Attrs["db.operation.name"] == "SELECT" {
				return s, c, true
			}
		}
		return s, otlptest.Span{}, false
	}
	return otlptest.Span{}, otlptest.Span{}, false
}

// TestSQLSpans: PostgreSQL and MariaDB calls made by Go (pgx, lib/pq,
// go-sql-driver/mysql) and Python (psycopg2, pymysql) services while they
// serve HTTP requests become CLIENT spans under those requests' SERVER
// spans, with sanitized query text; the psql and mariadb CLIs are traced
// as root spans.
func TestSQLSpans(t *testing.T) {
	requireE2E(t)
	py := testenv.RequireCommand(t, "/usr/bin/python3")
	pg := testdb.StartPostgres(t)
	my := testdb.StartMariaDB(t)
	seed(t, "postgres", pg.DSN)
	seed(t, "mysql", my.DSN)

	// The agent starts first and picks the services up at exec, so it sees
	// their connections open and their statements prepared (the Go service
	// prepares its MySQL statement once, at start).
	rcv := otlptest.Start(t)
	ag := startAgent(t, rcv, "--exe", "*/e2e-sqlapp", "--exe", "pysql.py", "--exe", "*/psql", "--exe", "*/mariadb")
	goApp := start(t, []string{"OTEL_SERVICE_NAME=sql-go", "PG_DSN=" + pg.DSN, "MYSQL_DSN=" + my.DSN}, sqlApp)
	pyApp := start(t, []string{"OTEL_SERVICE_NAME=sql-py", "PG_PORT=" + strconv.Itoa(pg.Port), "MY_PORT=" + strconv.Itoa(my.Port)}, py, "testdata/pysql.py")
	goPort := portOf(t, goApp)
	pyPort := portOf(t, pyApp)
	get := func(port int, path string) {
		curl(t, "-o", "/dev/null", fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
	}
	for _, p := range []string{"/pgx/users/1", "/pq/users/2", "/mysql/users/1", "/mysql/users/2", "/pgx/missing"} {
		get(goPort, p)
	}
	get(pyPort, "/pg/users/1")
	get(pyPort, "/my/users/2")
	psql := testenv.RequireCommand(t, "psql")
	if out, err := exec.Command(psql, "-h", "127.0.0.1", "-p", strconv.Itoa(pg.Port), "-U", "postgres", "-c", "SELECT count(*) FROM users WHERE name <> 'x'").CombinedOutput(); err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	mariadb := testenv.RequireCommand(t, "mariadb")
	if out, err := exec.Command(mariadb, "-h", "127.0.0.1", "-P", strconv.Itoa(my.Port), "-u", "root", "test", "-e", "SELECT name FROM users WHERE id = 2").CombinedOutput(); err != nil {
		t.Fatalf("mariadb: %v\n%s", err, out)
	}

	type want struct {
		service, path, system, ns, text, code string
	}
	wants := []want{
		{"sql-go", "/pgx/users/1", "postgresql", "postgres", "SELECT name FROM users WHERE id = $1", ""},
		{"sql-go", "/pq/users/2", "postgresql", "postgres", "SELECT name FROM users WHERE id = $1", ""},
		{"sql-go", "/mysql/users/1", "mariadb", "test", "SELECT name FROM users WHERE id = ?", ""},
		{"sql-go", "/mysql/users/2", "mariadb", "test", "SELECT name FROM users WHERE id = ?", ""},
		{"sql-go", "/pgx/missing", "postgresql", "postgres", "SELECT * FROM no_such_table WHERE id = ?", "42P01"},
		{"sql-py", "/pg/users/1", "postgresql", "postgres", "SELECT name FROM users WHERE id = ?", ""},
		{"sql-py", "/my/users/2", "mariadb", "test", "SELECT name FROM users WHERE id = ?", ""},
	}
	spans := rcv.WaitFor(t, 30*time.Second, "a database span under every HTTP request, and the CLIs' spans", func(s []otlptest.Span) bool {
		for _, w := range wants {
			if _, _, ok := dbChild(s, w.service, w.path); !ok {
				return false
			}
		}
		return len(cliSpans(s, "postgresql")) > 0 && len(cliSpans(s, "mariadb")) > 0
	})
	ag.stop(t)
	for _, w := range wants {
		srv, db, _ := dbChild(spans, w.service, w.path)
		if db.Name != "SELECT users" && w.code == "" {
			t.Errorf("%s %s: db span name %q, want %q", w.service, w.path, db.Name, "SELECT users")
		}
		wantAttr(t, db, "db.system.name", w.system)
		wantAttr(t, db, "db.namespace", w.ns)
		wantAttr(t, db, "db.query.text", w.text)
		if db.TraceID != srv.TraceID || !srv.Contains(db) {
			t.Errorf("%s %s: db span [%v %v] not inside its server span [%v %v]", w.service, w.path, db.Start, db.End, srv.Start, srv.End)
		}
		if w.code != "" {
			wantAttr(t, db, "db.response.status_code", w.code)
			if db.StatusCode != tracepb.Status_STATUS_CODE_ERROR {
				t.Errorf("%s: a failed query is not an error span", w.path)
			}
		}
	}
	for _, sys := range []string{"postgresql", "mariadb"} {
		for _, s := range cliSpans(spans, sys) {
			if s.ParentID != "" {
				t.Errorf("CLI %s span %q has a parent", sys, s.Name)
			}
		}
	}
	if s := cliSpans(spans, "postgresql"); len(s) > 0 && s[0].Attrs["db.query.text"] != "SELECT count(*) FROM users WHERE name <> ?" {
		t.Errorf("psql query text %q", s[0].Attrs["db.query.text"])
	}
}

// cliSpans are database spans of the CLI processes (not the services).
func cliSpans(spans []otlptest.Span, system string) []otlptest.Span {
	return otlptest.Filter(spans, func(s otlptest.Span) bool {
		return s.Attrs["db.system.name"] == system && s.Service != "sql-go" && s.Service != "sql-py" && s.Attrs["db.query.text"] != nil
	})
}

// portOf waits for a test service's "listening <port>" line.
func portOf(t *testing.T, p *proc) int {
	t.Helper()
	line := p.waitOutput(t, "listening ", 15*time.Second)
	n, err := strconv.Atoi(line[len("listening "):])
	if err != nil {
		t.Fatalf("bad listening line %q", line)
	}
	return n
}
