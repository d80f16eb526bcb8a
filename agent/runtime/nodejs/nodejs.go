// Package nodejs is the Node.js runtime helper. An event loop serves many
// requests on one thread, so the kernel cannot tell which request a client
// call serves; Node itself knows (its async context). The helper loads a
// small tracker into the process (tracker.js, through Node's own inspector,
// opened with SIGUSR1 and closed again) that tells the kernel, by sentinel
// syscalls, which incoming request each outgoing write serves (bpf/bind.h).
package nodejs

import (
	"bytes"
	"debug/elf"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

//go:embed tracker.js
var trackerJS string

// closeJS closes the inspector once this reply is sent: its port and our
// connection go away; the tracker stays.
const closeJS = `(() => { const i = require('inspector'); setImmediate(() => i.close()); return 'closing'; })()`

// Kernel is what the helper needs of the capture.
type Kernel interface {
	// SigUSR1Handler is pid's SIGUSR1 handler address (0: default).
	SigUSR1Handler(pid int) (uint64, error)
	// SetBinder makes the kernel link pid's client calls only as the
	// tracker says.
	SetBinder(pid uint32) error
}

// inspectorHandler is Node's own SIGUSR1 handler (it opens the inspector).
const inspectorHandler = "_ZN4node9inspector12_GLOBAL__N_1L19StartIoThreadWakeupEiP9siginfo_tPv"

// Helper attaches the tracker to Node.js processes, one at a time: every
// inspector opens on port 9229 of its network namespace.
type Helper struct {
	kernel   Kernel
	procRoot string
	// own is told of every connection the helper makes into a process
	// (the helper's end, the process's end): the process's side of it is
	// not application traffic.
	own func(pid int, local, remote netip.AddrPort)

	mu   sync.Mutex
	syms map[exeID]symInfo
}

type exeID struct{ dev, ino uint64 }

type symInfo struct {
	addr uint64 // link-time address of the inspector's handler (0: none)
	pie  bool
	base uint64 // link-time address of the first PT_LOAD, page aligned
	err  error
}

// New returns a helper; procRoot is /proc (or the host's, in a container).
func New(kernel Kernel, procRoot string, own func(pid int, local, remote netip.AddrPort)) *Helper {
	if own == nil {
		own = func(int, netip.AddrPort, netip.AddrPort) {}
	}
	return &Helper{kernel: kernel, procRoot: procRoot, own: own, syms: map[exeID]symInfo{}}
}

// IsNode says whether pid runs a node executable (by its name: node,
// nodejs, node20, ...).
func IsNode(procRoot string, pid int) bool {
	exe, err := os.Readlink(filepath.Join(procRoot, strconv.Itoa(pid), "exe"))
	return err == nil && strings.HasPrefix(filepath.Base(exe), "node")
}

// Timeouts of one attach: the inspector opens within milliseconds.
const (
	openWait    = 3 * time.Second
	attachMax   = 10 * time.Second
	handlerWait = 5 * time.Second // for node to install its SIGUSR1 handler after exec
)

// Attach loads the tracker into pid and makes it pid's binder. It refuses
// (and changes nothing) when SIGUSR1 is not Node's inspector handler —
// the application's own, or the default, which would kill it — or when an
// inspector is open already (someone is debugging).
func (h *Helper) Attach(pid int) error {
	h.mu.Lock()
	want, err := h.handlerAddr(pid)
	h.mu.Unlock()
	if err != nil {
		return err
	}
	// A process caught at exec has not installed its handlers yet: the
	// default (0) may still turn into node's.
	got, err := h.kernel.SigUSR1Handler(pid)
	for end := time.Now().Add(handlerWait); err == nil && got == 0 && time.Now().Before(end); {
		time.Sleep(50 * time.Millisecond)
		got, err = h.kernel.SigUSR1Handler(pid)
	}
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if got != want {
		return fmt.Errorf("SIGUSR1 is not node's inspector handler (it is %#x, the application's own or --disable-sigusr1): not signalled", got)
	}
	// Only the inspector's own port counts (9229, or --inspect-port): the
	// application may open listeners of its own meanwhile, and the helper
	// never talks to those. Open already (an inspector — someone
	// debugging — or the application's): no signal.
	port := inspectPort(h.procRoot, pid)
	before, err := listeners(h.procRoot, pid)
	if err != nil {
		return err
	}
	if before[port] {
		return fmt.Errorf("port %d is open already (an inspector, or the application's): not signalled", port)
	}
	if err := unix.Kill(pid, syscall.SIGUSR1); err != nil {
		return fmt.Errorf("signal: %w", err)
	}
	deadline := time.Now().Add(attachMax)
	if err := h.awaitListen(pid, port); err != nil {
		return err
	}
	s, err := h.openSession(pid, port, deadline)
	if err != nil {
		// Without a session it cannot be asked to close: say so.
		return fmt.Errorf("inspector on port %d (left open: no session to close it): %w", port, err)
	}
	res, err := s.evaluate(trackerJS)
	if err == nil && res != "loaded" && res != "already loaded" {
		err = fmt.Errorf("tracker said %q", res)
	}
	cerr := h.closeInspector(pid, port, s, deadline)
	if err != nil {
		return fmt.Errorf("load the tracker: %w", err)
	}
	if cerr != nil {
		slog.Warn("node helper: the inspector did not close", "pid", pid, "port", port, "err", cerr)
	}
	return h.kernel.SetBinder(uint32(pid))
}

// awaitListen waits until pid listens on port after the signal.
func (h *Helper) awaitListen(pid, port int) error {
	for end := time.Now().Add(openWait); time.Now().Before(end); {
		time.Sleep(20 * time.Millisecond)
		now, err := listeners(h.procRoot, pid)
		if err != nil {
			return err
		}
		if now[port] {
			return nil
		}
	}
	return fmt.Errorf("no inspector opened on port %d (taken in its network namespace?): tracker not loaded", port)
}

// inspectPort is the port node's inspector listens on: --inspect-port in
// the command line or NODE_OPTIONS, else 9229.
func inspectPort(procRoot string, pid int) int {
	port := 9229
	var args []string
	if b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "cmdline")); err == nil {
		args = strings.Split(string(b), "\x00")
	}
	if b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "environ")); err == nil {
		for _, kv := range strings.Split(string(b), "\x00") {
			if v, ok := strings.CutPrefix(kv, "NODE_OPTIONS="); ok {
				args = append(strings.Fields(v), args...) // the command line wins
			}
		}
	}
	for i, a := range args {
		v, ok := strings.CutPrefix(a, "--inspect-port=")
		if !ok && a == "--inspect-port" && i+1 < len(args) {
			v, ok = args[i+1], true
		}
		if !ok {
			continue
		}
		if _, p, found := strings.Cut(v, ":"); found { // host:port
			v = p
		}
		if n, err := strconv.Atoi(v); err == nil && n > 0 && n < 65536 {
			port = n
		}
	}
	return port
}

