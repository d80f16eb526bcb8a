package capture

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracer-agent/tracer-agent/bpf"
)

// attachInjection attaches sockops to the cgroup v2 root (it adds the
// client sockets of selected processes to the sockhash) and the sk_msg
// program to the sockhash (it inserts the planned traceparent lines).
func (c *Capture) attachInjection(cgroupPath string) error {
	if cgroupPath == "" {
		p, err := cgroup2Mount()
		if err != nil {
			return err
		}
		cgroupPath = p
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
	sockhash := c.coll.Maps["client_socks"]
	msg := c.coll.Programs["inject_traceparent"]
	if err := link.RawAttachProgram(link.RawAttachProgramOptions{
		Target:  sockhash.FD(),
		Program: msg,
		Attach:  ebpf.AttachSkMsgVerdict,
	}); err != nil {
		return fmt.Errorf("attach sk_msg to the sockhash (use --no-inject to trace without propagation): %w", err)
	}
	// Released with the sockhash when the collection closes.
	return nil
}

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
