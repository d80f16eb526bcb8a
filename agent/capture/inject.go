package capture

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sys/unix"

	"github.com/tracer-agent/tracer-agent/bpf"
)

// attachInjection attaches the sk_msg program to the sockhash (it inserts
// the planned traceparent lines), checks the kernel's FIONREAD answer for a
// socket in the sockhash and, where it is wrong, attaches a pass-through
// receive verdict that makes it right; then sockops on the cgroup v2 root,
// which adds the client sockets of selected processes to the sockhash. The
// order matters: a socket takes the sockhash's programs when it joins.
func (c *Capture) attachInjection(cgroupPath string) error {
	if cgroupPath == "" {
		p, err := cgroup2Mount()
		if err != nil {
			return err
		}
		cgroupPath = p
	}
	sockhash := c.coll.Maps["client_socks"]
	if err := link.RawAttachProgram(link.RawAttachProgramOptions{
		Target:  sockhash.FD(),
		Program: c.coll.Programs["inject_traceparent"],
		Attach:  ebpf.AttachSkMsgVerdict,
	}); err != nil {
		return fmt.Errorf("attach sk_msg to the sockhash (use --no-inject to trace without propagation): %w", err)
	}
	// Both programs are released with the sockhash when the collection closes.
	c.fionread.Before, c.fionread.Err = c.CheckFIONREAD()
	c.fionread.After = c.fionread.Before
	if c.fionread.Err == nil && c.fionread.Before != FIONREADProbeBytes {
		if err := link.RawAttachProgram(link.RawAttachProgramOptions{
			Target:  sockhash.FD(),
			Program: c.coll.Programs["pass_received"],
			Attach:  ebpf.AttachSkSKBVerdict,
		}); err != nil {
			c.fionread.Err = fmt.Errorf("attach the receive verdict that repairs FIONREAD: %w", err)
		} else {
			c.fionread.Verdict = true
			c.fionread.After, c.fionread.Err = c.CheckFIONREAD()
		}
	}
	l, err := link.AttachCgroup(link.CgroupOptions{
		Path:    cgroupPath,
		Attach:  ebpf.AttachCGroupSockOps,
		Program: c.coll.Programs["track_client_sockets"],
	})
	if err != nil {
		return fmt.Errorf("attach sockops to cgroup %s (use --no-inject to trace without propagation): %w", cgroupPath, err)
	}
	c.links = append(c.links, l)
	return nil
}

// FIONREADCheck is what the start-up self-test found: FIONREAD's answer
// for a socket in the sockhash (FIONREADProbeBytes when right) before and
// after the repairing verdict, which is attached only where needed.
type FIONREADCheck struct {
	Before, After int
	Verdict       bool
	Err           error
}

// FIONREAD reports the start-up self-test (zero without injection).
func (c *Capture) FIONREAD() FIONREADCheck { return c.fionread }

// cgroup2Mount finds where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup
// on unified systems, /sys/fs/cgroup/unified on hybrid ones).
func cgroup2Mount() (string, error) {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 3 && fields[2] == "cgroup2" {
			return fields[1], nil
		}
	}
	return "", fmt.Errorf("no cgroup v2 hierarchy mounted (needed for traceparent injection; use --no-inject, or mount -t cgroup2 none /sys/fs/cgroup/unified)")
}

// decodeCtx turns the kernel's trace_ctx into span contexts.
func decodeCtx(k *bpf.CaptureTraceCtx, ev *Event) {
	flags := trace.TraceFlags(k.TraceFlags) & trace.FlagsSampled
	ev.CtxKind = CtxKind(k.Kind)
	ev.Injected = k.CtxFlags&2 != 0
	ev.Forwarded = k.CtxFlags&4 != 0
	ev.Ctx = trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID(k.TraceId),
		SpanID:     trace.SpanID(k.SpanId),
		TraceFlags: flags,
	})
	if k.CtxFlags&1 != 0 {
		// A server's parent is its remote caller; a client's parent is the
		// server span of the same process.
		ev.Parent = trace.NewSpanContext(trace.SpanContextConfig{
			TraceID:    trace.TraceID(k.TraceId),
			SpanID:     trace.SpanID(k.ParentId),
			TraceFlags: flags,
			Remote:     ev.CtxKind == CtxServer,
		})
	}
}

// CheckFIONREAD tests the kernel regression (6.6.128+, 6.12.75+, 6.18.14+)
// where a socket in a sockhash answers ioctl(FIONREAD) wrongly, which
// stalls programs that size their reads with it. It puts one end of a
// loopback connection of the agent's own into the sockhash, sends it
// FIONREADProbeBytes and returns what FIONREAD says.
func (c *Capture) CheckFIONREAD() (got int, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	cl, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	srv, err := ln.Accept()
	if err != nil {
		return 0, err
	}
	defer srv.Close()
	raw, err := cl.(*net.TCPConn).SyscallConn()
	if err != nil {
		return 0, err
	}
	sockhash := c.coll.Maps["client_socks"]
	var n int
	var opErr error
	err = raw.Control(func(fd uintptr) {
		cookie, err := unix.GetsockoptUint64(int(fd), unix.SOL_SOCKET, unix.SO_COOKIE)
		if err != nil {
			opErr = err
			return
		}
		if err := sockhash.Update(cookie, uint64(fd), ebpf.UpdateAny); err != nil {
			opErr = fmt.Errorf("add test socket to the sockhash: %w", err)
			return
		}
		defer sockhash.Delete(cookie)
		if _, err := srv.Write(make([]byte, 100)); err != nil {
			opErr = err
			return
		}
		for i := 0; i < 50; i++ { // wait for delivery; FIONREAD should then say 100
			if n, opErr = unix.IoctlGetInt(int(fd), unix.SIOCINQ); opErr != nil || n == 100 {
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	})
	if err == nil {
		err = opErr
	}
	return n, err
}

// FIONREADProbeBytes is what CheckFIONREAD sends: a correct kernel reports it.
const FIONREADProbeBytes = 100
