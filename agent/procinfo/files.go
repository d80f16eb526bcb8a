package procinfo

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrNotFound is matched (errors.Is) by the error of a missing process.
var ErrNotFound = errors.New("process not found")

type notFoundError struct{ pid uint32 }

func (e notFoundError) Error() string        { return fmt.Sprintf("process %d not found", e.pid) }
func (e notFoundError) Is(target error) bool { return target == ErrNotFound }

// NotFound is the error for a pid that does not exist: "process <pid> not found".
func NotFound(pid uint32) error { return notFoundError{pid} }

// Root defaults an empty procRoot to "/proc".
func Root(procRoot string) string {
	if procRoot == "" {
		return "/proc"
	}
	return procRoot
}

// Path is <procRoot>/<pid>/<name>.
func Path(procRoot string, pid uint32, name string) string {
	return filepath.Join(Root(procRoot), strconv.FormatUint(uint64(pid), 10), name)
}

// Exists reports whether <procRoot>/<pid> is there.
func Exists(procRoot string, pid uint32) bool {
	_, err := os.Stat(Path(procRoot, pid, ""))
	return err == nil
}

// ExePath is the process's executable path. Kernel threads and zombies
// have none (error); a replaced or removed binary loses its " (deleted)"
// suffix so it still names the program.
func ExePath(procRoot string, pid uint32) (string, error) {
	p, err := os.Readlink(Path(procRoot, pid, "exe"))
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(p, " (deleted)"), nil
}

// CommandLine is the process's argv, empty for kernel threads.
func CommandLine(procRoot string, pid uint32) ([]string, error) {
	b, err := os.ReadFile(Path(procRoot, pid, "cmdline"))
	if err != nil {
		return nil, err
	}
	return splitNUL(b), nil
}

// Environ is the process's initial environment as NAME=value strings.
func Environ(procRoot string, pid uint32) ([]string, error) {
	b, err := os.ReadFile(Path(procRoot, pid, "environ"))
	if err != nil {
		return nil, err
	}
	return splitNUL(b), nil
}

// PIDs lists the processes (thread-group leaders) under procRoot.
func PIDs(procRoot string) ([]uint32, error) {
	ents, err := os.ReadDir(Root(procRoot))
	if err != nil {
		return nil, err
	}
	pids := make([]uint32, 0, len(ents))
	for _, e := range ents {
		if !e.IsDir() && e.Type()&fs.ModeSymlink == 0 {
			continue
		}
		n, err := strconv.ParseUint(e.Name(), 10, 32)
		if err != nil || n == 0 {
			continue // "self", "net", "sys", ...
		}
		pids = append(pids, uint32(n))
	}
	return pids, nil
}

// splitNUL splits NUL-terminated strings. Processes may rewrite their
// argv area (setproctitle), leaving one space-joined string; that is kept
// as is since argv[0] is then the best we have anyway.
func splitNUL(b []byte) []string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return nil
	}
	parts := bytes.Split(b, []byte{0})
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = string(p)
	}
	return out
}

// PPID is the parent pid from /proc/<pid>/stat (the field after the
// command, which may itself hold spaces and parentheses).
func PPID(procRoot string, pid uint32) (uint32, bool) {
	b, err := os.ReadFile(Path(procRoot, pid, "stat"))
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, false
	}
	n, err := strconv.ParseUint(f[1], 10, 32)
	return uint32(n), err == nil
}

// Descendants lists the processes under procRoot whose ancestry reaches
// one of roots (the roots excluded), e.g. the workers a pre-fork server
// (nginx, gunicorn, php-fpm) forked before the agent started.
func Descendants(procRoot string, roots []uint32) ([]uint32, error) {
	all, err := PIDs(procRoot)
	if err != nil {
		return nil, err
	}
	parent := make(map[uint32]uint32, len(all))
	for _, p := range all {
		if pp, ok := PPID(procRoot, p); ok {
			parent[p] = pp
		}
	}
	in := make(map[uint32]bool, len(roots))
	for _, r := range roots {
		in[r] = true
	}
	var out []uint32
	for _, p := range all {
		// Walk up; the depth bound guards against a cycle from pid reuse
		// between reads.
		for q, depth := parent[p], 0; q > 1 && depth < 64; q, depth = parent[q], depth+1 {
			if in[q] {
				if !in[p] {
					out = append(out, p)
				}
				break
			}
		}
	}
	return out, nil
}
