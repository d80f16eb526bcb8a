package procinfo

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fakeProc describes one process of a fake /proc tree.
type fakeProc struct {
	pid     uint32
	exe     string   // symlink target; "" = no exe link (kernel thread)
	argv    []string // nil = empty cmdline
	env     []string
	noEnv   bool // environ missing
	envDeny bool // environ unreadable (mode 000)
}

func writeFakeProc(t *testing.T, root string, p fakeProc) {
	t.Helper()
	dir := filepath.Join(root, strconv.FormatUint(uint64(p.pid), 10))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if p.exe != "" {
		if err := os.Symlink(p.exe, filepath.Join(dir, "exe")); err != nil {
			t.Fatal(err)
		}
	}
	write := func(name string, parts []string, mode os.FileMode) {
		var b strings.Builder
		for _, s := range parts {
			b.WriteString(s)
			b.WriteByte(0)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("cmdline", p.argv, 0o644)
	if !p.noEnv {
		mode := os.FileMode(0o644)
		if p.envDeny {
			mode = 0
		}
		write("environ", p.env, mode)
	}
}
