package selector

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tracer-agent/tracer-agent/agent/procinfo"
)

// tcpListen is the kernel's TCP_LISTEN state as printed in /proc/net/tcp.
const tcpListen = "0A"

// listeners finds the processes (among pids) holding a TCP socket that
// listens on one of the selected ports. The socket tables only give inodes,
// so fds are resolved to inodes, but only when some socket of interest is
// listening: the common "nothing there yet" rescan reads two small files.
// A listening socket may be shared by several processes (pre-fork servers),
// so every process is checked.
func (s *Selector) listeners(pids []uint32) ([]uint32, error) {
	inodes, err := s.listeningInodes()
	if len(inodes) == 0 {
		return nil, err
	}
	var out []uint32
	for _, pid := range pids {
		if pid != s.self && holdsAny(s.root, pid, inodes) {
			out = append(out, pid)
		}
	}
	return out, err
}

// listeningInodes reads net/tcp and net/tcp6 of procRoot (the agent's own
// network namespace) for LISTEN sockets on the selected ports.
func (s *Selector) listeningInodes() (map[uint64]bool, error) {
	inodes := map[uint64]bool{}
	var errs []error
	missing := 0
	for _, name := range []string{"tcp", "tcp6"} {
		f, err := os.Open(filepath.Join(s.root, "net", name))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				missing++ // tcp6 is absent when IPv6 is disabled
				continue
			}
			errs = append(errs, err)
			continue
		}
		err = parseListeners(f, s.ports, inodes)
		f.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("reading %s: %w", f.Name(), err))
		}
	}
	if missing == 2 {
		errs = append(errs, fmt.Errorf("no TCP socket table under %s/net", s.root))
	}
	return inodes, errors.Join(errs...)
}

// parseListeners adds to inodes the LISTEN sockets on ports found in a
// /proc/net/tcp{,6} table:
//
//	sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
//	 0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 12345 ...
func parseListeners(r io.Reader, ports map[uint16]bool, inodes map[uint64]bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 10 || f[3] != tcpListen {
			continue // header, short line or not listening
		}
		colon := strings.LastIndexByte(f[1], ':')
		if colon < 0 {
			continue
		}
		port, err := strconv.ParseUint(f[1][colon+1:], 16, 16)
		if err != nil || !ports[uint16(port)] {
			continue
		}
		inode, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil || inode == 0 {
			continue
		}
		inodes[inode] = true
	}
	return sc.Err()
}

// holdsAny reports whether pid has an fd on one of the socket inodes.
// Unreadable fd directories (exited process, no permission) count as no.
func holdsAny(root string, pid uint32, inodes map[uint64]bool) bool {
	dir := procinfo.Path(root, pid, "fd")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		if inode, ok := socketInode(link); ok && inodes[inode] {
			return true
		}
	}
	return false
}

// socketInode parses an fd link of the form "socket:[12345]".
func socketInode(link string) (uint64, bool) {
	rest, ok := strings.CutPrefix(link, "socket:[")
	if !ok {
		return 0, false
	}
	rest, ok = strings.CutSuffix(rest, "]")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(rest, 10, 64)
	return n, err == nil
}
