package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tracer-agent/tracer-agent/internal/testenv"
	"github.com/tracer-agent/tracer-agent/internal/testnginx"
)

// child is a started process whose combined output is kept in memory
// (never echoed: the bench prints only its table).
type child struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
	err  error
}

func (c *child) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Write(b)
}

func (c *child) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func startChild(env []string, name string, args ...string) (*child, error) {
	c := &child{cmd: exec.Command(name, args...), done: make(chan struct{})}
	c.cmd.Env = append(os.Environ(), env...)
	c.cmd.Stdout, c.cmd.Stderr = c, c
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { c.err = c.cmd.Wait(); close(c.done) }()
	return c, nil
}

// waitFor waits until the output contains substr and returns the rest of
// that line.
func (c *child) waitFor(substr string, timeout time.Duration) (string, error) {
	deadline := time.After(timeout)
	find := func() (string, bool) {
		out := c.output()
		if i := strings.Index(out, substr); i >= 0 {
			rest := out[i+len(substr):]
			if j := strings.IndexByte(rest, '\n'); j >= 0 {
				return rest[:j], true
			}
		}
		return "", false
	}
	for {
		if line, ok := find(); ok {
			return line, nil
		}
		select {
		case <-c.done:
			if line, ok := find(); ok { // printed just before exiting
				return line, nil
			}
			return "", fmt.Errorf("%s exited (%v) before printing %q:\n%s", c.cmd.Path, c.err, substr, tail(c.output()))
		case <-deadline:
			return "", fmt.Errorf("%s did not print %q within %v:\n%s", c.cmd.Path, substr, timeout, tail(c.output()))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// kill ends the process group (servers may fork, e.g. Python threads do not,
// but be safe) and reaps it.
func (c *child) kill() {
	select {
	case <-c.done: // already reaped: its pid may belong to someone else now
		return
	default:
	}
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	<-c.done
}

// interrupt sends SIGINT and waits for a clean exit.
func (c *child) interrupt(timeout time.Duration) error {
	_ = c.cmd.Process.Signal(os.Interrupt)
	select {
	case <-c.done:
		return c.err
	case <-time.After(timeout):
		c.kill()
		return fmt.Errorf("%s did not exit within %v of SIGINT", c.cmd.Path, timeout)
	}
}

// server is a started front or back server.
type server struct {
	*child
	port int
}

func (s server) url(path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", s.port, path) }

// startServer starts the e2e test server of lang ("go" or "python").
func startServer(lang, goBin, service string) (server, error) {
	env := []string{"OTEL_SERVICE_NAME=" + service}
	var c *child
	var err error
	switch lang {
	case "go":
		c, err = startChild(env, goBin, "127.0.0.1:0")
	case "python":
		c, err = startChild(env, "python3", "e2e/testdata/pyserver.py", "0")
	case "node":
		c, err = startChild(env, "node", "e2e/testdata/nodechain/server.js", "0", "http")
	case "fastapi":
		c, err = startChild(env, "/usr/bin/python3", "e2e/testdata/pychain.py", "0", "fastapi")
	default:
		return server{}, fmt.Errorf("no server for %q", lang)
	}
	if err != nil {
		return server{}, err
	}
	line, err := c.waitFor("listening ", 10*time.Second)
	if err != nil {
		c.kill()
		return server{}, err
	}
	port, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		c.kill()
		return server{}, fmt.Errorf("%s server printed %q", lang, line)
	}
	return server{child: c, port: port}, nil
}

// startNginx starts nginx (a master and its workers, internal/testnginx)
// in front of 127.0.0.1:upstream with upstream keep-alive.
func startNginx(upstream int) (server, error) {
	dir, err := os.MkdirTemp("", "bench-nginx-")
	if err != nil {
		return server{}, err
	}
	port, err := testenv.FreePort()
	if err != nil {
		return server{}, err
	}
	conf, err := testnginx.WriteConfig(dir, port, upstream, true)
	if err != nil {
		return server{}, err
	}
	c, err := startChild(nil, "nginx", "-c", conf, "-p", dir)
	if err != nil {
		return server{}, err
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			conn.Close()
			if len(testnginx.Children(c.pid())) == testnginx.Workers {
				return server{child: c, port: port}, nil
			}
		}
	}
	c.kill()
	return server{}, fmt.Errorf("nginx did not start:\n%s", tail(c.output()))
}

// procs are the pids whose CPU a workload's front costs: nginx's work is
// its workers'.
func (s server) procs() []int {
	if kids := testnginx.Children(s.pid()); len(kids) > 0 {
		return append(kids, s.pid())
	}
	return []int{s.pid()}
}

// agentRun is a running tracer-agent and what was measured of it.
type agentRun struct {
	*child
	readyCPU time.Duration // CPU spent loading, excluded from per-span cost
}

// agentStats is what a stopped agent reports.
type agentStats struct {
	cpu       time.Duration // utime+stime from ready to exit
	peakRSS   int64
	ringDrops int64
}

// startAgent runs the agent on pids (with extra flags), exporting to rcv,
// and waits until it is attached.
func startAgent(bin string, rcv *receiver, extra []string, pids ...int) (*agentRun, error) {
	args := append([]string{"--output", "otlp", "--stats-interval", "0", "--log-level", "info"}, extra...)
	for _, p := range pids {
		args = append(args, "--pid", strconv.Itoa(p))
	}
	c, err := startChild(rcv.env(), bin, args...)
	if err != nil {
		return nil, err
	}
	if _, err := c.waitFor("msg=ready", 60*time.Second); err != nil {
		c.kill()
		return nil, err
	}
	cpu, err := cpuTime(c.pid())
	if err != nil {
		c.kill()
		return nil, err
	}
	return &agentRun{child: c, readyCPU: cpu}, nil
}

var (
	ringDropsRE = regexp.MustCompile(`msg=final .*\bring_drops=(\d+)`)
	queueFullRE = regexp.MustCompile(`msg=exported .*\bqueue_full=(\d+)`)
)

// stop reads the peak RSS, sends SIGINT so the agent flushes every pending
// span, and parses its final counters.
func (a *agentRun) stop() (agentStats, error) {
	var st agentStats
	rss, rssErr := peakRSS(a.pid())
	if err := a.interrupt(60 * time.Second); err != nil {
		return st, fmt.Errorf("agent: %v\n%s", err, tail(a.output()))
	}
	if rssErr != nil {
		return st, rssErr
	}
	st.peakRSS = rss
	ps := a.cmd.ProcessState
	st.cpu = ps.UserTime() + ps.SystemTime() - a.readyCPU
	m := ringDropsRE.FindStringSubmatch(a.output())
	if m == nil {
		return st, errors.New("agent printed no 'msg=final ... ring_drops=' line:\n" + tail(a.output()))
	}
	st.ringDrops, _ = strconv.ParseInt(m[1], 10, 64)
	// Spans the export queue refused are lost the same way: count them too.
	if m := queueFullRE.FindStringSubmatch(a.output()); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		st.ringDrops += n
	}
	return st, nil
}

// tail is the last lines of a process's output, for error messages.
func tail(s string) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}

var _ io.Writer = (*child)(nil)

// logAgent prints, for -v, an agent's final counters and warnings: the
// first place to look when spans/req is not what it should be.
func logAgent(workload, out string, spans, requests int64) {
	fmt.Fprintf(os.Stderr, "\n%s: %d spans / %d requests\n", workload, spans, requests)
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "msg=final") || strings.Contains(line, "msg=exported") || strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			fmt.Fprintln(os.Stderr, "  "+line)
		}
	}
}
