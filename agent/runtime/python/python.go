// Package python finds, in a running CPython process, what the kernel
// needs to follow its contextvars Contexts (bpf/python.h): the file that
// holds the interpreter (the executable, or libpython), two code offsets
// in it, where the thread states are, and the field offsets of its minor
// version. Everything comes from exported dynamic symbols (stripped
// distribution builds have nothing else) and from the process's memory,
// and is checked against the live thread list before it is used: a
// layout that does not match is refused, never guessed.
package python

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/tracer-agent/tracer-agent/agent/capture"
)

// ErrNotPython: no mapped file of the process defines PyContext_CopyCurrent.
var ErrNotPython = errors.New("not a CPython process")

// ErrNotReady: the interpreter is not initialised yet (a process caught at
// exec); ask again a moment later.
var ErrNotReady = errors.New("the interpreter is not initialised yet")

// layout holds the offsets of one minor version (x86-64 and arm64 alike:
// both LP64), from the headers compiled with Py_BUILD_CORE.
type layout struct {
	interpHead, threadsHead, next, tid, ctx, ctxVer uint16
}

var layouts = map[[2]int]layout{
	{3, 11}: {interpHead: 0x28, threadsHead: 0x10, next: 0x8, tid: 0xa0, ctx: 0xe0, ctxVer: 0xe8},
	{3, 12}: {interpHead: 0x28, threadsHead: 0x48, next: 0x8, tid: 0x90, ctx: 0xd0, ctxVer: 0xd8},
	{3, 13}: {interpHead: 0x278, threadsHead: 0x1cb0, next: 0x8, tid: 0xa0, ctx: 0xd0, ctxVer: 0xd8},
}

const tpDealloc = 0x30 // PyTypeObject.tp_dealloc

// python3.13t, libpython3.13t.so.1.0
var freeThreaded = regexp.MustCompile(`python3\.\d+t(\.|$)`)

// Process is what Inspect found.
type Process struct {
	capture.PythonProcess
	Version string // e.g. "3.11.2"
}

// Inspect resolves pid (under procRoot, normally /proc).
func Inspect(procRoot string, pid int) (*Process, error) {
	maps, err := readMaps(procRoot, pid)
	if err != nil {
		return nil, err
	}
	exe, _ := os.Readlink(filepath.Join(procRoot, strconv.Itoa(pid), "exe"))
	for _, path := range candidates(maps, exe) {
		p, err := inspectFile(procRoot, pid, maps, path, path == exe)
		if errors.Is(err, ErrNotPython) {
			continue
		}
		return p, err
	}
	if strings.HasPrefix(filepath.Base(exe), "python3") {
		return nil, ErrNotReady // its libpython is not mapped yet
	}
	return nil, ErrNotPython
}

// Looks says whether pid may be CPython: its executable is named python3*
// or it maps a libpython3 (an embedding program). Cheap: Inspect decides.
func Looks(procRoot string, pid int) bool {
	exe, _ := os.Readlink(filepath.Join(procRoot, strconv.Itoa(pid), "exe"))
	if strings.HasPrefix(filepath.Base(exe), "python3") {
		return true
	}
	b, _ := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "maps"))
	return strings.Contains(string(b), "/libpython3")
}

// candidates: the executable, then mapped files named like libpython.
func candidates(maps []mapping, exe string) []string {
	out := []string{exe}
	seen := map[string]bool{exe: true}
	for _, m := range maps {
		if !seen[m.path] && strings.HasPrefix(filepath.Base(m.path), "libpython3") {
			seen[m.path] = true
			out = append(out, m.path)
		}
	}
	return out
}

