package k8s

import (
	"os"

	"github.com/tracer-agent/tracer-agent/agent/procinfo"
)

// cgroupScanner maps the host's processes to container ids. It remembers
// each pid's container between scans so that a scan triggered by a pod or
// namespace event reads only new pids; a full scan (Resync) re-reads all,
// which also corrects any pid reused meanwhile. Not safe for concurrent
// use: the Watcher serialises scans.
type cgroupScanner struct {
	procRoot string
	known    map[uint32]string // pid → container id, "" = not in a container
}

// scan lists the processes and their container ids, keeping only those in
// a container.
func (s *cgroupScanner) scan(full bool) (map[uint32]string, error) {
	pids, err := procinfo.PIDs(s.procRoot)
	if err != nil {
		return nil, err
	}
	if s.known == nil || full {
		s.known = make(map[uint32]string, len(pids))
	}
	seen := make(map[uint32]string, len(pids))
	for _, pid := range pids {
		id, ok := s.known[pid]
		if !ok {
			id = containerOfPID(s.procRoot, pid)
		}
		seen[pid] = id
	}
	s.known = seen
	out := make(map[uint32]string)
	for pid, id := range seen {
		if id != "" {
			out[pid] = id
		}
	}
	return out, nil
}

// containerOfPID is the container id of pid, "" if none or unreadable
// (exited).
func containerOfPID(procRoot string, pid uint32) string {
	b, err := os.ReadFile(procinfo.Path(procRoot, pid, "cgroup"))
	if err != nil {
		return ""
	}
	id, _ := ContainerIDOf(string(b))
	return id
}
