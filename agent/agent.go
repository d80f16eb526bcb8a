// Package agent wires the daemon together: process selection → kernel
// capture → per-connection protocol parsing → span export.
package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/tracer-agent/tracer-agent/agent/capture"
	"github.com/tracer-agent/tracer-agent/agent/conntrack"
	"github.com/tracer-agent/tracer-agent/agent/export"
	"github.com/tracer-agent/tracer-agent/agent/k8s"
	"github.com/tracer-agent/tracer-agent/agent/procinfo"
	"github.com/tracer-agent/tracer-agent/agent/runtime/nodejs"
	"github.com/tracer-agent/tracer-agent/agent/selector"
	httpprobe "github.com/tracer-agent/tracer-agent/probes/http"
	"github.com/tracer-agent/tracer-agent/probes/http2"
	"github.com/tracer-agent/tracer-agent/probes/kafka"
	"github.com/tracer-agent/tracer-agent/probes/probe"
	"github.com/tracer-agent/tracer-agent/probes/sql"
	"github.com/tracer-agent/tracer-agent/probes/sql/mysql"
	"github.com/tracer-agent/tracer-agent/probes/sql/postgres"
)

// Config is everything the CLI decides.
type Config struct {
	Select selector.Criteria
	// Kubernetes selects the processes of pods on NodeName in namespaces
	// (or pods) labelled tracer-agent/instrument=enabled, live.
	Kubernetes   bool
	NodeName     string
	KubeClient   kubernetes.Interface // nil: in-cluster or kubeconfig
	Output       string               // auto|otlp|console|both
	DropRoutes   []string             // span filters on http.route / url.path
	CaptureBytes int
	// NoInject turns off traceparent injection (read-only mode): spans are
	// still linked within each process, not across them.
	NoInject bool
	// KafkaInject adds a traceparent record header to Kafka Produce
	// requests (kernel rewrite; needs injection on).
	KafkaInject bool
	// NoRuntimeHelpers: never load a helper (the Node.js tracker) into a
	// traced process, nor follow Python's contexts (uprobes).
	NoRuntimeHelpers bool
	// NoGoLineage: no uprobe on goroutine creation (bpf/golineage.h).
	NoGoLineage bool
	// RawSQL exports db.query.text with its literals (default: sanitized).
	RawSQL   bool
	ProcRoot string
	Version  string
	// Rescan is how often /proc is re-read for --exe/--port matches the
	// kernel events may have missed.
	Rescan time.Duration
	// StatsEvery logs the self-report counters at this interval (0: only at exit).
	StatsEvery time.Duration
}

// dataRingBytes sizes the kernel's data ring below its 16 MiB default: the
// ring is mapped twice in the agent, so it counts double in RSS (32 MiB of
// the 100 MiB budget), while the go bench workload at saturation has about
// 1 MiB waiting when the reader comes (it polls every 100 ms and is woken
// when 1 MiB, an eighth, waits). 8 MiB absorbs about a second of a stalled
// agent at 8k spans/s; past half of it the kernel wakes the reader per event.
const dataRingBytes = 8 << 20

const (
	maxConns    = 65536
	idleConn    = 2 * time.Minute
	sweepPeriod = 30 * time.Second
)

// Run traces until ctx is cancelled. It returns a one-line error for
// problems of configuration or environment.
func Run(ctx context.Context, cfg Config) error {
	if !cfg.Kubernetes || !cfg.Select.Empty() {
		if err := cfg.Select.Validate(); err != nil {
			return err
		}
	}
	if err := preflight(); err != nil {
		return err
	}
	sel := selector.New(cfg.ProcRoot, cfg.Select)
	initial, err := sel.Initial()
	if err != nil {
		return err
	}

	a := &runner{cfg: cfg, sel: sel, tracked: map[uint32]bool{}, services: map[uint32]export.ServiceInfo{},
		exited: map[uint32]time.Time{}}
	pipe, err := export.New(ctx, export.Config{
		Output:     cfg.Output,
		DropRoutes: cfg.DropRoutes,
		Version:    cfg.Version,
		Lookup:     a.service,
	})
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := pipe.Shutdown(sctx); err != nil {
			slog.Warn("flushing spans at exit", "err", err)
		}
		logExport("exported", pipe.Stats()) // after the flush: sent is final
	}()

	sampler, err := capture.ParseSampler(os.Getenv("OTEL_TRACES_SAMPLER"), os.Getenv("OTEL_TRACES_SAMPLER_ARG"))
	if err != nil {
		return err
	}
	capt, err := capture.Load(capture.Options{
		CaptureBytes: cfg.CaptureBytes,
		RingBytes:    dataRingBytes,
		WatchExec:    sel.WatchesExec() || cfg.Kubernetes,
		WatchListen:  sel.WatchesListen(),
		Inject:       !cfg.NoInject,
		KafkaInject:  cfg.KafkaInject,
		Sampler:      sampler,
	})
	if err != nil {
		return err
	}
	defer capt.Close()

	a.capt, a.pipe = capt, pipe
	if !cfg.NoRuntimeHelpers {
		a.node = nodejs.New(capt, cfg.ProcRoot, a.own.add)
	}
	reportPropagation(capt, !cfg.NoInject)
	a.conns = conntrack.New(probes(cfg), maxConns, pipe.Export)
	for _, pid := range initial {
		a.track(pid, "initial")
	}
	if cfg.Kubernetes {
		if err := a.startKubernetes(ctx); err != nil {
			return err
		}
	}
	debug.FreeOSMemory() // return what loading the programs used
	tuneGC()
	slog.Info("ready", "pids", len(initial), "capture_bytes", cfg.CaptureBytes, "output", cfg.Output)

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); a.housekeeping(runCtx) }()
	err = capt.Run(runCtx, a.onData, a.onCtl)
	stop()
	wg.Wait()
	a.logStats("final") // counters live in kernel maps: read them before detaching
	capt.Close()        // detach before flushing so no new events race the flush
	a.conns.FlushAll(time.Now())
	return err
}

