package capture

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/cilium/ebpf/link"
)

// A set of uprobes a runtime needs (Go's net/http, nginx's upstream
// writer), attached once per executable file: one attachment serves every
// process running it, and the programs check the pid.
type exeProbes struct {
	name    string
	probes  []exeProbe
	missing error // returned when the executable lacks the symbols
	// layout, when set, reads from the executable what the programs need
	// to find their way in it.
	layout func(path string) (exeLayout, error)
	// goFuncs: the symbols are Go functions, found also in a binary
	// without a symbol table (gofuncs.go) and attached by address.
	goFuncs bool
	// prepare, when set, gives the kernel what the layout found (under
	// exeMu, before the attach).
	prepare func(c *Capture, lay *exeLayout) error
}

// What an executable's programs are attached with.
type exeLayout struct {
	cookie uint64            // every program's attach cookie (layout offsets)
	at     map[string]uint64 // by program: its offset in its symbol (a call site)
	allow  []funcRange       // goroutine lineage: where inheriting goroutines start
}

type exeProbe struct{ symbol, prog string }

type exeKey struct {
	dev, ino uint64
	set      string
}

// attachExe attaches set to the executable of pid, once per file.
func (c *Capture) attachExe(pid uint32, set *exeProbes) error {
	path := fmt.Sprintf("/proc/%d/exe", pid)
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return err
	}
	key := exeKey{uint64(st.Dev), st.Ino, set.name}
	c.exeMu.Lock()
	err, done := c.exes[key]
	c.exeMu.Unlock()
	if done {
		return err
	}
	// The layout is read before taking the lock: reading a large binary's
	// DWARF takes a while, and other attachments wait on the lock.
	var lay exeLayout
	var cerr error
	if set.layout != nil {
		lay, cerr = set.layout(path)
	}
	c.exeMu.Lock()
	defer c.exeMu.Unlock()
	if c.exes == nil {
		c.exes = map[exeKey]error{}
	}
	if err, done := c.exes[key]; done {
		return err
	}
	err = cerr
	if err == nil && set.prepare != nil {
		err = set.prepare(c, &lay)
	}
	if err == nil {
		err = c.attachProbes(path, set, lay)
	}
	c.exes[key] = err
	return err
}

func (c *Capture) attachProbes(path string, set *exeProbes, lay exeLayout) error {
	exe, err := link.OpenExecutable(path)
	if err != nil {
		return err
	}
	var addrs map[string]uint64
	if set.goFuncs {
		if addrs, err = goFuncOffsets(path, set); err != nil {
			return err
		}
	}
	var links []link.Link
	for _, p := range set.probes {
		opts := &link.UprobeOptions{Cookie: lay.cookie, Offset: lay.at[p.prog], Address: addrs[p.symbol]}
		l, err := exe.Uprobe(p.symbol, c.coll.Programs[p.prog], opts)
		if err != nil {
			closeLinks(links)
			if errors.Is(err, link.ErrNoSymbol) || errors.Is(err, os.ErrNotExist) {
				return set.missing
			}
			return fmt.Errorf("uprobe %s: %w", p.symbol, err)
		}
		links = append(links, l)
	}
	c.links = append(c.links, links...)
	return nil
}

// goFuncOffsets: the file offset of each probe's function in the Go
// executable at path; set.missing when one is not there.
func goFuncOffsets(path string, set *exeProbes) (map[string]uint64, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var names []string
	for _, p := range set.probes {
		names = append(names, p.symbol)
	}
	fns, err := goFuncs(f, names...)
	if err != nil {
		return nil, set.missing
	}
	out := map[string]uint64{}
	for _, n := range names {
		r, ok := fns[n]
		if !ok {
			return nil, set.missing
		}
		if out[n], err = fileOffset(f, r.entry); err != nil {
			return nil, err
		}
	}
	return out, nil
}
