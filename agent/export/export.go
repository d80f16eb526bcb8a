// Package export turns probe.Span records into OpenTelemetry spans, with
// one resource (service) per traced process, and ships them through the
// SDK's batch processor over OTLP/HTTP, prints them as a waterfall, or both.
package export

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/tracer-agent/tracer-agent/probes/probe"
)

// ServiceInfo is a traced process's identity, as the agent read it.
type ServiceInfo struct {
	PID            uint32
	ServiceName    string
	ExecutableName string
	ExecutablePath string
	Command        string
	ResourceAttrs  []attribute.KeyValue
}

// Config is what the agent decides about export.
type Config struct {
	Output     string   // auto|otlp|console|both
	DropRoutes []string // globs on http.route / url.path; '*' matches anything
	Version    string   // telemetry.distro.version
	Lookup     func(pid uint32) ServiceInfo
	Console    io.Writer // nil: os.Stdout
	// QuietPeriod is how long a trace must see no new span before the
	// console prints it; 0 → 1s.
	QuietPeriod time.Duration
}

// Stats are the pipeline's self-report counters.
type Stats struct {
	Exported     uint64 // spans sampled and handed to the batch processor
	Dropped      uint64 // spans dropped by --drop-route
	Unsampled    uint64 // spans the sampler did not record
	Sent         uint64 // spans the sink accepted
	ExportFailed uint64 // spans the sink refused (network, collector)
	Providers    int    // live per-process resources
	ConsoleEarly uint64 // traces printed before their quiet period (memory cap)
	ConsoleLost  uint64 // spans the console could not print (after shutdown)
}

const instrumentationName = "github.com/tracer-agent/tracer-agent"

// Pipeline is the span sink of the agent.
type Pipeline struct {
	lookup  func(pid uint32) ServiceInfo
	filter  *routeFilter
	base    *resource.Resource
	proc    sdktrace.SpanProcessor // the batch processor
	counted *countingExporter
	console *consoleExporter
	sampler sdktrace.Sampler
	limits  sdktrace.SpanLimits

	// mu is held shared while a span is emitted, so Shutdown (exclusive)
	// never stops the processor under a span in flight.
	mu        sync.RWMutex
	providers map[uint32]*resource.Resource // per process, built on its first span
	closed    bool

	exported, dropped, unsampled atomic.Uint64
}

// New builds the pipeline; it fails on a bad --output or --drop-route, or
// an OTLP exporter that cannot be configured.
func New(ctx context.Context, cfg Config) (*Pipeline, error) {
	otlp, console, err := outputs(cfg.Output)
	if err != nil {
		return nil, err
	}
	w := cfg.Console
	if w == nil {
		w = os.Stdout
	}
	exp, con, err := buildExporter(ctx, otlp, console, w, cfg.QuietPeriod, cfg.Version)
	if err != nil {
		return nil, err
	}
	var opts []sdktrace.BatchSpanProcessorOption
	if !otlp && os.Getenv("OTEL_BSP_SCHEDULE_DELAY") == "" {
		// The console has its own quiet-period buffering; do not add the
		// 5s OTLP batching delay on top of it.
		opts = append(opts, sdktrace.WithBatchTimeout(200*time.Millisecond))
	}
	return newPipeline(ctx, cfg, exp, con, opts...)
}

// defaultQueueSize bounds spans waiting for export (OTEL_BSP_MAX_QUEUE_SIZE overrides).
const defaultQueueSize = 65536

// newPipeline wires a pipeline around any exporter (tests use in-memory).
func newPipeline(ctx context.Context, cfg Config, exp sdktrace.SpanExporter, con *consoleExporter, opts ...sdktrace.BatchSpanProcessorOption) (*Pipeline, error) {
	filter, err := newRouteFilter(cfg.DropRoutes)
	if err != nil {
		_ = exp.Shutdown(ctx)
		return nil, err
	}
	base, err := baseResource(ctx, cfg.Version)
	if err != nil {
		_ = exp.Shutdown(ctx)
		return nil, fmt.Errorf("resource: %w", err)
	}
	lookup := cfg.Lookup
	if lookup == nil {
		lookup = func(pid uint32) ServiceInfo { return ServiceInfo{PID: pid} }
	}
	counted := &countingExporter{next: exp}
	if os.Getenv("OTEL_BSP_MAX_QUEUE_SIZE") == "" {
		// The SDK's 2048 default drops spans in bursts (an agent sees a
		// whole node's traffic); a span queued is a few hundred bytes.
		opts = append([]sdktrace.BatchSpanProcessorOption{sdktrace.WithMaxQueueSize(defaultQueueSize)}, opts...)
	}
	return &Pipeline{
		lookup:    lookup,
		filter:    filter,
		base:      base,
		proc:      sdktrace.NewBatchSpanProcessor(counted, opts...),
		counted:   counted,
		console:   con,
		sampler:   samplerFromEnv(),
		limits:    sdktrace.NewSpanLimits(),
		providers: map[uint32]*resource.Resource{},
	}, nil
}

// Export turns one probe span into an OpenTelemetry span of its process's
// service. It never blocks on the network: the batch processor queues (and
// drops when full).
func (p *Pipeline) Export(s probe.Span) {
	if p.filter.drop(&s) {
		p.dropped.Add(1)
		return
	}
	for range 3 { // retry only if a ForgetProcess raced the resource away
		p.mu.RLock()
		if p.closed {
			p.mu.RUnlock()
			return
		}
		if res := p.providers[s.PID]; res != nil {
			p.emit(res, &s)
			p.mu.RUnlock()
			return
		}
		p.mu.RUnlock()
		p.addProvider(s.PID)
	}
}

// addProvider builds the pid's resource. Lookup runs outside the lock: it
// may read /proc, and other processes' spans must keep flowing meanwhile.
func (p *Pipeline) addProvider(pid uint32) {
	info := p.lookup(pid)
	info.PID = pid
	res := processResource(p.base, info)
	p.mu.Lock()
	if !p.closed && p.providers[pid] == nil {
		p.providers[pid] = res
	}
	p.mu.Unlock()
}

func (p *Pipeline) emit(res *resource.Resource, s *probe.Span) {
	ro, sampled := p.buildSpan(s, res)
	if !sampled {
		p.unsampled.Add(1)
		return
	}
	p.proc.OnEnd(ro)
	p.exported.Add(1)
}

// ForgetProcess drops an exited (or re-identified) process's resource;
// its next span, if any, reads its identity again. Its spans already
// ended are in the processor.
func (p *Pipeline) ForgetProcess(pid uint32) {
	p.mu.Lock()
	delete(p.providers, pid)
	p.mu.Unlock()
}

// Shutdown flushes every queued span to the sinks (the console prints all
// pending traces) and stops. Export is a no-op afterwards.
func (p *Pipeline) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.providers = map[uint32]*resource.Resource{}
	p.mu.Unlock()
	// The batch processor drains its queue, then shuts the exporter down.
	return p.proc.Shutdown(ctx)
}

// Stats reports the counters; safe to call concurrently.
func (p *Pipeline) Stats() Stats {
	p.mu.RLock()
	n := len(p.providers)
	p.mu.RUnlock()
	st := Stats{
		Exported:     p.exported.Load(),
		Dropped:      p.dropped.Load(),
		Unsampled:    p.unsampled.Load(),
		Sent:         p.counted.sent.Load(),
		ExportFailed: p.counted.failed.Load(),
		Providers:    n,
	}
	if p.console != nil {
		st.ConsoleEarly, st.ConsoleLost = p.console.counters()
	}
	return st
}