// probes are the protocols the agent recognises, in detection order.
func probes(cfg Config) []probe.Probe {
	sqlOpts := sql.Options{RawQueryText: cfg.RawSQL}
	return []probe.Probe{
		httpprobe.New(httpprobe.Options{}),
		http2.New(http2.Options{}),
		postgres.New(sqlOpts),
		mysql.New(sqlOpts),
		kafka.New(kafka.Options{}),
	}
}

// runner is the state of one Run.
type runner struct {
	cfg   Config
	sel   *selector.Selector
	capt  *capture.Capture
	pipe  *export.Pipeline
	conns *conntrack.Tracker

	kube *k8s.Watcher // Kubernetes mode
	node *nodejs.Helper
	own  ownConns
	segs segJoiner // HTTP/2 header segments waiting for their data event

	mu       sync.Mutex
	tracked  map[uint32]bool
	services map[uint32]export.ServiceInfo // read when selected: short-lived processes are gone by export time
	exited   map[uint32]time.Time          // tracked processes that exited, for exitGrace: when
}

// exitGrace lets a process's last data events, which travel on the data
// ring while its exit travels on the control ring, drain before its
// connections and provider are flushed.
const exitGrace = 2 * time.Second

func (a *runner) track(pid uint32, why string) { a.trackAs(pid, why, procinfo.Exec{}, nil) }

// trackAs selects pid; adjust (optional) amends its identity (Kubernetes).
// exec is what the kernel reported at its exec, if known: the identity of
// a process gone before /proc could be read.
func (a *runner) trackAs(pid uint32, why string, exec procinfo.Exec, adjust func(*process)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tracked[pid] && adjust == nil {
		return
	}
	info := readService(a.cfg.ProcRoot, pid, exec)
	if adjust != nil {
		adjust(&info)
	}
	if a.tracked[pid] {
		// Known already: its identity changed (a pod relabelled, its owner
		// resolved). The next span builds a provider with the new resource.
		a.services[pid] = info.ServiceInfo
		a.pipe.ForgetProcess(pid)
		return
	}
	if err := a.capt.Track(pid, info.goRuntime); err != nil {
		slog.Warn("cannot select process", "pid", pid, "err", err)
		return
	}
	a.tracked[pid] = true
	a.services[pid] = info.ServiceInfo
	slog.Info("tracing process", "pid", pid, "service", a.services[pid].ServiceName, "why", why,
		"linking", a.attachLinking(pid, info.goRuntime))
}

// service resolves a pid's identity for the exporter.
func (a *runner) service(pid uint32) export.ServiceInfo {
	a.mu.Lock()
	info, ok := a.services[pid]
	a.mu.Unlock()
	if ok {
		return info
	}
	return readService(a.cfg.ProcRoot, pid, procinfo.Exec{}).ServiceInfo
}

func (a *runner) forget(pid uint32, at time.Time) {
	a.mu.Lock()
	known := a.tracked[pid]
	delete(a.tracked, pid)
	if known {
		a.exited[pid] = at
	}
	a.mu.Unlock()
	_ = a.capt.Untrack(pid)
	time.AfterFunc(exitGrace, func() {
		a.conns.ForgetPID(pid, at)
		a.pipe.ForgetProcess(pid)
		a.mu.Lock()
		if !a.tracked[pid] { // not a reused pid selected again meanwhile
			delete(a.services, pid)
		}
		if a.exited[pid] == at {
			delete(a.exited, pid)
		}
		a.mu.Unlock()
	})
	if known {
		slog.Info("process exited", "pid", pid)
	}
}

