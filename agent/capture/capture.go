// Package capture loads the kernel capture programs (bpf/capture.c),
// attaches them to their tracepoints, keeps the selected-process map, and
// decodes the ring buffers into Events.
package capture

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sys/unix"

	"github.com/tracer-agent/tracer-agent/bpf"
	"github.com/tracer-agent/tracer-agent/probes/probe"
)

// pollEvery bounds how long an event waits in the ring when the kernel did
// not wake the reader (bpf/common.h data_wakeup_flags: it does when an
// eighth of the ring waits, ringwake.go). Each wakeup costs the agent a
// scheduling round trip, timers and often a sysmon spin, which on this
// kind of VM weighed more than the work of a 10 ms batch: 10 → 100 ms
// took the agent from ~17 to ~12 µs of CPU per span. Spans lose nothing:
// their times come from the kernel and the exporter batches for seconds.
// While the ring stays empty the interval doubles up to idlePoll.
const (
	pollEvery = 100 * time.Millisecond
	idlePoll  = 200 * time.Millisecond
	// yieldEvery records the reader lets other goroutines run.
	yieldEvery = 256
)

// MaxCaptureBytes is the kernel's compile-time bound on captured payload.
const MaxCaptureBytes = 8192

// Type of an event, mirrors enum event_type in bpf/common.h.
type Type uint8

const (
	Data   Type = 1
	Close  Type = 2
	Exec   Type = 3
	Exit   Type = 4
	Fork   Type = 5
	Listen Type = 6
	H2Segs Type = 7 // HTTP/2 header segments (Segs) of the next Data event of the socket and thread
)

// Event is one decoded kernel event. Data is only valid during the handler
// call (it aliases the ring buffer record); copy it to keep it.
type Event struct {
	Type Type
	Dir  probe.Direction
	// Pending: the process exec'd while the agent selects by executable and
	// has not been confirmed yet (see Capture.Confirm).
	Pending bool
	PID     uint32
	TID     uint32 // for Fork: the child's pid
	FD      int32
	SockID  uint64
	Start   time.Time
	End     time.Time
	Len     uint32 // bytes moved; for Listen: the port
	Data    []byte
	// Segs (H2Segs events): for HTTP/2 sockets, frame headers and
	// non-DATA payloads past the Data of the socket's next event from this
	// thread (bpf/h2_seg.h); they alias the ring like Data.
	Segs []probe.Segment
	// Streams (H2Segs events): the kernel's ids of HTTP/2 streams whose
	// request HEADERS the socket's next event from this thread reads
	// (bpf/h2_stream.h).
	Streams []probe.StreamCtx
	Local   netip.AddrPort
	Remote  netip.AddrPort
	// Ctx is the trace context the kernel decided for a request read (the
	// SERVER span's own ids) or written (the CLIENT span's ids, injected
	// into the request when Injected); Parent is its parent, if any.
	Ctx      trace.SpanContext
	Parent   trace.SpanContext
	CtxKind  CtxKind
	Injected bool
	// Forwarded: the request written carries the traceparent of the
	// request its process serves (a proxy); Ctx is the kernel's client span
	// of that request, written over the parent-id when Injected.
	Forwarded bool
}

// CtxKind says what Event.Ctx describes (enum ctx_kind in bpf/common.h).
type CtxKind uint8

const (
	CtxNone   CtxKind = 0
	CtxServer CtxKind = 1
	CtxClient CtxKind = 2
)

// Options configure the kernel side.
type Options struct {
	CaptureBytes int  // payload prefix per syscall, 1..MaxCaptureBytes
	RingBytes    int  // data ring size (power of two, multiple of page size); 0 = default
	WatchExec    bool // report every exec (to select by executable)
	WatchListen  bool // report every listen (to select by port)
	// Inject inserts traceparent into requests that selected processes
	// send while serving a request (sockops + sk_msg); off: read only.
	Inject bool
	// KafkaInject also adds a traceparent record header to the Kafka
	// Produce requests selected processes send (needs Inject).
	KafkaInject bool
	// Sampler decides new traces in the kernel (see ParseSampler).
	Sampler Sampler
	// CgroupPath is the cgroup v2 directory sockops attaches to; "" finds
	// the cgroup2 mount.
	CgroupPath string
}

// Capture is the loaded and attached kernel side.
type Capture struct {
	coll  *ebpf.Collection
	pids  *ebpf.Map // traced_pids
	links []link.Link
	data  *ringMap
	ctl   *ringbuf.Reader
	clock monoClock
	once  sync.Once

	fionread FIONREADCheck // start-up self-test, with injection

	exeMu sync.Mutex
	exes  map[exeKey]error // executables given a set of uprobes
	// goroutine lineage's ranges (golineage.go): next free one, executables
	spawnNext, spawnExes uint32
	pidLnks              map[uint32][]link.Link // uprobes of one process (AttachPython)
	pyGen                uint32
	// detaching: uprobes being closed aside (Close waits for them)
	detaching sync.WaitGroup
}