// closeInspector asks the inspector, through s, to close and waits until
// its port is gone.
func (h *Helper) closeInspector(pid, port int, s *session, deadline time.Time) error {
	_, err := s.evaluate(closeJS)
	for err == nil {
		_, err = s.ws.ReadText() // until the inspector drops us
	}
	s.ws.Close()
	for time.Now().Before(deadline) {
		now, err := listeners(h.procRoot, pid)
		if err != nil || !now[port] {
			return nil // closed, or the process is gone
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("port %d still open", port)
}

// handlerAddr is where Node's inspector SIGUSR1 handler is in pid.
func (h *Helper) handlerAddr(pid int) (uint64, error) {
	exe := filepath.Join(h.procRoot, strconv.Itoa(pid), "exe")
	var st unix.Stat_t
	if err := unix.Stat(exe, &st); err != nil {
		return 0, err
	}
	id := exeID{st.Dev, st.Ino}
	si, ok := h.syms[id]
	if !ok {
		si = readSym(exe)
		h.syms[id] = si
	}
	if si.err != nil {
		return 0, si.err
	}
	if !si.pie {
		return si.addr, nil
	}
	start, err := mapStart(h.procRoot, pid, st.Ino)
	if err != nil {
		return 0, err
	}
	return si.addr - si.base + start, nil
}

// readSym finds the inspector handler without loading node's symbol
// table (over 100,000 symbols, tens of MiB as Go values): the name's
// offset in .strtab, then the .symtab entry that names it, read in chunks.
func readSym(path string) symInfo {
	f, err := elf.Open(path)
	if err != nil {
		return symInfo{err: err}
	}
	defer f.Close()
	si := symInfo{pie: f.Type == elf.ET_DYN}
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			si.base = p.Vaddr &^ 0xfff
			break
		}
	}
	si.addr, err = symbolValue(f, inspectorHandler)
	if err != nil {
		si.err = err
	}
	return si
}

var errNoInspector = errors.New("no inspector in this node build (symbol " + inspectorHandler + " not found)")

func symbolValue(f *elf.File, name string) (uint64, error) {
	symtab := f.Section(".symtab")
	if symtab == nil || f.Class != elf.ELFCLASS64 || int(symtab.Link) >= len(f.Sections) {
		return 0, errNoInspector
	}
	strtab := f.Sections[symtab.Link]
	off, ok := findString(strtab.Open(), name)
	if !ok {
		return 0, errNoInspector
	}
	const entry = 24 // Elf64_Sym: name u32, info, other u8, shndx u16, value, size u64
	r := symtab.Open()
	buf := make([]byte, entry*4096)
	for {
		n, err := io.ReadFull(r, buf)
		for i := 0; i+entry <= n; i += entry {
			if f.ByteOrder.Uint32(buf[i:]) == off {
				return f.ByteOrder.Uint64(buf[i+8:]), nil
			}
		}
		if err != nil {
			return 0, errNoInspector
		}
	}
}

// findString returns the offset of name as a whole string in a string
// table, scanned in chunks.
func findString(r io.Reader, name string) (uint32, bool) {
	want := []byte("\x00" + name + "\x00")
	buf := make([]byte, 1<<20)
	var base int64 // offset of buf[0] in the table
	keep := 0
	for {
		n, err := io.ReadFull(r, buf[keep:])
		n += keep
		if i := bytes.Index(buf[:n], want); i >= 0 {
			return uint32(base + int64(i) + 1), true
		}
		if err != nil {
			return 0, false
		}
		keep = len(want) - 1
		copy(buf, buf[n-keep:n])
		base += int64(n - keep)
	}
}

// mapStart is where pid mapped offset 0 of the executable with inode ino.
func mapStart(procRoot string, pid int, ino uint64) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "maps"))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		// start-end perms offset dev inode path
		fs := strings.Fields(line)
		if len(fs) < 6 || fs[2] != "00000000" || fs[4] != strconv.FormatUint(ino, 10) {
			continue
		}
		start, err := strconv.ParseUint(fs[0][:strings.IndexByte(fs[0], '-')], 16, 64)
		if err == nil {
			return start, nil
		}
	}
	return 0, errors.New("executable not found in its memory map")
}
