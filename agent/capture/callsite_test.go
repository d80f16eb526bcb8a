package capture

import (
	"debug/elf"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/arch/x86/x86asm"
)

// callSite finds the one call of a function in another, at an instruction
// boundary of a Go binary's code (testdata/callsite, built here for amd64
// and arm64), and refuses a function that calls it twice or not at all.
// A release build (-ldflags=-s -w) has no symbol table: the functions are
// found through .gopclntab.
func TestCallSite(t *testing.T) {
	for _, arch := range []string{"amd64", "arm64"} {
		for _, ld := range []string{"", "-s -w"} {
			t.Run(arch+ld, func(t *testing.T) { testCallSite(t, arch, ld) })
		}
	}
}

func testCallSite(t *testing.T, arch, ldflags string) {
	exe := filepath.Join(t.TempDir(), "callsite")
	cmd := exec.Command("go", "build", "-ldflags="+ldflags, "-o", exe, "./testdata/callsite")
	cmd.Env = append(os.Environ(), "GOARCH="+arch, "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	f, err := elf.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const pkg = "main."
	syms, err := goFuncs(f, pkg+"once", pkg+"twice", pkg+"target")
	if err != nil {
		t.Fatal(err)
	}
	off, err := callSite(f, syms, pkg+"once", pkg+"target")
	if err != nil {
		t.Fatal(err)
	}
	code, err := funcCode(f, syms[pkg+"once"])
	if err != nil {
		t.Fatal(err)
	}
	if f.Machine == elf.EM_X86_64 {
		if inst, err := x86asm.Decode(code[off:], 64); err != nil || inst.Op != x86asm.CALL {
			t.Errorf("at +%#x: %v %v, want a CALL", off, inst, err)
		}
	} else if w := binary.LittleEndian.Uint32(code[off:]); off%4 != 0 || w>>26 != 0x25 {
		t.Errorf("at +%#x: %#x, want a BL", off, w)
	}
	// Goroutine lineage: the program's own functions may start inheriting
	// goroutines, the runtime's (a library's) may not.
	allow, err := spawnAllowed(f, exe)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := goFuncs(f, "runtime.runqput", "os.Exit")
	if err != nil {
		t.Fatal(err)
	}
	in := func(pc uint64) bool {
		for _, r := range allow {
			if pc >= r.entry && pc < r.end {
				return true
			}
		}
		return false
	}
	if !in(syms[pkg+"once"].entry) || !in(syms[pkg+"twice"].entry) || in(rt["runtime.runqput"].entry) || in(rt["os.Exit"].entry) {
		t.Errorf("allowed ranges %x: want main's functions in, the runtime's and os's out", allow)
	}
	if _, err := callSite(f, syms, pkg+"twice", pkg+"target"); err == nil || !strings.Contains(err.Error(), "2 times") {
		t.Errorf("two calls: %v, want an error", err)
	}
	if _, err := callSite(f, syms, pkg+"target", pkg+"once"); err == nil {
		t.Error("no call: no error")
	}
	if _, err := callSite(f, syms, pkg+"noSuchFunction", pkg+"target"); err == nil {
		t.Error("no such symbol: no error")
	}
}
