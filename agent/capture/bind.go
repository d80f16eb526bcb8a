package capture

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// Binders (bpf/bind.h): for an event-loop process, the runtime itself says
// which incoming request each client call serves. What a binder proves
// wins over the thread's request; where it proves nothing, the thread's
// request decides with the guards it has without a binder.

// nginx writes every upstream request through ngx_chain_writer (exported
// on Debian's and nginx.org's builds): its arguments name the upstream
// connection and the client request it proxies.
var nginxProbes = &exeProbes{
	name:    "nginx",
	probes:  []exeProbe{{"ngx_chain_writer", "ngx_upstream_write"}},
	missing: ErrNotNginx,
}

// ErrNotNginx: the executable has no ngx_chain_writer symbol.
var ErrNotNginx = errors.New("not nginx (no ngx_chain_writer symbol)")

// AttachNginx attaches the upstream uprobe to pid's executable when it is
// nginx, and makes it pid's binder.
func (c *Capture) AttachNginx(pid uint32) error {
	if err := c.attachExe(pid, nginxProbes); err != nil {
		return err
	}
	return c.SetBinder(pid)
}

// SetBinder marks pid as having a binder: the kernel takes its
// statements (bpf/bind.h) about which request a client socket serves.
func (c *Capture) SetBinder(pid uint32) error {
	var v uint8
	if err := c.pids.Lookup(pid, &v); err != nil {
		return fmt.Errorf("process %d is not traced: %w", pid, err)
	}
	return c.pids.Update(pid, v|stateBind, ebpf.UpdateExist)
}

// SigUSR1Handler returns the address of pid's SIGUSR1 handler (0: default,
// 1: ignored), read from the kernel's sigaction table.
func (c *Capture) SigUSR1Handler(pid int) (uint64, error) {
	prog := c.coll.Programs["sigusr1_handler"]
	q := make([]byte, 16)
	binary.NativeEndian.PutUint32(q, uint32(pid))
	if _, err := prog.Run(&ebpf.RunOptions{Context: q, ContextOut: q}); err != nil {
		return 0, fmt.Errorf("read the SIGUSR1 handler of %d: %w", pid, err)
	}
	if int32(binary.NativeEndian.Uint32(q[4:])) != 0 {
		return 0, fmt.Errorf("process %d not found", pid)
	}
	return binary.NativeEndian.Uint64(q[8:]), nil
}
