package capture

import (
	"debug/elf"
	"errors"
	"fmt"
)

// Goroutine lineage (bpf/golineage.h): a goroutine started while its
// parent serves a request makes its calls for that request, while it is in
// flight. One uprobe per goroutine created, on runtime.newproc.func1's
// call of runqput (the new g is its argument), never per syscall.
var goLineageProbes = &exeProbes{
	name:    "go lineage",
	probes:  []exeProbe{{goNewproc, "go_spawn"}},
	missing: ErrNoGoLineage,
	layout:  goLineageLayout,
	goFuncs: true,
}

const (
	goNewproc = "runtime.newproc.func1"
	goRunqput = "runtime.runqput"
)

// ErrNoGoLineage: the executable lacks the runtime's symbols or DWARF
// (stripped, or built with -ldflags=-w).
var ErrNoGoLineage = errors.New("no Go runtime symbols or DWARF")

// AttachGoLineage attaches the goroutine lineage uprobe to the executable
// of Go process pid, once per executable file.
func (c *Capture) AttachGoLineage(pid uint32) error { return c.attachExe(pid, goLineageProbes) }

// goLineageLayout: the cookie packs bits 0-15 runtime.g's m and 16-31
// runtime.m's curg (the goroutine that ran the go statement, as the
// system stack's g0 sees it); the uprobe sits on the call of runqput.
func goLineageLayout(path string) (exeLayout, error) {
	f, err := elf.Open(path)
	if err != nil {
		return exeLayout{}, err
	}
	defer f.Close()
	syms, err := goFuncs(f, goNewproc, goRunqput)
	if err != nil {
		return exeLayout{}, fmt.Errorf("%w: %v", ErrNoGoLineage, err)
	}
	m, err := runtimeOffsets(f, path)
	if err != nil {
		return exeLayout{}, err
	}
	at, err := callSite(f, syms, goNewproc, goRunqput)
	if err != nil {
		return exeLayout{}, fmt.Errorf("go lineage: %w", err)
	}
	return exeLayout{cookie: uint64(m["runtime.g.m"]) | uint64(m["runtime.m.curg"])<<16, at: map[string]uint64{"go_spawn": at}}, nil
}

// runtimeOffsets: runtime.g.m and runtime.m.curg, from DWARF, else from
// the table by the Go release the binary was built with.
func runtimeOffsets(f *elf.File, path string) (map[string]int64, error) {
	if d, err := f.DWARF(); err == nil {
		m := members(d, "runtime.g.m", "runtime.m.curg")
		return m, need(m, "runtime.g.m", "runtime.m.curg")
	}
	v := goRelease(path)
	o, ok := goReleaseLayouts[v]
	if !ok {
		return nil, fmt.Errorf("%w: no DWARF, and no known runtime layout for %q", ErrNoGoLineage, v)
	}
	return map[string]int64{"runtime.g.m": o.gM, "runtime.m.curg": o.mCurg}, nil
}
