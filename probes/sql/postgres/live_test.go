package postgres

import (
	"context"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tracer-agent/tracer-agent/internal/testdb"
	"github.com/tracer-agent/tracer-agent/probes/probe"
	"github.com/tracer-agent/tracer-agent/probes/probe/probetest"
	"github.com/tracer-agent/tracer-agent/probes/sql"
)

// tapProxy forwards one connection to target and feeds what it forwards
// to a parser, as the client process would see it.
type tapProxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	p      probe.Parser
	spans  []probe.Span
	done   chan struct{}
}

func (x *tapProxy) serve() {
	defer close(x.done)
	c, err := x.l.Accept()
	if err != nil {
		return
	}
	s, err := net.Dial("tcp", x.target)
	if err != nil {
		c.Close()
		return
	}
	var wg sync.WaitGroup
	pipe := func(dst, src net.Conn, dir probe.Direction) {
		defer wg.Done()
		buf := make([]byte, 32<<10)
		for {
			start := time.Now()
			n, err := src.Read(buf)
			if n > 0 {
				x.mu.Lock()
				x.spans = append(x.spans, x.p.Feed(probe.Chunk{Dir: dir, Start: start, End: time.Now(), Len: n, Data: buf[:n]})...)
				x.mu.Unlock()
				dst.Write(buf[:n])
			}
			if err != nil {
				dst.(*net.TCPConn).CloseWrite()
				return
			}
		}
	}
	wg.Add(2)
	go pipe(s, c, probe.Send)
	go pipe(c, s, probe.Recv)
	wg.Wait()
	c.Close()
	s.Close()
	x.mu.Lock()
	x.spans = append(x.spans, x.p.Close(time.Now())...)
	x.mu.Unlock()
}

// TestLivePgx runs pgx against a real server through a tapping proxy.
func TestLivePgx(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL server")
	}
	pg := testdb.StartPostgres(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	x := &tapProxy{l: l, target: "127.0.0.1:" + strconv.Itoa(pg.Port), p: New(sql.Options{}).NewParser(clientConn), done: make(chan struct{})}
	go x.serve()

	ctx := context.Background()
	port := l.Addr().(*net.TCPAddr).Port
	c, err := pgx.Connect(ctx, "postgres://postgres@127.0.0.1:"+strconv.Itoa(port)+"/postgres?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	exec := func(q string, args ...any) {
		if _, err := c.Exec(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec("CREATE TABLE users (id int PRIMARY KEY, name text)")
	exec("INSERT INTO users VALUES ($1, $2), ($3, $4)", 1, "ann", 2, "ben")
	for i := 0; i < 2; i++ {
		var n string
		if err := c.QueryRow(ctx, "SELECT name FROM users WHERE id = $1", 1).Scan(&n); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Exec(ctx, "DELETE FROM missing_table"); err == nil {
		t.Fatal("no error")
	}
	c.Close(ctx)
	select {
	case <-x.done:
	case <-time.After(10 * time.Second):
		t.Fatal("proxy did not finish")
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	want := []string{"CREATE users", "INSERT users", "SELECT users", "SELECT users", "DELETE missing_table"}
	if len(x.spans) != len(want) {
		t.Fatalf("spans %q want %q", probetest.Names(x.spans), want)
	}
	for i, w := range want {
		if x.spans[i].Name != w {
			t.Errorf("span %d %q want %q", i, x.spans[i].Name, w)
		}
	}
	if last := x.spans[len(x.spans)-1]; !last.Error || str(last, "db.response.status_code") != "42P01" {
		t.Errorf("last span %+v", last)
	}
	if ns := str(x.spans[0], "db.namespace"); ns != "postgres" {
		t.Errorf("namespace %q", ns)
	}
}
