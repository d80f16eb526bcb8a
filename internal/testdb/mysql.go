// MariaDB for tests that need genuine MySQL-protocol bytes or end-to-end
// traffic (postgres.go holds the package documentation).

package testdb

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/tracer-agent/tracer-agent/internal/testenv"
)

// MariaDB is a running throwaway MariaDB server listening on 127.0.0.1.
type MariaDB struct {
	Port int
	// DSN is a go-sql-driver/mysql DSN for root (no password) on database
	// test over TCP.
	DSN string
	// Socket is the server's unix socket (for the mariadb CLI: --socket).
	Socket string
	// Stop shuts the server down; t.Cleanup calls it too. Idempotent.
	Stop func()
}

// StartMariaDB initialises a data directory, starts mariadbd on a free port
// and waits until it accepts connections. It skips the test (fails with
// TRACER_E2E=required) when the MariaDB binaries are missing.
func StartMariaDB(t testing.TB) MariaDB {
	t.Helper()
	installDB := testenv.RequireCommand(t, "mariadb-install-db")
	server := myFindServer(t)

	// Not t.TempDir(): unix socket paths are limited to ~108 bytes and
	// test names make TempDir paths long.
	dir, err := os.MkdirTemp("", "mdb")
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	sock := filepath.Join(dir, "s")
	out, err := exec.Command(installDB, "--no-defaults", "--datadir="+data, "--user=root",
		"--auth-root-authentication-method=normal", "--skip-test-db").CombinedOutput()
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("mariadb-install-db: %v\n%s", err, myTail(out))
	}
	port, err := testenv.FreePort()
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	cmd := exec.Command(server, "--no-defaults", "--datadir="+data, "--socket="+sock,
		fmt.Sprintf("--port=%d", port), "--bind-address=127.0.0.1", "--user=root",
		"--skip-name-resolve", "--pid-file="+filepath.Join(dir, "pid"),
		"--log-error="+filepath.Join(dir, "error.log"), "--innodb-buffer-pool-size=16M")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		os.RemoveAll(dir)
		t.Fatalf("start mariadbd: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(exited) }()

	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		os.RemoveAll(dir)
	}
	t.Cleanup(stop)

	if err := myBootstrap(sock, exited); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		stop()
		t.Fatalf("mariadb not ready: %v\n%s", err, myTail(log))
	}
	return MariaDB{
		Port:   port,
		DSN:    fmt.Sprintf("root@tcp(127.0.0.1:%d)/test", port),
		Socket: sock,
		Stop:   stop,
	}
}

// myFindServer locates mariadbd, which Debian installs in /usr/sbin (often
// not on a test's PATH).
func myFindServer(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("mariadbd"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/mariadbd", "/usr/libexec/mariadbd", "/usr/sbin/mysqld"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return testenv.RequireCommand(t, "mariadbd") // skips or fails
}

// myBootstrap waits for the unix socket to accept root, then creates the
// test database and lets root in over TCP from 127.0.0.1 without password
// (install-db only creates root@localhost, which is socket-only with
// --skip-name-resolve).
func myBootstrap(sock string, exited <-chan struct{}) error {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr = "root", "unix", sock
	cfg.MultiStatements = true
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return err
	}
	defer db.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = db.PingContext(ctx)
		cancel()
		if err == nil {
			break
		}
		select {
		case <-exited:
			return fmt.Errorf("mariadbd exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, err = db.Exec("CREATE DATABASE IF NOT EXISTS test; " +
		"CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; " +
		"GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; FLUSH PRIVILEGES")
	return err
}

// myTail keeps the end of a long log for a failure message.
func myTail(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 4000 {
		s = "…" + s[len(s)-4000:]
	}
	return s
}
