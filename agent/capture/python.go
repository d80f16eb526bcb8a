package capture

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// PythonProcess is where a CPython process keeps what bpf/python.h
// follows (agent/runtime/python finds it).
type PythonProcess struct {
	File       string // the file holding PyContext_CopyCurrent (executable or libpython), as the agent opens it
	CopyOffset uint64 // file offset of PyContext_CopyCurrent
	FreeOffset uint64 // file offset of PyContext_Type's tp_dealloc
	Runtime    uint64 // address of _PyRuntime in the process
	// Field offsets of its minor version.
	InterpHead, ThreadsHead, ThreadNext, ThreadTID, ThreadContext, ThreadContextVer uint16
}

// pyProc mirrors struct py_proc.
type pyProc struct {
	Runtime                                      uint64
	Gen                                          uint32
	InterpHead, ThreadsHead, Next, TID, Ctx, Ver uint16
}

// AttachPython follows pid's contexts (bpf/python.h) and makes it pid's
// binder. The uprobes are pid's own: other processes running the same
// interpreter never trap.
func (c *Capture) AttachPython(pid uint32, p PythonProcess) error {
	exe, err := link.OpenExecutable(p.File)
	if err != nil {
		return err
	}
	procs := c.coll.Maps["py_procs"]
	c.exeMu.Lock()
	c.pyGen++
	v := pyProc{p.Runtime, c.pyGen, p.InterpHead, p.ThreadsHead, p.ThreadNext, p.ThreadTID, p.ThreadContext, p.ThreadContextVer}
	c.exeMu.Unlock()
	if err := procs.Update(pid, &v, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("py_procs: %w", err)
	}
	var links []link.Link
	fail := func(err error) error {
		closeLinks(links)
		_ = procs.Delete(pid)
		return err
	}
	copied, err := exe.Uretprobe("PyContext_CopyCurrent", c.coll.Programs["py_context_copied"],
		&link.UprobeOptions{Address: p.CopyOffset, PID: int(pid)})
	if err != nil {
		return fail(fmt.Errorf("uretprobe PyContext_CopyCurrent: %w", err))
	}
	links = append(links, copied)
	freed, err := exe.Uprobe("context_tp_dealloc", c.coll.Programs["py_context_freed"],
		&link.UprobeOptions{Address: p.FreeOffset, PID: int(pid)})
	if err != nil {
		return fail(fmt.Errorf("uprobe Context dealloc: %w", err))
	}
	links = append(links, freed)
	if err := c.SetBinder(pid); err != nil {
		return fail(err)
	}
	c.exeMu.Lock()
	defer c.exeMu.Unlock()
	var st uint8
	if err := c.pids.Lookup(pid, &st); err != nil {
		// Untracked meanwhile (it exited): Untrack found nothing to detach.
		return fail(fmt.Errorf("process %d is not traced any more", pid))
	}
	if c.pidLnks == nil {
		c.pidLnks = map[uint32][]link.Link{}
	}
	closeLinks(c.pidLnks[pid]) // attached again (a fork's pid reused)
	c.pidLnks[pid] = links
	return nil
}

// detachProcess drops pid's own uprobes and its Python state. Closing a
// uprobe waits for the kernel's grace periods (tens of ms): done aside, so
// the caller (the control events' reader) is not held up.
func (c *Capture) detachProcess(pid uint32) {
	c.exeMu.Lock()
	ls := c.pidLnks[pid]
	delete(c.pidLnks, pid)
	c.exeMu.Unlock()
	if len(ls) == 0 {
		return
	}
	_ = c.coll.Maps["py_procs"].Delete(pid)
	c.detaching.Add(1)
	go func() {
		defer c.detaching.Done()
		closeLinks(ls)
	}()
}

func closeLinks(ls []link.Link) {
	for _, l := range ls {
		l.Close()
	}
}

// FollowsPython reports whether pid's contexts are followed.
func (c *Capture) FollowsPython(pid uint32) bool {
	c.exeMu.Lock()
	defer c.exeMu.Unlock()
	return len(c.pidLnks[pid]) > 0
}
