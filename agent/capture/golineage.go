package capture

import (
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tracer-agent/tracer-agent/bpf"
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
	prepare: (*Capture).loadSpawnAllowed,
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
	allow, err := spawnAllowed(f, path)
	if err != nil {
		return exeLayout{}, fmt.Errorf("go lineage: %w", err)
	}
	return exeLayout{
		cookie: uint64(m["runtime.g.m"]) | uint64(m["runtime.m.curg"])<<16 | uint64(m["runtime.g.startpc"])<<32,
		at:     map[string]uint64{"go_spawn": at},
		allow:  allow,
	}, nil
}

// runtimeOffsets: runtime.g.m and runtime.m.curg, from DWARF, else from
// the table by the Go release the binary was built with.
func runtimeOffsets(f *elf.File, path string) (map[string]int64, error) {
	if d, err := f.DWARF(); err == nil {
		m := members(d, "runtime.g.m", "runtime.m.curg", "runtime.g.startpc")
		return m, need(m, "runtime.g.m", "runtime.m.curg", "runtime.g.startpc")
	}
	v := goRelease(path)
	o, ok := goReleaseLayouts[v]
	if !ok {
		return nil, fmt.Errorf("%w: no DWARF, and no known runtime layout for %q", ErrNoGoLineage, v)
	}
	return map[string]int64{"runtime.g.m": o.gM, "runtime.m.curg": o.mCurg, "runtime.g.startpc": o.startpc}, nil
}

// Fan-out helpers of other modules whose goroutines run a caller's work.
var spawnHelpers = []string{
	"golang.org/x/sync/errgroup.",
	"sync.(*WaitGroup).Go",
	"github.com/sourcegraph/conc",
}

// spawnAllowed: the code ranges of the functions a goroutine may start in
// and inherit its parent's request (bpf/golineage.h): the main module's
// and the fan-out helpers'. A library's own goroutines never inherit: a
// client's background loop started by the first request would serve all.
func spawnAllowed(f *elf.File, path string) ([]funcRange, error) {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("no build info: %w", err)
	}
	tab, err := goFuncTable(f)
	if err != nil {
		return nil, err
	}
	own := []string{"main."}
	if p := bi.Main.Path; p != "" && p != "command-line-arguments" {
		own = append(own, p+".", p+"/")
	}
	allowed := func(name string) bool {
		for _, p := range slices.Concat(own, spawnHelpers) {
			if strings.HasPrefix(name, p) {
				return true
			}
		}
		return false
	}
	var out []funcRange
	for _, fn := range tab.Funcs { // in address order
		if !allowed(fn.Name) {
			continue
		}
		if n := len(out); n > 0 && out[n-1].end >= fn.Entry {
			out[n-1].end = max(out[n-1].end, fn.End)
			continue
		}
		out = append(out, funcRange{fn.Entry, fn.End})
	}
	return out, nil
}

// loadSpawnAllowed stores lay's ranges for the kernel and names them in
// its cookie (bits 48-63). Under exeMu.
func (c *Capture) loadSpawnAllowed(lay *exeLayout) error {
	const maxRanges, maxExes = 65536, 1024
	if c.spawnExes+1 >= maxExes || c.spawnNext+uint32(len(lay.allow)) > maxRanges {
		return fmt.Errorf("go lineage: no room for another executable's %d ranges", len(lay.allow))
	}
	ranges, exes := c.coll.Maps["go_spawn_allow"], c.coll.Maps["go_exes"]
	for i, r := range lay.allow {
		k := c.spawnNext + uint32(i)
		if err := ranges.Put(k, bpf.CaptureGoFnRange{Start: r.entry, End: r.end}); err != nil {
			return err
		}
	}
	c.spawnExes++
	id := c.spawnExes
	if err := exes.Put(id, bpf.CaptureGoExeAllow{Base: c.spawnNext, N: uint32(len(lay.allow))}); err != nil {
		return err
	}
	c.spawnNext += uint32(len(lay.allow))
	lay.cookie |= uint64(id) << 48
	return nil
}
