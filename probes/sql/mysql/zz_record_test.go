package mysql

// Throwaway recorder (deleted after use): RECORD=1 go test -run TestRecord

import (
	"database/sql"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	_ "github.com/go-sql-driver/mysql"

	"github.com/tracer-agent/tracer-agent/internal/testdb"
)

type rec struct {
	dir  byte
	data []byte
}

type proxy struct {
	l    net.Listener
	mu   sync.Mutex
	recs []rec
	wg   sync.WaitGroup
}

func startProxy(t *testing.T, target string) *proxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.wg.Add(2)
			pipe := func(dst, src net.Conn, dir byte) {
				defer p.wg.Done()
				buf := make([]byte, 65536)
				for {
					n, err := src.Read(buf)
					if n > 0 {
						p.mu.Lock()
						p.recs = append(p.recs, rec{dir, append([]byte(nil), buf[:n]...)})
						dst.Write(buf[:n])
						p.mu.Unlock()
					}
					if err != nil {
						if tc, ok := dst.(*net.TCPConn); ok {
							tc.CloseWrite()
						}
						return
					}
				}
			}
			go pipe(s, c, '>')
			go pipe(c, s, '<')
		}
	}()
	return p
}

func (p *proxy) save(t *testing.T, name string) {
	p.l.Close()
	p.wg.Wait()
	var bin []byte
	f, _ := os.Create(filepath.Join("testdata", name+".txt"))
	for _, r := range p.recs {
		var h [5]byte
		h[0] = r.dir
		binary.BigEndian.PutUint32(h[1:], uint32(len(r.data)))
		bin = append(bin, h[:]...)
		bin = append(bin, r.data...)
		fmt.Fprintf(f, "%c %d %s\n", r.dir, len(r.data), strconv.Quote(string(r.data)))
	}
	f.Close()
	os.WriteFile(filepath.Join("testdata", name+".bin"), bin, 0o644)
}

func TestRecord(t *testing.T) {
	if os.Getenv("RECORD") == "" {
		t.Skip()
	}
	os.MkdirAll("testdata", 0o755)
	m := testdb.StartMariaDB(t)
	target := fmt.Sprintf("127.0.0.1:%d", m.Port)
	setup, err := sql.Open("mysql", m.DSN+"?multiStatements=true")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := setup.Exec("CREATE TABLE users(id INT PRIMARY KEY, name VARCHAR(40), email VARCHAR(80)); " +
		"CREATE TABLE items(id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(40), price DECIMAL(8,2)); " +
		"INSERT INTO users VALUES (1,'alice','alice@example.com'),(2,'bob','bob@example.com'),(3,'carol','carol@example.com')"); err != nil {
		t.Fatal(err)
	}
	setup.Close()

	// 1. mariadb CLI
	p := startProxy(t, target)
	port := strconv.Itoa(p.l.Addr().(*net.TCPAddr).Port)
	out, err := exec.Command("mariadb", "--no-defaults", "-h127.0.0.1", "-P"+port, "-uroot", "--force", "test", "-e",
		"SELECT id, name FROM users WHERE email = 'bob@example.com'; INSERT INTO items(name, price) VALUES ('pen', 1.50), ('ink', 3.25); SELECT * FROM missing_table; USE mysql; SELECT COUNT(*) FROM db; UPDATE test.users SET name = 'Al' WHERE id = 1;").CombinedOutput()
	t.Logf("cli: %v\n%s", err, out)
	p.save(t, "mariadb-cli")

	// 2. go-sql-driver/mysql
	p = startProxy(t, target)
	port = strconv.Itoa(p.l.Addr().(*net.TCPAddr).Port)
	db, err := sql.Open("mysql", "root@tcp(127.0.0.1:"+port+")/test?interpolateParams=false&multiStatements=true")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	ins, err := db.Prepare("INSERT INTO items(name, price) VALUES (?, ?)")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"cup", "mug"} {
		if _, err := ins.Exec(n, 4.5); err != nil {
			t.Fatal(err)
		}
	}
	ins.Close()
	sel, err := db.Prepare("SELECT id, name FROM users WHERE id > ?")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []int{0, 2} {
		rows, err := sel.Query(id)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
		}
		rows.Close()
	}
	sel.Close()
	if _, err := db.Prepare("SELECT * FROM missing_table WHERE id = ?"); err == nil {
		t.Fatal("want error")
	}
	rows, err := db.Query("SELECT name FROM users; SELECT COUNT(*) FROM items")
	if err != nil {
		t.Fatal(err)
	}
	for {
		for rows.Next() {
		}
		if !rows.NextResultSet() {
			break
		}
	}
	rows.Close()
	db.Close()
	p.save(t, "go-mysql")

	// 3. pymysql
	p = startProxy(t, target)
	port = strconv.Itoa(p.l.Addr().(*net.TCPAddr).Port)
	script := `
import pymysql
c = pymysql.connect(host="127.0.0.1", port=` + port + `, user="root", database="test")
cur = c.cursor()
cur.execute("SELECT id, name, email FROM users WHERE name = %s", ("carol",))
cur.fetchall()
cur.execute("INSERT INTO items(name, price) VALUES (%s, %s)", ("box", 9.99))
c.commit()
try:
    cur.execute("DELETE FROM missing_table WHERE id = 1")
except Exception as e:
    print(e)
c.select_db("mysql")
cur.execute("SELECT COUNT(*) FROM user")
cur.fetchall()
c.ping()
c.close()
`
	out, err = exec.Command("/usr/bin/python3", "-c", script).CombinedOutput()
	t.Logf("py: %v\n%s", err, out)
	p.save(t, "pymysql")
}
