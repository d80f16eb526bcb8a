package nodejs

import (
	"bufio"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tracer-agent/tracer-agent/internal/testenv"
)

// fakeKernel answers the handler the test decides; the real one reads the
// kernel's sigaction table (tested in e2e).
type fakeKernel struct {
	handler func(pid int) uint64
	bound   []uint32
}

func (k *fakeKernel) SigUSR1Handler(pid int) (uint64, error) { return k.handler(pid), nil }
func (k *fakeKernel) SetBinder(pid uint32) error             { k.bound = append(k.bound, pid); return nil }

func startNode(t *testing.T, script string) *exec.Cmd {
	t.Helper()
	node := testenv.RequireCommand(t, "node")
	cmd := exec.Command(node, "-e", script)
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	if !strings.HasPrefix(line, "ready") {
		t.Fatalf("node printed %q", line)
	}
	return cmd
}

func fds(t *testing.T, pid int) int {
	ents, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestAttachLoadsAndCloses: the tracker loads, the inspector's port and
// connection are gone afterwards, a second attach finds it loaded.
func TestAttachLoadsAndCloses(t *testing.T) {
	cmd := startNode(t, `require('http').createServer((q, s) => s.end('ok')).listen(0, '127.0.0.1', () => console.log('ready'))`)
	pid := cmd.Process.Pid
	h := New(nil, "/proc", nil)
	want, err := h.handlerAddr(pid)
	if err != nil {
		t.Fatal(err)
	}
	k := &fakeKernel{handler: func(int) uint64 { return want }}
	h.kernel = k
	before, _ := listeners("/proc", pid)
	nfd := fds(t, pid)
	for i := 0; i < 2; i++ {
		start := time.Now()
		if err := h.Attach(pid); err != nil {
			t.Fatalf("attach %d: %v", i, err)
		}
		t.Logf("attach %d took %v", i, time.Since(start))
		after, _ := listeners("/proc", pid)
		if len(after) != len(before) {
			t.Errorf("listening ports %v after attach, %v before", after, before)
		}
		if n := fds(t, pid); n != nfd {
			t.Errorf("%d fds after attach, %d before", n, nfd)
		}
	}
	if len(k.bound) != 2 {
		t.Errorf("SetBinder calls: %v", k.bound)
	}
}

// TestAttachRespectsOwnHandler: a process whose SIGUSR1 handler is not
// node's inspector is never signalled.
func TestAttachRespectsOwnHandler(t *testing.T) {
	cmd := startNode(t, `process.on('SIGUSR1', () => console.log('got SIGUSR1')); setInterval(() => {}, 1000); console.log('ready')`)
	pid := cmd.Process.Pid
	k := &fakeKernel{handler: func(int) uint64 { return 0x1234 }}
	h := New(k, "/proc", nil)
	err := h.Attach(pid)
	if err == nil || !strings.Contains(err.Error(), "not node's inspector handler") {
		t.Fatalf("attach: %v", err)
	}
	if len(k.bound) != 0 {
		t.Errorf("SetBinder called: %v", k.bound)
	}
}

// TestReadSym: the chunked lookup finds what the full symbol table says.
func TestReadSym(t *testing.T) {
	node := testenv.RequireCommand(t, "node")
	f, err := elf.Open(node)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, _ := f.Symbols()
	var want uint64
	for _, s := range syms {
		if s.Name == inspectorHandler {
			want = s.Value
		}
	}
	got := readSym(node)
	if got.err != nil || got.addr != want || want == 0 {
		t.Errorf("readSym = %#x, %v; symbol table: %#x", got.addr, got.err, want)
	}
	if _, err := symbolValue(f, "no_such_symbol_anywhere"); err == nil {
		t.Error("found a symbol that does not exist")
	}
}

func TestInspectPort(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		cmdline, environ string
		want             int
	}{
		{"node\x00app.js\x00", "PATH=/bin\x00", 9229},
		{"node\x00--inspect-port=9333\x00app.js\x00", "", 9333},
		{"node\x00--inspect-port\x000.0.0.0:9444\x00app.js\x00", "", 9444},
		{"node\x00app.js\x00", "NODE_OPTIONS=--max-old-space-size=100 --inspect-port=9555\x00", 9555},
		{"node\x00--inspect-port=9666\x00", "NODE_OPTIONS=--inspect-port=9555\x00", 9666},
		{"node\x00--inspect-port=banana\x00", "", 9229},
	} {
		p := filepath.Join(dir, "1")
		os.MkdirAll(p, 0o755)
		os.WriteFile(filepath.Join(p, "cmdline"), []byte(c.cmdline), 0o644)
		os.WriteFile(filepath.Join(p, "environ"), []byte(c.environ), 0o644)
		if got := inspectPort(dir, 1); got != c.want {
			t.Errorf("%q %q: port %d, want %d", c.cmdline, c.environ, got, c.want)
		}
	}
}