// deselect stops tracing a live process (its pod was opted out).
func (a *runner) deselect(pid uint32) {
	a.mu.Lock()
	known := a.tracked[pid]
	delete(a.tracked, pid)
	a.mu.Unlock()
	if !known {
		return
	}
	_ = a.capt.Untrack(pid)
	now := time.Now()
	time.AfterFunc(exitGrace, func() {
		a.conns.ForgetPID(pid, now)
		a.pipe.ForgetProcess(pid)
	})
	slog.Info("stopped tracing process", "pid", pid)
}

// decidePending settles a process the kernel traces provisionally since
// its exec: it reports whether its events are wanted. Called from both
// rings, whichever sees the process first. A "no" is not cached: once
// untracked, only events already in flight or a later exec (which may
// match) carry the pending flag, so re-deciding is both rare and right.
// exec is the kernel's exec record (from the control ring; empty from data).
func (a *runner) decidePending(pid uint32, exec procinfo.Exec) bool {
	a.mu.Lock()
	tracked := a.tracked[pid]
	a.mu.Unlock()
	if tracked {
		return true
	}
	if a.sel.OnExec(pid, exec) {
		a.trackAs(pid, "exec", exec, nil)
		return true
	}
	if a.kube != nil {
		if p, ok := a.kube.ForPID(pid); ok {
			a.trackPod(p, "exec in pod")
			return true
		}
	}
	_ = a.capt.Untrack(pid)
	return false
}

// ranBefore reports whether pid is a tracked process that exited at or
// after t: its events still draining from the data ring (those of a short
// run are all still marked pending when the agent is busy), not a new
// process that reuses the pid.
func (a *runner) ranBefore(pid uint32, t time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	at, ok := a.exited[pid]
	return ok && !t.After(at)
}

func (a *runner) onData(ev *capture.Event) {
	if ev.Pending && !a.ranBefore(ev.PID, ev.End) && !a.decidePending(ev.PID, procinfo.Exec{}) {
		return
	}
	switch ev.Type {
	case capture.Data:
		if a.own.has(ev.PID, ev.Local, ev.Remote) {
			return
		}
		segs, streams := a.segs.take(ev)
		a.conns.Data(probe.Conn{
			PID:    ev.PID,
			FD:     ev.FD,
			ID:     ev.SockID,
			Local:  ev.Local,
			Remote: ev.Remote,
		}, probe.Chunk{
			Dir:       ev.Dir,
			TID:       ev.TID,
			Start:     ev.Start,
			End:       ev.End,
			Len:       int(ev.Len),
			Data:      ev.Data,
			Segs:      segs,
			Streams:   streams,
			Ctx:       ev.Ctx,
			Parent:    ev.Parent,
			Forwarded: ev.Forwarded,
		})
	case capture.H2Segs:
		a.segs.add(ev)
	case capture.Close:
		a.segs.forget(ev.SockID)
		a.conns.Closed(ev.PID, ev.SockID, ev.End)
	}
}

func (a *runner) onCtl(ev *capture.Event) {
	switch ev.Type {
	case capture.Exec:
		a.decidePending(ev.PID, procinfo.ParseExec(ev.Data))
	case capture.Listen:
		if a.sel.OnListen(ev.PID, uint16(ev.Len)) {
			a.track(ev.PID, fmt.Sprintf("listen :%d", ev.Len))
		}
	case capture.Fork:
		// The kernel already selected the child; remember it for exit.
		a.mu.Lock()
		a.tracked[ev.TID] = true
		a.services[ev.TID] = readService(a.cfg.ProcRoot, ev.TID, procinfo.Exec{}).ServiceInfo
		a.mu.Unlock()
		slog.Debug("tracing forked child", "parent", ev.PID, "pid", ev.TID)
		if a.capt.FollowsPython(ev.PID) {
			go a.attachPython(ev.TID) // a pre-fork server's worker: its own uprobes
		}
	case capture.Exit:
		a.forget(ev.PID, ev.End)
	}
}

