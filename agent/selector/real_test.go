package selector

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tracer-agent/tracer-agent/agent/procinfo"
)

// startChild runs a command for the test's duration and returns its pid
// and its stdout (for children that report something, like a port).
func startChild(t *testing.T, name string, args ...string) (uint32, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(name, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start %s: %v", name, err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return uint32(cmd.Process.Pid), bufio.NewReader(out)
}

// readLine reads one line of a child's output, failing after a timeout.
func readLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	ch := make(chan string, 1)
	go func() { s, _ := r.ReadString('\n'); ch <- strings.TrimSpace(s) }()
	select {
	case s := <-ch:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("child said nothing")
		return ""
	}
}

// waitExe waits until a freshly started child has exec'd into want (its
// exe link changes from the test binary), so scans see the program.
func waitExe(t *testing.T, pid uint32, want string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if exe, _ := os.Readlink("/proc/" + strconv.Itoa(int(pid)) + "/exe"); filepath.Base(exe) == want {
			return
		}
	}
	t.Fatalf("pid %d never exec'd %s", pid, want)
}

func lookPython(t *testing.T) string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	return py
}

func TestRealExe(t *testing.T) {
	sleepPath, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep")
	}
	real, err := filepath.EvalSymlinks(sleepPath)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := startChild(t, sleepPath, "30")
	waitExe(t, pid, filepath.Base(real))

	for _, glob := range []string{"sleep", "sl?ep", filepath.Base(real), filepath.Join(filepath.Dir(real), "*")} {
		s := New("/proc", Criteria{ExeGlobs: []string{glob}})
		got, err := s.Initial()
		if err != nil || !slices.Contains(got, pid) {
			t.Errorf("Initial(--exe %q) = %v, %v; want it to contain %d", glob, got, err, pid)
		}
		if got, _ := s.Rescan(); !slices.Contains(got, pid) {
			t.Errorf("Rescan(--exe %q) lacks %d", glob, pid)
		}
		if !s.OnExec(pid, procinfo.Exec{}) {
			t.Errorf("OnExec(--exe %q) = false", glob)
		}
		if slices.Contains(got, uint32(os.Getpid())) {
			t.Error("selected the test process itself")
		}
	}
	s := New("/proc", Criteria{ExeGlobs: []string{"no-such-program-xyz"}})
	if s.OnExec(pid, procinfo.Exec{}) {
		t.Error("OnExec matched a foreign glob")
	}
	// Explicit pid.
	got, err := New("/proc", Criteria{PIDs: []uint32{pid}}).Initial()
	if err != nil || !slices.Equal(got, []uint32{pid}) {
		t.Errorf("Initial(--pid) = %v, %v", got, err)
	}
}

func TestRealScript(t *testing.T) {
	py := lookPython(t)
	script := filepath.Join(t.TempDir(), "frontend.py")
	if err := os.WriteFile(script, []byte("import time\nprint('up', flush=True)\ntime.sleep(30)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pid, out := startChild(t, py, "-u", script)
	readLine(t, out)
	s := New("/proc", Criteria{ExeGlobs: []string{"frontend.py"}})
	got, err := s.Initial()
	if err != nil || !slices.Equal(got, []uint32{pid}) {
		t.Errorf("Initial(--exe frontend.py) = %v, %v; want [%d]", got, err, pid)
	}
	if !s.OnExec(pid, procinfo.Exec{}) {
		t.Error("OnExec = false")
	}
}

func TestRealListen(t *testing.T) {
	py := lookPython(t)
	pid, out := startChild(t, py, "-c", `
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
time.sleep(30)
`)
	port, err := strconv.ParseUint(readLine(t, out), 10, 16)
	if err != nil {
		t.Fatalf("port: %v", err)
	}
	s := New("/proc", Criteria{Ports: []uint16{uint16(port)}})
	got, err := s.Initial()
	if err != nil || !slices.Equal(got, []uint32{pid}) {
		t.Errorf("Initial(--port %d) = %v, %v; want [%d]", port, got, err, pid)
	}
	if got, err := s.Rescan(); err != nil || !slices.Equal(got, []uint32{pid}) {
		t.Errorf("Rescan(--port %d) = %v, %v", port, got, err)
	}
	if !s.OnListen(pid, uint16(port)) || s.OnListen(pid, uint16(port)+1) {
		t.Error("OnListen")
	}

	// IPv6 listener, if the host has IPv6.
	pid6, out6 := startChild(t, py, "-c", `
import socket, time
try:
    s = socket.socket(socket.AF_INET6)
    s.bind(("::1", 0))
    s.listen()
    print(s.getsockname()[1], flush=True)
except OSError:
    print("none", flush=True)
time.sleep(30)
`)
	line := readLine(t, out6)
	if line == "none" {
		t.Log("no IPv6")
		return
	}
	port6, err := strconv.ParseUint(line, 10, 16)
	if err != nil {
		t.Fatalf("port: %v", err)
	}
	got, err = New("/proc", Criteria{Ports: []uint16{uint16(port6)}}).Rescan()
	if err != nil || !slices.Equal(got, []uint32{pid6}) {
		t.Errorf("Rescan(--port %d, IPv6) = %v, %v; want [%d]", port6, got, err, pid6)
	}
}

// TestPIDSelectsExistingDescendants: --pid of a pre-fork master selects the
// children and grandchildren it forked before the agent started.
func TestPIDSelectsExistingDescendants(t *testing.T) {
	// sh forks a sleep and a subshell, which forks a grandchild sleep and
	// prints its pid.
	pid, out := startChild(t, "sh", "-c", `sleep 60 & (sleep 60 & echo $! ; wait) & wait`)
	line := readLine(t, out)
	n, err := strconv.ParseUint(line, 10, 32)
	if err != nil {
		t.Fatalf("child printed %q", line)
	}
	grand := uint32(n)
	kids, err := procinfo.Descendants("", []uint32{pid})
	if err != nil || len(kids) != 3 {
		t.Fatalf("descendants of %d: %v (%v), want the sleep, the subshell and its sleep", pid, kids, err)
	}
	got, err := New("", Criteria{PIDs: []uint32{pid}}).Initial()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range append([]uint32{pid, grand}, kids...) {
		if !slices.Contains(got, want) {
			t.Errorf("Initial() = %v, missing %d (root %d, grandchild %d)", got, want, pid, grand)
		}
	}
	if slices.Contains(got, uint32(os.Getpid())) {
		t.Errorf("Initial() = %v includes the test process", got)
	}
}
