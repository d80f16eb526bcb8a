package capture_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tracer-agent/tracer-agent/agent/capture"
	"github.com/tracer-agent/tracer-agent/internal/testenv"
	"github.com/tracer-agent/tracer-agent/probes/probe"
)

// recorder collects events from a running Capture.
type recorder struct {
	mu   sync.Mutex
	data []capture.Event
	ctl  []capture.Event
}

func (r *recorder) onData(e *capture.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := *e
	c.Data = bytes.Clone(e.Data)
	r.data = append(r.data, c)
}

func (r *recorder) onCtl(e *capture.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ctl = append(r.ctl, *e)
}

// waitData waits until an event matches.
func (r *recorder) waitData(t *testing.T, what string, match func(*capture.Event) bool) capture.Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		for i := range r.data {
			if match(&r.data[i]) {
				e := r.data[i]
				r.mu.Unlock()
				return e
			}
		}
		r.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no event for %s; got %d data events", what, len(r.data))
	return capture.Event{}
}

func start(t *testing.T, opts capture.Options) (*capture.Capture, *recorder) {
	t.Helper()
	testenv.RequireBPF(t)
	c, err := capture.Load(opts)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	rec := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx, rec.onData, rec.onCtl) }()
	t.Cleanup(func() { cancel(); <-done; c.Close() })
	return c, rec
}

// pair returns a connected loopback TCP pair: (client, server).
func pair(t *testing.T, network, addr string) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cli, err := net.Dial(network, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close(); srv.Close() })
	return cli, srv
}

func rawFD(t *testing.T, c net.Conn) int {
	t.Helper()
	f, err := c.(*net.TCPConn).File() // a dup in blocking mode: fine for raw syscalls
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return int(f.Fd())
}

func TestCaptureEverySyscallFamily(t *testing.T) {
	c, rec := start(t, capture.Options{CaptureBytes: 4096})
	pid := uint32(os.Getpid())
	if err := c.Track(pid, false); err != nil {
		t.Fatal(err)
	}
	cli, srv := pair(t, "tcp4", "127.0.0.1:0")
	cfd, sfd := rawFD(t, cli), rawFD(t, srv)
	buf := make([]byte, 64)

	// write / read
	if _, err := unix.Write(cfd, []byte("hello-write")); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Read(sfd, buf); err != nil {
		t.Fatal(err)
	}
	// sendto / recvfrom
	if err := unix.Sendto(cfd, []byte("hello-sendto"), 0, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := unix.Recvfrom(sfd, buf, 0); err != nil {
		t.Fatal(err)
	}
	// writev / readv with several iovecs
	if _, err := unix.Writev(cfd, [][]byte{[]byte("hello-"), []byte("wri"), []byte("tev")}); err != nil {
		t.Fatal(err)
	}
	a, b := make([]byte, 3), make([]byte, 61)
	if _, err := unix.Readv(sfd, [][]byte{a, b}); err != nil {
		t.Fatal(err)
	}
	// sendmsg / recvmsg
	if _, err := unix.SendmsgBuffers(cfd, [][]byte{[]byte("hello-"), []byte("sendmsg")}, nil, nil, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, _, _, err := unix.Recvmsg(sfd, buf, nil, 0); err != nil {
		t.Fatal(err)
	}

	cliLocal := cli.LocalAddr().(*net.TCPAddr).AddrPort()
	srvLocal := srv.LocalAddr().(*net.TCPAddr).AddrPort()
	for _, want := range []string{"hello-write", "hello-sendto", "hello-writev", "hello-sendmsg"} {
		send := rec.waitData(t, "send "+want, func(e *capture.Event) bool {
			return e.Dir == probe.Send && string(e.Data) == want
		})
		recv := rec.waitData(t, "recv "+want, func(e *capture.Event) bool {
			return e.Dir == probe.Recv && string(e.Data) == want
		})
		if send.PID != pid || send.Len != uint32(len(want)) {
			t.Errorf("%s: send pid=%d len=%d", want, send.PID, send.Len)
		}
		if send.Local != cliLocal || send.Remote != srvLocal {
			t.Errorf("%s: send addrs %v -> %v, want %v -> %v", want, send.Local, send.Remote, cliLocal, srvLocal)
		}
		if recv.Local != srvLocal || recv.Remote != cliLocal {
			t.Errorf("%s: recv addrs %v -> %v, want %v -> %v", want, recv.Local, recv.Remote, srvLocal, cliLocal)
		}
		if send.SockID == recv.SockID || send.SockID == 0 {
			t.Errorf("%s: socket ids %x %x: want two distinct sockets", want, send.SockID, recv.SockID)
		}
		if send.Start.After(send.End) || time.Since(send.End) > time.Minute || send.End.After(time.Now()) {
			t.Errorf("%s: implausible times %v..%v", want, send.Start, send.End)
		}
	}
}

func TestCaptureTruncatesAndIPv6(t *testing.T) {
	c, rec := start(t, capture.Options{CaptureBytes: 100})
	if err := c.Track(uint32(os.Getpid()), false); err != nil {
		t.Fatal(err)
	}
	cli, srv := pair(t, "tcp6", "[::1]:0")
	big := bytes.Repeat([]byte("x"), 5000)
	if _, err := cli.Write(big); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(big))
	if _, err := srv.Read(got); err != nil {
		t.Fatal(err)
	}
	e := rec.waitData(t, "truncated send", func(e *capture.Event) bool { return e.Dir == probe.Send && e.Len == 5000 })
	if len(e.Data) != 100 || !e.Remote.Addr().Is6() {
		t.Errorf("captured %d bytes (want 100), remote %v", len(e.Data), e.Remote)
	}
	k, err := c.Counters()
	if err != nil || k.Truncated == 0 {
		t.Errorf("counters %+v err %v: want truncated > 0", k, err)
	}
}

func TestCaptureCloseAndUnselected(t *testing.T) {
	c, rec := start(t, capture.Options{CaptureBytes: 64})
	cli, srv := pair(t, "tcp4", "127.0.0.1:0")
	// Not selected yet: nothing is captured.
	cli.Write([]byte("before-track"))
	srv.Read(make([]byte, 64))
	if err := c.Track(uint32(os.Getpid()), false); err != nil {
		t.Fatal(err)
	}
	cli.Write([]byte("after-track"))
	srv.Read(make([]byte, 64))
	e := rec.waitData(t, "after-track", func(e *capture.Event) bool { return string(e.Data) == "after-track" })
	cli.Close()
	rec.waitData(t, "close", func(x *capture.Event) bool { return x.Type == capture.Close && x.SockID == e.SockID })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, x := range rec.data {
		if strings.Contains(string(x.Data), "before-track") {
			t.Errorf("captured traffic of an unselected process")
		}
	}
}

func TestForkedChildIsSelected(t *testing.T) {
	c, rec := start(t, capture.Options{CaptureBytes: 64})
	if err := c.Track(uint32(os.Getpid()), false); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "0.2")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	child := uint32(cmd.Process.Pid)
	deadline := time.Now().Add(3 * time.Second)
	for {
		rec.mu.Lock()
		var fork, exit bool
		for _, e := range rec.ctl {
			fork = fork || e.Type == capture.Fork && e.TID == child
			exit = exit || e.Type == capture.Exit && e.PID == child
		}
		rec.mu.Unlock()
		if fork && exit {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fork seen=%v exit seen=%v for child %d", fork, exit, child)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Wait()
}