// Load loads and attaches the capture programs.
func Load(opts Options) (*Capture, error) {
	if opts.CaptureBytes <= 0 || opts.CaptureBytes > MaxCaptureBytes {
		return nil, fmt.Errorf("capture size %d out of range 1..%d", opts.CaptureBytes, MaxCaptureBytes)
	}
	spec, err := bpf.LoadCapture()
	if err != nil {
		return nil, fmt.Errorf("read embedded BPF objects: %w", err)
	}
	set := map[string]any{
		"capture_size":         uint32(opts.CaptureBytes),
		"watch_exec":           boolByte(opts.WatchExec),
		"watch_listen":         boolByte(opts.WatchListen),
		"inject_enabled":       boolByte(opts.Inject),
		"kafka_inject_enabled": boolByte(opts.Inject && opts.KafkaInject),
		"sample_bound":         opts.Sampler.bound(),
		"parent_based":         boolByte(opts.Sampler.ParentBased || !opts.Sampler.set),
	}
	for name, v := range set {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("set %s: %w", name, err)
		}
	}
	if opts.RingBytes > 0 {
		spec.Maps["events"].MaxEntries = uint32(opts.RingBytes)
	}
	// The kernel wakes the data reader when an eighth of the ring waits
	// (bpf/common.h data_wakeup_flags); the poll drains it below that.
	if err := spec.Variables["wakeup_bytes"].Set(uint64(spec.Maps["events"].MaxEntries / 8)); err != nil {
		return nil, fmt.Errorf("set wakeup_bytes: %w", err)
	}

	c := &Capture{clock: newMonoClock()}
	if c.coll, err = ebpf.NewCollection(spec); err != nil {
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) {
			return nil, fmt.Errorf("kernel rejected the capture programs: %+v", verr)
		}
		return nil, fmt.Errorf("load capture programs: %w", err)
	}
	c.pids = c.coll.Maps["traced_pids"]
	if err := c.attach(spec); err != nil {
		c.Close()
		return nil, err
	}
	if opts.Inject {
		if err := c.attachInjection(opts.CgroupPath); err != nil {
			c.Close()
			return nil, err
		}
	}
	if c.data, err = newRingMap(c.coll.Maps["events"]); err != nil {
		c.Close()
		return nil, fmt.Errorf("open data ring: %w", err)
	}
	if c.ctl, err = ringbuf.NewReader(c.coll.Maps["ctl_events"]); err != nil {
		c.Close()
		return nil, fmt.Errorf("open control ring: %w", err)
	}
	return c, nil
}

// attach links every program to the hook its ELF section names, so adding
// a program in C needs no Go change.
func (c *Capture) attach(spec *ebpf.CollectionSpec) error {
	for name, ps := range spec.Programs {
		prog := c.coll.Programs[name]
		sec := ps.SectionName
		var (
			l   link.Link
			err error
		)
		switch {
		case strings.HasPrefix(sec, "tracepoint/"):
			group, event, _ := strings.Cut(strings.TrimPrefix(sec, "tracepoint/"), "/")
			l, err = link.Tracepoint(group, event, prog, nil)
		case strings.HasPrefix(sec, "tp_btf/"):
			l, err = link.AttachTracing(link.TracingOptions{Program: prog, AttachType: ps.AttachType})
		case strings.HasPrefix(sec, "raw_tracepoint/"):
			l, err = link.AttachRawTracepoint(link.RawTracepointOptions{
				Name: strings.TrimPrefix(sec, "raw_tracepoint/"), Program: prog})
		case sec == "sockops" || sec == "sk_msg" || strings.HasPrefix(sec, "sk_skb"):
			continue // injection: attached by attachInjection when enabled
		case strings.HasPrefix(sec, "uprobe/") || strings.HasPrefix(sec, "uretprobe/"):
			continue // per executable (AttachGo, AttachNginx) or process (AttachPython)
		case sec == "syscall":
			continue // run on demand
		default:
			return fmt.Errorf("program %s: unknown section %q", name, sec)
		}
		if err != nil {
			return fmt.Errorf("attach %s (%s): %w", name, sec, err)
		}
		c.links = append(c.links, l)
	}
	return nil
}

// Track selects a process (tgid) for capture (or confirms a pending one).
// goRuntime marks a Go program: its requests are tracked per goroutine.
func (c *Capture) Track(pid uint32, goRuntime bool) error {
	v := uint8(stateOn)
	if goRuntime {
		v |= stateGo
	}
	return c.pids.Update(pid, v, ebpf.UpdateAny)
}

