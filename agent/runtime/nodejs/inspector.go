package nodejs

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// listeners returns the TCP ports pid listens on (from its own network
// namespace's tables, restricted to sockets among its fds).
func listeners(procRoot string, pid int) (map[int]bool, error) {
	inodes := map[string]bool{}
	fdDir := filepath.Join(procRoot, strconv.Itoa(pid), "fd")
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		l, err := os.Readlink(filepath.Join(fdDir, e.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	ports := map[int]bool{}
	for _, tab := range []string{"tcp", "tcp6"} {
		f, err := os.Open(filepath.Join(procRoot, strconv.Itoa(pid), "net", tab))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			fs := strings.Fields(sc.Text())
			if len(fs) < 10 || fs[3] != "0A" || !inodes[fs[9]] {
				continue
			}
			if i := strings.LastIndexByte(fs[1], ':'); i > 0 {
				if p, err := strconv.ParseUint(fs[1][i+1:], 16, 16); err == nil && isLoopback(fs[1][:i]) {
					ports[int(p)] = true
				}
			}
		}
		f.Close()
	}
	return ports, nil
}

// isLoopback: a /proc/net/tcp{,6} address in hex is 127.0.0.1 or ::1.
func isLoopback(h string) bool {
	b, err := hex.DecodeString(h)
	if err != nil {
		return false
	}
	switch len(b) {
	case 4: // host byte order on little endian: 0100007F
		return b[3] == 127
	case 16:
		return strings.EqualFold(h, "00000000000000000000000001000000")
	}
	return false
}

// dialIn connects to 127.0.0.1:port inside pid's network namespace (a
// pod's, in Kubernetes). The socket keeps its namespace after the thread
// returns to the agent's.
func dialIn(procRoot string, pid, port int, timeout time.Duration) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		own, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer unix.Close(own)
		target, err := unix.Open(filepath.Join(procRoot, strconv.Itoa(pid), "ns", "net"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer unix.Close(target)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, fmt.Errorf("enter the network namespace of %d: %w", pid, err)}
			return
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), timeout)
		if unix.Setns(own, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread() // else the thread ends with this goroutine, never reused
		}
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// dial connects to the inspector and tells h.own before any byte flows.
func (h *Helper) dial(pid, port int, deadline time.Time) (net.Conn, error) {
	c, err := dialIn(h.procRoot, pid, port, time.Until(deadline))
	if err != nil {
		return nil, err
	}
	l, lok := c.LocalAddr().(*net.TCPAddr)
	r, rok := c.RemoteAddr().(*net.TCPAddr)
	if lok && rok {
		h.own(pid, l.AddrPort(), r.AddrPort())
	}
	return c, nil
}

// debuggerPath asks the inspector on port for its target's WebSocket path.
func (h *Helper) debuggerPath(pid, port int, deadline time.Time) (string, error) {
	c, err := h.dial(pid, port, deadline)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(deadline)
	if _, err := io.WriteString(c, "GET /json/list HTTP/1.1\r\nHost: 127.0.0.1:"+strconv.Itoa(port)+"\r\nConnection: close\r\n\r\n"); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var targets []struct {
		URL string `json:"webSocketDebuggerUrl"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&targets); err != nil || len(targets) == 0 {
		return "", fmt.Errorf("port %d is not a Node.js inspector (%v)", port, err)
	}
	return wsPath(targets[0].URL)
}

// session is one inspector (Chrome DevTools protocol) connection.
type session struct {
	ws   *wsConn
	next int
}

func (h *Helper) openSession(pid, port int, deadline time.Time) (*session, error) {
	path, err := h.debuggerPath(pid, port, deadline)
	if err != nil {
		return nil, err
	}
	c, err := h.dial(pid, port, deadline)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(deadline)
	ws, err := wsHandshake(c, "127.0.0.1:"+strconv.Itoa(port), path)
	if err != nil {
		c.Close()
		return nil, err
	}
	return &session{ws: ws}, nil
}

// evaluate runs expr in the main context with the command line API (it
// has require) and returns its string result.
func (s *session) evaluate(expr string) (string, error) {
	s.next++
	id := s.next
	msg, _ := json.Marshal(map[string]any{"id": id, "method": "Runtime.evaluate", "params": map[string]any{
		"expression": expr, "includeCommandLineAPI": true, "returnByValue": true, "silent": true}})
	if err := s.ws.WriteText(msg); err != nil {
		return "", err
	}
	for {
		raw, err := s.ws.ReadText()
		if err != nil {
			return "", err
		}
		var r struct {
			ID     int `json:"id"`
			Result struct {
				Result struct {
					Value any `json:"value"`
				} `json:"result"`
				Exception *struct {
					Text      string `json:"text"`
					Exception struct {
						Description string `json:"description"`
					} `json:"exception"`
				} `json:"exceptionDetails"`
			} `json:"result"`
			Error *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(raw, &r) != nil || r.ID != id {
			continue // an event
		}
		switch {
		case r.Error != nil:
			return "", fmt.Errorf("inspector: %s", r.Error.Message)
		case r.Result.Exception != nil:
			d := r.Result.Exception.Exception.Description
			if i := strings.IndexByte(d, '\n'); i > 0 {
				d = d[:i]
			}
			return "", fmt.Errorf("in the process: %s %s", r.Result.Exception.Text, d)
		}
		return fmt.Sprint(r.Result.Result.Value), nil
	}
}
