// Package e2e runs the real agent binary against real servers and clients
// in several languages and checks the spans it exports over OTLP/HTTP.
// Tests load eBPF programs: they run as root (TRACER_E2E=required in CI
// turns a missing prerequisite into a failure).
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tracer-agent/tracer-agent/internal/otlptest"
	"github.com/tracer-agent/tracer-agent/internal/testenv"
)

var (
	binDir     string // built binaries
	agentBin   string
	goServer   string
	sqlApp     string
	kafkaApp   string
	grpcApp    string
	buildError error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tracer-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	agentBin = filepath.Join(dir, "tracer-agent")
	goServer = filepath.Join(dir, "e2e-goserver")
	sqlApp = filepath.Join(dir, "e2e-sqlapp")
	kafkaApp = filepath.Join(dir, "e2e-kafkaapp")
	grpcApp = filepath.Join(dir, "e2e-grpcapp")
	for _, b := range [][2]string{{agentBin, "../cmd/tracer-agent"}, {goServer, "./testdata/goserver"},
		{sqlApp, "./apps/sqlapp"}, {kafkaApp, "./apps/kafkaapp"}, {grpcApp, "./apps/grpcapp"}} {
		out, err := exec.Command("go", "build", "-o", b[0], b[1]).CombinedOutput()
		if err != nil {
			buildError = fmt.Errorf("go build %s: %v\n%s", b[1], err, out)
			break
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func requireE2E(t *testing.T) {
	t.Helper()
	testenv.RequireBPF(t)
	if buildError != nil {
		t.Fatal(buildError)
	}
}

// proc is a started child process with its output captured.
type proc struct {
	cmd *exec.Cmd
	mu  sync.Mutex
	out bytes.Buffer
}

func (p *proc) Pid() int { return p.cmd.Process.Pid }

func (p *proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

type lockedWriter struct{ p *proc }

func (w lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.out.Write(b)
}

// start runs name with args and env additions, killed at test end.
func start(t *testing.T, env []string, name string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(name, args...)}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = lockedWriter{p}, lockedWriter{p}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		_ = p.cmd.Wait()
	})
	return p
}

// waitOutput waits until the process printed a line containing substr.
func (p *proc) waitOutput(t *testing.T, substr string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		out := p.Output()
		if i := strings.Index(out, substr); i >= 0 {
			line := out[i:]
			if j := strings.IndexByte(line, '\n'); j >= 0 {
				return line[:j]
			}
		}
		if p.cmd.ProcessState != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not print %q within %v; output:\n%s", p.cmd.Path, substr, timeout, p.Output())
	return ""
}

// server is a started test server.
type server struct {
	*proc
	Lang string
	Port int
	// Proxy: a gateway passing every path on to the next hop (nginx), not
	// a service with a /call endpoint.
	Proxy bool
}

func (s server) URL(path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", s.Port, path) }

// startServer starts the e2e server of lang ("go", "python", "node") on
// port (0: any) with OTEL_SERVICE_NAME=service.
func startServer(t *testing.T, lang, service string, port int) server {
	t.Helper()
	env := []string{"OTEL_SERVICE_NAME=" + service}
	var p *proc
	ps := strconv.Itoa(port)
	switch lang {
	case "go":
		p = start(t, env, goServer, "127.0.0.1:"+ps)
	case "python":
		p = start(t, env, testenv.RequireCommand(t, "python3"), "testdata/pyserver.py", ps)
	case "node":
		p = start(t, env, testenv.RequireCommand(t, "node"), "testdata/nodeserver.js", ps)
	default:
		t.Fatalf("no server for %q", lang)
	}
	line := p.waitOutput(t, "listening ", 10*time.Second)
	got, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "listening ")))
	if err != nil {
		t.Fatalf("%s server printed %q", lang, line)
	}
	return server{proc: p, Lang: lang, Port: got}
}

// agent is a running tracer-agent.
type agent struct {
	*proc
	stopped bool
}

// startAgent runs the agent with args, exporting to rcv, and waits until
// its probes are attached.
func startAgent(t *testing.T, rcv *otlptest.Receiver, args ...string) *agent {
	t.Helper()
	return startAgentEnv(t, rcv, nil, args...)
}

// startAgentEnv is startAgent with extra environment (e.g. a sampler).
func startAgentEnv(t *testing.T, rcv *otlptest.Receiver, extra []string, args ...string) *agent {
	t.Helper()
	env := append(append(rcv.Env(), "OTEL_BSP_SCHEDULE_DELAY=100"), extra...)
	a := &agent{proc: start(t, env, agentBin, append([]string{"--log-level", "debug"}, args...)...)}
	a.waitOutput(t, "msg=ready", 30*time.Second)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", a.Output())
		}
	})
	return a
}

// stop sends SIGINT and waits for a clean exit.
func (a *agent) stop(t *testing.T) {
	t.Helper()
	if a.stopped {
		return
	}
	a.stopped = true
	_ = a.cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- a.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("agent exited with %v; log:\n%s", err, a.Output())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("agent did not exit within 20s of SIGINT; log:\n%s", a.Output())
	}
}

// curl runs curl with args and returns its stdout.
func curl(t *testing.T, args ...string) string {
	t.Helper()
	bin := testenv.RequireCommand(t, "curl")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, append([]string{"-sS", "--max-time", "15"}, args...)...).Output()
	if err != nil {
		t.Fatalf("curl %v: %v", args, err)
	}
	return string(out)
}

// run runs a client program to completion and returns its output.
func run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// lines reads non-empty lines.
func lines(r io.Reader) []string {
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if s := strings.TrimSpace(sc.Text()); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// listenTCP accepts loopback connections until the test ends, handling
// each on its own goroutine.
func listenTCP(t *testing.T, handle func(net.Conn)) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
	return ln
}