// Values of traced_pids (enum trace_state in bpf/common.h).
const (
	stateOn   = 1
	stateGo   = 0x10
	stateBind = 0x20
)

// Untrack deselects a process; missing entries are not an error.
func (c *Capture) Untrack(pid uint32) error {
	err := c.pids.Delete(pid)
	c.detachProcess(pid) // after: AttachPython checks the pid under the same lock
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil
	}
	return err
}

// Tracked lists the tgids currently selected in the kernel (including
// children the kernel added on fork).
func (c *Capture) Tracked() []uint32 {
	var (
		k   uint32
		v   uint8
		out []uint32
	)
	it := c.pids.Iterate()
	for it.Next(&k, &v) {
		out = append(out, k)
	}
	return out
}

// Counters are the kernel's cumulative counters.
type Counters struct {
	DataEvents, DataDrops, CtlDrops, Truncated, ArgsDrops uint64
	Injected, InjectFailed, SockhashFull                  uint64
	Rewritten                                             uint64 // forwarded traceparents given our span id
	H2SegLost                                             uint64 // HTTP/2 directions whose frame position the kernel lost
}

// Counters sums the per-CPU counters.
func (c *Capture) Counters() (Counters, error) {
	get := func(i uint32) (uint64, error) {
		var vals []uint64
		if err := c.coll.Maps["counters"].Lookup(i, &vals); err != nil {
			return 0, err
		}
		var s uint64
		for _, v := range vals {
			s += v
		}
		return s, nil
	}
	var out Counters
	for i, dst := range []*uint64{&out.DataEvents, &out.DataDrops, &out.CtlDrops, &out.Truncated, &out.ArgsDrops,
		&out.Injected, &out.InjectFailed, &out.SockhashFull, &out.Rewritten, &out.H2SegLost} {
		v, err := get(uint32(i))
		if err != nil {
			return out, err
		}
		*dst = v
	}
	return out, nil
}

// Run reads both rings until ctx is done, calling onData for data/close
// events (from one goroutine, in ring order) and onCtl for process events
// (from another goroutine).
func (c *Capture) Run(ctx context.Context, onData, onCtl func(*Event)) error {
	waker, err := newRingWaker(c.coll.Maps["events"])
	if err != nil {
		return err
	}
	defer waker.close()
	wctx, stopWaker := context.WithCancel(ctx)
	wakerDone := make(chan struct{})
	go func() { waker.run(wctx); close(wakerDone) }()
	defer func() { stopWaker(); <-wakerDone }()

	errc := make(chan error, 1)
	go func() { errc <- c.readCtl(ctx, c.ctl, onCtl) }()
	c.readData(ctx, c.data, onData, pollEvery, waker.C)
	return <-errc
}

// readData hands the data ring's records to fn until ctx is done, then
// drains what the ring still holds and returns. The kernel does not wake
// the reader for every event (some are always waiting): it reads the ring
// in place without a syscall (ringMap), then sleeps on a Go timer for
// poll, or until the kernel wakes it for a burst (wake).
func (c *Capture) readData(ctx context.Context, r *ringMap, fn func(*Event), poll time.Duration, wake <-chan struct{}) {
	var ev Event
	n := 0 // records read
	each := func(b []byte) {
		if n++; n%yieldEvery == 0 {
			// A drain runs for milliseconds; yielding keeps it under the
			// runtime's 10 ms forced preemption (a signal, and sysmon
			// back to polling every 20 µs for a while after).
			runtime.Gosched()
		}
		if c.decode(b, &ev) == nil {
			fn(&ev)
		}
	}
	timer := time.NewTimer(poll)
	defer timer.Stop()
	wait := poll
	for {
		got := r.drain(each) > 0
		if ctx.Err() != nil {
			return // drained after the end
		}
		wait = nextPoll(wait, poll, got)
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-wake:
		case <-ctx.Done(): // drain once more, then return
		}
	}
}

// readCtl hands the control ring's records to fn until ctx is done, then
// drains what the ring still holds and returns. The kernel wakes the
// reader for each event, so it blocks until woken: an idle agent is not
// woken for nothing.
func (c *Capture) readCtl(ctx context.Context, r *ringbuf.Reader, fn func(*Event)) error {
	var (
		rec ringbuf.Record
		ev  Event
	)
	// Flush makes ReadInto return what the ring holds, then ErrFlushed.
	stop := context.AfterFunc(ctx, func() { _ = r.Flush() })
	defer stop()
	for {
		if err := r.ReadInto(&rec); err != nil {
			if errors.Is(err, os.ErrClosed) || errors.Is(err, ringbuf.ErrFlushed) {
				return nil
			}
			return fmt.Errorf("read ring: %w", err)
		}
		if c.decode(rec.RawSample, &ev) == nil {
			fn(&ev)
		}
	}
}