func inspectFile(procRoot string, pid int, maps []mapping, path string, isExe bool) (*Process, error) {
	file := filepath.Join(procRoot, strconv.Itoa(pid), "root", path)
	if isExe {
		file = filepath.Join(procRoot, strconv.Itoa(pid), "exe") // also when the path is gone from our mount namespace
	}
	f, err := elf.Open(file)
	if err != nil {
		return nil, ErrNotPython
	}
	defer f.Close()
	syms, err := f.DynamicSymbols()
	if err != nil {
		return nil, ErrNotPython
	}
	want := map[string]uint64{"PyContext_CopyCurrent": 0, "PyContext_Type": 0, "_PyRuntime": 0, "Py_Version": 0}
	for _, s := range syms {
		if _, ok := want[s.Name]; ok && s.Section != elf.SHN_UNDEF && s.Value != 0 {
			want[s.Name] = s.Value
		}
	}
	if want["PyContext_CopyCurrent"] == 0 {
		return nil, ErrNotPython
	}
	if freeThreaded.MatchString(filepath.Base(path)) {
		return nil, fmt.Errorf("%s: a free-threaded build (its thread states differ; not supported)", path)
	}
	for name, v := range want {
		if v == 0 {
			return nil, fmt.Errorf("%s: no %s symbol (Python 3.11 or later is needed)", path, name)
		}
	}
	bias, err := loadBias(f, maps, path)
	if err != nil {
		return nil, err
	}
	mem, err := os.Open(filepath.Join(procRoot, strconv.Itoa(pid), "mem"))
	if err != nil {
		return nil, err
	}
	defer mem.Close()
	rd := func(addr uint64, n int) (uint64, error) {
		b := make([]byte, 8)
		if _, err := mem.ReadAt(b[:n], int64(addr)); err != nil {
			return 0, fmt.Errorf("read process memory at %#x: %w", addr, err)
		}
		return binary.LittleEndian.Uint64(b), nil
	}
	ver, err := rd(want["Py_Version"]+bias, 4)
	if err != nil {
		return nil, err
	}
	major, minor := int(ver>>24&0xff), int(ver>>16&0xff)
	version := fmt.Sprintf("%d.%d.%d", major, minor, ver>>8&0xff)
	lay, ok := layouts[[2]int{major, minor}]
	if !ok {
		return nil, fmt.Errorf("Python %s: no known thread-state layout (3.11 to 3.13 are)", version)
	}
	ctxType := want["PyContext_Type"] + bias
	dealloc, err := rd(ctxType+tpDealloc, 8)
	if err != nil {
		return nil, err
	}
	copyOff, err := fileOffset(f, want["PyContext_CopyCurrent"])
	if err != nil {
		return nil, err
	}
	freeOff, err := fileOffset(f, dealloc-bias)
	if err != nil {
		return nil, fmt.Errorf("Context dealloc at %#x is not in %s: %w", dealloc, path, err)
	}
	p := &Process{Version: version, PythonProcess: capture.PythonProcess{
		File: file, CopyOffset: copyOff, FreeOffset: freeOff, Runtime: want["_PyRuntime"] + bias,
		InterpHead: lay.interpHead, ThreadsHead: lay.threadsHead, ThreadNext: lay.next,
		ThreadTID: lay.tid, ThreadContext: lay.ctx, ThreadContextVer: lay.ctxVer,
	}}
	if err := verify(rd, p, pid, ctxType); err != nil {
		return nil, fmt.Errorf("Python %s: %w", version, err)
	}
	return p, nil
}

// verify walks the thread list as the kernel will: the main thread must be
// on it, and every thread's current Context must be a Context.
func verify(rd func(uint64, int) (uint64, error), p *Process, pid int, ctxType uint64) error {
	interp, err := rd(p.Runtime+uint64(p.InterpHead), 8)
	if err != nil || interp == 0 {
		return ErrNotReady
	}
	ts, err := rd(interp+uint64(p.ThreadsHead), 8)
	main := false
	for i := 0; err == nil && ts != 0 && i < 512; i++ {
		var tid, ctx, typ uint64
		if tid, err = rd(ts+uint64(p.ThreadTID), 8); err != nil {
			break
		}
		main = main || tid == uint64(pid)
		if ctx, err = rd(ts+uint64(p.ThreadContext), 8); err != nil {
			break
		}
		if ctx != 0 {
			if typ, err = rd(ctx+8, 8); err == nil && typ != ctxType {
				return fmt.Errorf("thread %d's context at %#x is not a Context: layout mismatch", tid, ctx)
			}
		}
		ts, err = rd(ts+uint64(p.ThreadNext), 8)
	}
	if err != nil {
		return err
	}
	if !main {
		return fmt.Errorf("%w, or its layout differs (the main thread is not on its thread list)", ErrNotReady)
	}
	return nil
}

type mapping struct {
	start, off uint64
	path       string
}

func readMaps(procRoot string, pid int) ([]mapping, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "maps"))
	if err != nil {
		return nil, err
	}
	var out []mapping
	for _, line := range strings.Split(string(b), "\n") {
		// start-end perms offset dev inode path
		fs := strings.Fields(line)
		if len(fs) < 6 || !strings.HasPrefix(fs[5], "/") {
			continue
		}
		start, err1 := strconv.ParseUint(fs[0][:strings.IndexByte(fs[0], '-')], 16, 64)
		off, err2 := strconv.ParseUint(fs[2], 16, 64)
		if err1 == nil && err2 == nil {
			out = append(out, mapping{start, off, fs[5]})
		}
	}
	return out, nil
}

// loadBias is what the process added to the file's addresses.
func loadBias(f *elf.File, maps []mapping, path string) (uint64, error) {
	if f.Type == elf.ET_EXEC {
		return 0, nil
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD {
			continue
		}
		const page = 4096
		for _, m := range maps {
			if m.path == path && m.off == p.Off&^(page-1) {
				return m.start - p.Vaddr&^(page-1), nil
			}
		}
		break
	}
	return 0, fmt.Errorf("%s: not found in the process's memory map", path)
}

// fileOffset turns a link-time address into the file offset uprobes take.
func fileOffset(f *elf.File, vaddr uint64) (uint64, error) {
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 && vaddr >= p.Vaddr && vaddr < p.Vaddr+p.Filesz {
			return vaddr - p.Vaddr + p.Off, nil
		}
	}
	return 0, fmt.Errorf("%#x is in no executable segment", vaddr)
}
