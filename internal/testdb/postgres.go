// Package testdb starts throwaway database servers for tests.
package testdb

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tracer-agent/tracer-agent/internal/testenv"
)

// PG is a running throwaway PostgreSQL server.
type PG struct {
	Port int
	DSN  string // postgres://postgres@127.0.0.1:port/postgres?sslmode=disable
	Stop func()
}

// StartPostgres runs a fresh PostgreSQL cluster from Debian's packages
// (/usr/lib/postgresql/*/bin) on 127.0.0.1 with trust authentication. It
// skips the test (fails with TRACER_E2E=required) when the binaries or the
// postgres user are missing. The server is stopped in t.Cleanup.
func StartPostgres(t testing.TB) PG {
	t.Helper()
	bin, err := pgBinDir()
	if err != nil {
		pgSkip(t, err.Error())
	}
	// initdb and postgres refuse to run as root: run them as "postgres".
	var asUser []string
	var uid, gid int = -1, -1
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			pgSkip(t, "no postgres user to run the server as")
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		asUser = []string{"runuser", "-u", "postgres", "--"}
		if _, err := exec.LookPath("runuser"); err != nil {
			pgSkip(t, "runuser not on PATH")
		}
	}
	dir, err := os.MkdirTemp("", "testdb-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if uid >= 0 {
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(dir, "data")
	pgCmd := func(name string, args ...string) *exec.Cmd {
		full := append(append(append([]string(nil), asUser...), filepath.Join(bin, name)), args...)
		c := exec.Command(full[0], full[1:]...)
		c.Dir = dir
		c.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
		return c
	}
	if out, err := pgCmd("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	srv := pgCmd("postgres", "-D", data, "-p", strconv.Itoa(port), "-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+dir, "-c", "fsync=off", "-c", "logging_collector=off")
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	srv.Stdout, srv.Stderr = logf, logf
	srv.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := srv.Start(); err != nil {
		t.Fatalf("postgres: %v", err)
	}
	done := make(chan struct{})
	go func() { srv.Wait(); close(done) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		// SIGINT is PostgreSQL's "fast shutdown"; the process group also
		// holds the runuser wrapper.
		syscall.Kill(-srv.Process.Pid, syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-srv.Process.Pid, syscall.SIGKILL)
			<-done
		}
		logf.Close()
	}
	t.Cleanup(stop)
	if err := pgWaitReady(port, done); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
		stop()
		t.Fatalf("postgres did not start: %v\n%s", err, log)
	}
	return PG{
		Port: port,
		DSN:  fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port),
		Stop: stop,
	}
}

func pgSkip(t testing.TB, reason string) {
	t.Helper()
	if testenv.Required() {
		t.Fatalf("PostgreSQL tests cannot run (TRACER_E2E=required): %s", reason)
	}
	t.Skipf("PostgreSQL tests need %s (set TRACER_E2E=required to make this a failure)", reason)
}

// pgBinDir picks the newest installed server version.
func pgBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	var ok []string
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			ok = append(ok, d)
		}
	}
	if len(ok) == 0 {
		return "", fmt.Errorf("PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb; apt-get install postgresql)")
	}
	sort.Slice(ok, func(i, j int) bool { return pgVersion(ok[i]) < pgVersion(ok[j]) })
	return ok[len(ok)-1], nil
}

func pgVersion(binDir string) int {
	v, _ := strconv.Atoi(strings.Split(filepath.Base(filepath.Dir(binDir)), ".")[0])
	return v
}

// pgWaitReady waits until a trust-authenticated startup reaches
// ReadyForQuery ("the database system is starting up" is an ErrorResponse),
// or the server process exits.
func pgWaitReady(port int, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	params := "user\x00postgres\x00database\x00postgres\x00\x00"
	startup := binary.BigEndian.AppendUint32(nil, uint32(8+len(params)))
	startup = binary.BigEndian.AppendUint32(startup, 196608)
	startup = append(startup, params...)
	for {
		select {
		case <-exited:
			return fmt.Errorf("server exited")
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if pgTryStartup(addr, startup) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func pgTryStartup(addr string, startup []byte) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write(startup); err != nil {
		return false
	}
	hdr := make([]byte, 5)
	for {
		if _, err := io.ReadFull(c, hdr); err != nil {
			return false
		}
		switch hdr[0] {
		case 'Z':
			c.Write([]byte{'X', 0, 0, 0, 4}) // Terminate
			return true
		case 'E':
			return false
		}
		n := int(binary.BigEndian.Uint32(hdr[1:])) - 4
		if n < 0 || n > 1<<20 {
			return false
		}
		if _, err := io.CopyN(io.Discard, c, int64(n)); err != nil {
			return false
		}
	}
}
