package mysql

import (
	"database/sql"
	"net"
	"sync"
	"testing"

	_ "github.com/go-sql-driver/mysql"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/tracer-agent/tracer-agent/internal/testdb"
	"github.com/tracer-agent/tracer-agent/probes/probe"
	"github.com/tracer-agent/tracer-agent/probes/probe/probetest"
	sqlprobe "github.com/tracer-agent/tracer-agent/probes/sql"
)

// TestLiveMariaDB runs go-sql-driver/mysql against a scratch MariaDB
// through a TCP relay that hands every read to the parser, as the kernel
// capture would (client view: client→server = Send).
func TestLiveMariaDB(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a MariaDB server")
	}
	m := testdb.StartMariaDB(t)
	d := newDriver(sqlprobe.Options{})
	var mu sync.Mutex
	addr := liveRelay(t, m.Port, func(dir probe.Direction, b []byte) {
		mu.Lock()
		defer mu.Unlock()
		d.send(dir, b)
	})
	db, err := sql.Open("mysql", "root@tcp("+addr+")/test?interpolateParams=false")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("CREATE TABLE kv (k VARCHAR(10) PRIMARY KEY, v INT)"); err != nil {
		t.Fatal(err)
	}
	ins, err := db.Prepare("INSERT INTO kv VALUES (?, ?)")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b", "c"} {
		if _, err := ins.Exec(k, 1); err != nil {
			t.Fatal(err)
		}
	}
	ins.Close()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM kv WHERE v = ?", 1).Scan(&n); err != nil || n != 3 {
		t.Fatalf("count %d %v", n, err)
	}
	if _, err := db.Exec("SELECT * FROM nope"); err == nil {
		t.Fatal("want an error")
	}
	db.Close()

	mu.Lock()
	defer mu.Unlock()
	d.Close()
	names := map[string]int{}
	for _, sp := range d.Spans {
		names[sp.Name]++
		probetest.WantStr(t, sp, semconv.DBSystemNameKey, "mariadb")
		probetest.WantStr(t, sp, semconv.DBNamespaceKey, "test")
		if sp.Name == "SELECT nope" {
			if !sp.Error {
				t.Errorf("SELECT nope: no error")
			}
			probetest.WantStr(t, sp, semconv.DBResponseStatusCodeKey, "1146")
		}
		if sp.Name == "SELECT kv" {
			probetest.WantInt(t, sp, semconv.DBResponseReturnedRowsKey, 1)
		}
	}
	if names["CREATE kv"] != 1 || names["INSERT kv"] != 3 || names["SELECT kv"] != 1 || names["SELECT nope"] != 1 {
		t.Errorf("spans %v", names)
	}
}

// liveRelay listens on 127.0.0.1 and relays each connection to the server,
// reporting every read with its direction as seen by the client.
func liveRelay(t *testing.T, port int, seen func(probe.Direction, []byte)) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", itoa(port)))
			if err != nil {
				c.Close()
				continue
			}
			pipe := func(dst, src net.Conn, dir probe.Direction) {
				defer wg.Done()
				defer dst.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := src.Read(buf)
					if n > 0 {
						seen(dir, buf[:n])
						if _, werr := dst.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}
			wg.Add(2)
			go pipe(s, c, probe.Send)
			go pipe(c, s, probe.Recv)
		}
	}()
	return l.Addr().String()
}

func itoa(n int) string { return sqlprobe.Itoa(n) }
