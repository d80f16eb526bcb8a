package capture

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/cilium/ebpf/link"
)

// Go's net/http client writes a request from its connection's writeLoop
// goroutine, not from the handler goroutine that serves the incoming
// request. Two uprobes (bpf/gohttp.h) hand the handler's context to that
// writer; they fire per client request and per connection, never per
// syscall.
var goProbes = []struct{ symbol, prog string }{
	{"net/http.(*persistConn).roundTrip", "go_roundtrip"},
	{"net/http.(*persistConn).writeLoop", "go_writeloop"},
}

// ErrNoGoHTTP: the executable has no net/http client symbols (stripped, or
// it does not use net/http). Its requests still become spans; only
// cross-goroutine linking of its client calls is missing.
var ErrNoGoHTTP = errors.New("no net/http client symbols")

type exeKey struct{ dev, ino uint64 }

// AttachGo attaches the net/http uprobes to the executable of Go process
// pid, once per executable file.
func (c *Capture) AttachGo(pid uint32) error {
	path := fmt.Sprintf("/proc/%d/exe", pid)
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return err
	}
	key := exeKey{uint64(st.Dev), st.Ino}
	c.goMu.Lock()
	defer c.goMu.Unlock()
	if c.goExes == nil {
		c.goExes = map[exeKey]error{}
	}
	if err, done := c.goExes[key]; done {
		return err
	}
	err := c.attachGo(path)
	c.goExes[key] = err
	return err
}

func (c *Capture) attachGo(path string) error {
	exe, err := link.OpenExecutable(path)
	if err != nil {
		return err
	}
	var links []link.Link
	for _, p := range goProbes {
		l, err := exe.Uprobe(p.symbol, c.coll.Programs[p.prog], nil)
		if err != nil {
			for _, l := range links {
				l.Close()
			}
			if errors.Is(err, link.ErrNoSymbol) || errors.Is(err, os.ErrNotExist) {
				return ErrNoGoHTTP
			}
			return fmt.Errorf("uprobe %s: %w", p.symbol, err)
		}
		links = append(links, l)
	}
	c.links = append(c.links, links...)
	return nil
}