// housekeeping rescans /proc for late matches, sweeps idle connections and
// reports counters.
func (a *runner) housekeeping(ctx context.Context) {
	rescan := a.cfg.Rescan
	if rescan <= 0 {
		rescan = 10 * time.Second
	}
	tRescan := time.NewTicker(rescan)
	tSweep := time.NewTicker(sweepPeriod)
	defer tRescan.Stop()
	defer tSweep.Stop()
	var tStats <-chan time.Time
	if a.cfg.StatsEvery > 0 {
		t := time.NewTicker(a.cfg.StatsEvery)
		defer t.Stop()
		tStats = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tRescan.C:
			if a.kube != nil {
				a.kube.Resync()
			}
			if !a.sel.WatchesExec() && !a.sel.WatchesListen() {
				continue
			}
			pids, err := a.sel.Rescan()
			if err != nil {
				slog.Debug("rescan", "err", err)
			}
			for _, pid := range pids {
				a.track(pid, "rescan")
			}
		case now := <-tSweep.C:
			a.own.expire(now)
			a.conns.Sweep(now.Add(-idleConn), now)
		case <-tStats:
			a.logStats("stats")
		}
	}
}

// logExport reports what became of the spans the probes built.
func logExport(msg string, st export.Stats) {
	slog.Info(msg, "spans", st.Exported, "sent", st.Sent, "export_failed", st.ExportFailed,
		"queue_full", st.QueueFull, "unsampled", st.Unsampled, "dropped_by_route", st.Dropped)
}

func (a *runner) logStats(msg string) {
	k, err := a.capt.Counters()
	if err != nil {
		slog.Warn("reading kernel counters", "err", err)
	}
	if msg != "final" { // the final export counters follow the flush
		logExport("export", a.pipe.Stats())
	}
	cs, open := a.conns.Stats()
	slog.Info(msg,
		"events", k.DataEvents, "ring_drops", k.DataDrops, "ctl_drops", k.CtlDrops,
		"truncated", k.Truncated, "args_drops", k.ArgsDrops,
		"injected", k.Injected, "inject_failed", k.InjectFailed, "sockhash_full", k.SockhashFull,
		"forwarded_rewritten", k.Rewritten, "h2_position_lost", k.H2SegLost,
		"conns", cs.Conns, "conns_open", open, "conns_ignored", cs.Ignored, "conns_evicted", cs.Evicted)
	if a.cfg.KafkaInject {
		kc, err := a.capt.KafkaCounters()
		if err != nil {
			slog.Warn("reading kernel Kafka counters", "err", err)
		}
		slog.Info(msg+": kafka injection", "injected", kc.Injected, "untouched", kc.Untouched,
			"had_traceparent", kc.HadTraceparent, "failed", kc.Failed)
	}
}

// process is what the agent learns of a process when selecting it.
type process struct {
	export.ServiceInfo
	goRuntime bool // requests are keyed by goroutine in the kernel
}

// readService reads a pid's service identity from /proc.
func readService(procRoot string, pid uint32, exec procinfo.Exec) process {
	info, err := procinfo.Read(procRoot, pid)
	if err != nil || info.ExePath == "" && exec.Path != "" {
		if exec.Path == "" {
			return process{ServiceInfo: export.ServiceInfo{PID: pid, ServiceName: fmt.Sprintf("pid-%d", pid)}}
		}
		info = procinfo.FromExec(pid, exec) // gone (or a zombie) already
	}
	return process{goRuntime: info.GoRuntime, ServiceInfo: export.ServiceInfo{
		PID:            pid,
		ServiceName:    info.ServiceName,
		ExecutableName: info.ExeName,
		ExecutablePath: info.ExePath,
		Command:        info.Command,
		ResourceAttrs:  info.ResourceAttrs,
	}}
}

// reportPropagation says how context crosses services on this kernel.
func reportPropagation(capt *capture.Capture, inject bool) {
	if !inject {
		slog.Info("propagation: read-only (--no-inject): spans link within each process, not across services")
		return
	}
	f := capt.FIONREAD()
	const on = "propagation: traceparent injection on (sockops + sk_msg on client sockets of traced processes)"
	switch {
	case f.Err != nil:
		slog.Warn(on+"; FIONREAD self-test failed: if a traced client sizes its reads with FIONREAD, use --no-inject", "err", f.Err)
	case f.After != capture.FIONREADProbeBytes:
		slog.Warn(on+"; this kernel answers ioctl(FIONREAD) wrongly for sockets in a sockhash even with a receive verdict: "+
			"use --no-inject if a traced client sizes its reads with FIONREAD (nginx upstreams, Java NIO)",
			"fionread", f.After, "want", capture.FIONREADProbeBytes)
	case f.Verdict:
		slog.Info(on+"; this kernel has the sockhash FIONREAD regression (6.6.128+, 6.12.75+, 6.18.14+): "+
			"a pass-through receive verdict is attached, FIONREAD self-test ok", "fionread_without", f.Before)
	default:
		slog.Info(on + "; FIONREAD self-test ok")
	}
}