// nextPoll is the next poll interval: back to poll after records came,
// doubling up to idlePoll while none do.
func nextPoll(wait, poll time.Duration, got bool) time.Duration {
	if got {
		return poll
	}
	return min(2*wait, max(idlePoll, poll))
}

var hdrSize = int(unsafe.Sizeof(bpf.CaptureEventHdr{}))

func (c *Capture) decode(b []byte, ev *Event) error {
	if len(b) < hdrSize {
		return fmt.Errorf("short event: %d bytes", len(b))
	}
	h := (*bpf.CaptureEventHdr)(unsafe.Pointer(&b[0]))
	*ev = Event{
		Type:    Type(h.Type),
		Dir:     probe.Direction(h.Dir),
		Pending: h.Flags&1 != 0,
		PID:     h.Pid,
		TID:     h.Tid,
		FD:      h.Fd,
		SockID:  h.SockId,
		Start:   c.clock.wall(h.StartNs),
		End:     c.clock.wall(h.EndNs),
		Len:     h.Len,
	}
	if ev.Type == Data || ev.Type == Close {
		ev.Local, ev.Remote = addrs(&h.Addr)
	}
	if ev.Type == Data && h.Ctx.Kind != 0 {
		decodeCtx(&h.Ctx, ev)
	}
	n := int(h.Captured)
	if n > 0 && hdrSize+n <= len(b) {
		ev.Data = b[hdrSize : hdrSize+n]
	}
	if h.Segs > 0 && hdrSize+n+int(h.Segs) <= len(b) {
		ev.Segs, ev.Streams = decodeSegs(b[hdrSize+n : hdrSize+n+int(h.Segs)])
	}
	return nil
}

// decodeSegs reads the kernel's HTTP/2 header segments (bpf/h2_seg.h):
// records of {offset u32, length u32, bytes}, in offset order, and among
// them stream records (length with recStream set: {stream id, 40 |
// recStream, trace_ctx}, bpf/h2_stream.h). A record that does not fit
// ends the list.
func decodeSegs(b []byte) (segs []probe.Segment, streams []probe.StreamCtx) {
	for len(b) >= 8 {
		off, n := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:])
		isStream := n&recStream != 0
		n &^= recStream
		if int(n) > len(b)-8 {
			break
		}
		rec := b[8 : 8+n]
		b = b[8+n:]
		if !isStream {
			segs = append(segs, probe.Segment{Off: int(off), Data: rec})
			continue
		}
		var k bpf.CaptureTraceCtx
		if len(rec) != int(unsafe.Sizeof(k)) {
			break
		}
		k = *(*bpf.CaptureTraceCtx)(unsafe.Pointer(&rec[0]))
		var ev Event
		decodeCtx(&k, &ev)
		// SERVER: a Go server's read (bpf/h2_stream.h); CLIENT: a Go
		// writer's stream with its caller's ids (bpf/h2_out.h).
		if (ev.CtxKind == CtxServer || ev.CtxKind == CtxClient) && ev.Ctx.IsValid() {
			streams = append(streams, probe.StreamCtx{ID: off, Ctx: ev.Ctx, Parent: ev.Parent})
		}
	}
	return segs, streams
}

// recStream marks a stream record's length (H2_REC_STREAM).
const recStream = 0x80000000

func addrs(a *bpf.CaptureConnAddr) (local, remote netip.AddrPort) {
	var l, r netip.Addr
	if a.Family == unix.AF_INET {
		l = netip.AddrFrom4([4]byte(a.Saddr[:4]))
		r = netip.AddrFrom4([4]byte(a.Daddr[:4]))
	} else {
		l = netip.AddrFrom16(a.Saddr).Unmap()
		r = netip.AddrFrom16(a.Daddr).Unmap()
	}
	return netip.AddrPortFrom(l, a.Sport), netip.AddrPortFrom(r, a.Dport)
}

// Close detaches and unloads everything. Safe to call more than once.
func (c *Capture) Close() error {
	c.once.Do(func() {
		c.detaching.Wait()
		c.exeMu.Lock() // attachExe appends links
		closeLinks(c.links)
		for _, ls := range c.pidLnks {
			closeLinks(ls)
		}
		c.exeMu.Unlock()
		if c.data != nil {
			c.data.close()
		}
		if c.ctl != nil {
			c.ctl.Close()
		}
		if c.coll != nil {
			c.coll.Close()
		}
	})
	return nil
}

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// monoClock converts the kernel's CLOCK_MONOTONIC nanoseconds to wall time.
type monoClock struct{ offset int64 }

func newMonoClock() monoClock {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return monoClock{offset: time.Now().UnixNano() - ts.Nano()}
}

func (m monoClock) wall(mono uint64) time.Time {
	if mono == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(mono)+m.offset)
}
