package selector

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/tracer-agent/tracer-agent/agent/procinfo"
	"github.com/tracer-agent/tracer-agent/internal/glob"
)

// Selector applies Criteria to the processes under a /proc root. It is
// immutable after New, so its methods are safe for concurrent use (kernel
// event callbacks and the periodic rescan run on different goroutines).
type Selector struct {
	root  string
	c     Criteria
	ports map[uint16]bool
	globs []*glob.Glob
	// self is the agent's pid: tracing it would capture its own export
	// traffic and feed back forever.
	self uint32
}

// New returns a Selector for c (which should have passed Validate).
func New(procRoot string, c Criteria) *Selector {
	s := &Selector{root: procinfo.Root(procRoot), c: c, ports: map[uint16]bool{}, globs: compileGlobs(c.ExeGlobs), self: uint32(os.Getpid())}
	for _, p := range c.Ports {
		s.ports[p] = true
	}
	return s
}

// WatchesExec reports whether exec events can select processes (--exe).
func (s *Selector) WatchesExec() bool { return len(s.c.ExeGlobs) > 0 }

// WatchesListen reports whether listen events can select processes (--port).
func (s *Selector) WatchesListen() bool { return len(s.c.Ports) > 0 }

// Initial is the selection at start: every --pid (each must exist) and its
// current descendants, plus the current --exe and --port matches,
// deduplicated and sorted.
func (s *Selector) Initial() ([]uint32, error) {
	var pids []uint32
	for _, pid := range s.c.PIDs {
		if pid == s.self {
			return nil, fmt.Errorf("invalid --pid %d: that is the agent itself", pid)
		}
		if !procinfo.Exists(s.root, pid) {
			return nil, procinfo.NotFound(pid)
		}
		pids = append(pids, pid)
	}
	if len(pids) > 0 {
		// Children forked before the agent started (pre-fork workers);
		// later ones are selected by the kernel at fork.
		kids, err := procinfo.Descendants(s.root, pids)
		if err != nil {
			return nil, fmt.Errorf("listing processes: %w", err)
		}
		for _, k := range kids {
			if k != s.self {
				pids = append(pids, k)
			}
		}
	}
	if s.WatchesExec() || s.WatchesListen() {
		more, err := s.Rescan()
		if err != nil {
			return nil, err
		}
		pids = append(pids, more...)
	}
	slices.Sort(pids)
	return slices.Compact(pids), nil
}

// Rescan lists the current processes matching --exe or --port, sorted.
// --pid values are not included. On a partial failure (say net/tcp
// unreadable) it returns what it found along with the error.
func (s *Selector) Rescan() ([]uint32, error) {
	if !s.WatchesExec() && !s.WatchesListen() {
		return nil, nil
	}
	all, err := procinfo.PIDs(s.root)
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	var pids []uint32
	if s.WatchesExec() {
		for _, pid := range all {
			if pid != s.self && s.exeMatches(pid) {
				pids = append(pids, pid)
			}
		}
	}
	var errs []error
	if s.WatchesListen() {
		more, err := s.listeners(all)
		pids = append(pids, more...)
		errs = append(errs, err)
	}
	slices.Sort(pids)
	return slices.Compact(pids), errors.Join(errs...)
}

// OnExec reports whether a process that just exec'd matches an --exe glob,
// by its /proc entry or by what the kernel reported at exec (the only
// record left when a short-lived process is gone before we look).
func (s *Selector) OnExec(pid uint32, e procinfo.Exec) bool {
	return s.WatchesExec() && pid != s.self && (s.exeMatches(pid) || matchExe(s.globs, e.Path, e.Argv))
}

// OnListen reports whether a process's listen() on port selects it.
func (s *Selector) OnListen(pid uint32, port uint16) bool {
	return pid != s.self && s.ports[port]
}

// exeMatches reads pid's executable and argv and applies the globs.
func (s *Selector) exeMatches(pid uint32) bool {
	exe, _ := procinfo.ExePath(s.root, pid)
	argv, _ := procinfo.CommandLine(s.root, pid)
	return matchExe(s.globs, exe, argv)
}
