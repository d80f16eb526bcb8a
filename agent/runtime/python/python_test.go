package python

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/tracer-agent/tracer-agent/internal/testenv"
)

// startPy runs script on interpreter py until the test ends; it prints
// "ready" once its threads are up.
func startPy(t *testing.T, py, script string) int {
	t.Helper()
	cmd := exec.Command(testenv.RequireCommand(t, py), "-c", script)
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if line, _ := bufio.NewReader(out).ReadString('\n'); !strings.HasPrefix(line, "ready") {
		t.Fatalf("%s printed %q", py, line)
	}
	return cmd.Process.Pid
}

// A thread inside a copied Context (ts->context set) and one without.
const threads = `
import contextvars, threading, time
ev = threading.Event()
def inside(): ev.set(); time.sleep(60)
threading.Thread(target=lambda: contextvars.copy_context().run(inside), daemon=True).start()
threading.Thread(target=lambda: time.sleep(60), daemon=True).start()
ev.wait(); print("ready", flush=True); time.sleep(60)
`

// Inspect on the interpreters here: Debian's (stripped, static, non-PIE)
// and self-built ones (shared libpython) of each supported minor version;
// the live thread list checks each layout.
func TestInspectInterpreters(t *testing.T) {
	for py, want := range map[string]string{
		"/usr/bin/python3":                         "3.11.",
		"/root/.pyenv/versions/3.11.7/bin/python3": "3.11.7",
		"/root/.pyenv/versions/3.12.1/bin/python3": "3.12.1",
		"/root/.pyenv/versions/3.13.0/bin/python3": "3.13.0",
	} {
		t.Run(py, func(t *testing.T) {
			pid := startPy(t, py, threads)
			p, err := Inspect("/proc", pid)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(p.Version, want) || p.CopyOffset == 0 || p.FreeOffset == 0 || p.Runtime == 0 {
				t.Errorf("%+v, want version %s and every address", p, want)
			}
			shared := strings.Contains(py, "pyenv")
			if strings.Contains(p.File, "libpython") != shared {
				t.Errorf("file %s: the interpreter is in libpython: %v", p.File, shared)
			}
		})
	}
}

// Older interpreters (no Py_Version, another layout) and other programs
// are refused; a wrong layout fails the live check (a context offset
// that reads NULL on every thread cannot be told from one: it would find
// no binding, so nothing links through it).
func TestInspectRefuses(t *testing.T) {
	pid := startPy(t, "/root/.pyenv/versions/3.10.13/bin/python3", `import time; print("ready", flush=True); time.sleep(60)`)
	if _, err := Inspect("/proc", pid); err == nil || errors.Is(err, ErrNotPython) {
		t.Errorf("3.10: %v, want a clear refusal", err)
	}
	sleep := exec.Command("sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleep.Process.Kill(); sleep.Wait() }()
	if _, err := Inspect("/proc", sleep.Process.Pid); !errors.Is(err, ErrNotPython) {
		t.Errorf("sleep: %v, want ErrNotPython", err)
	}

	pid = startPy(t, "/usr/bin/python3", threads)
	saved := layouts
	defer func() { layouts = saved }()
	for name, l := range map[string]layout{
		"tid":     {interpHead: 0x28, threadsHead: 0x10, next: 0x8, tid: 0x98, ctx: 0xe0, ctxVer: 0xe8},
		"context": {interpHead: 0x28, threadsHead: 0x10, next: 0x8, tid: 0xa0, ctx: 0x10, ctxVer: 0xe8}, // the interpreter pointer
	} {
		layouts = map[[2]int]layout{{3, 11}: l}
		if _, err := Inspect("/proc", pid); err == nil {
			t.Errorf("a wrong %s offset passed the live check", name)
		}
	}
}
