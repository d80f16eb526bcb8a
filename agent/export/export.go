// Package export turns probe.Span records into OpenTelemetry spans, with
// one resource (service) per traced process, and ships them over OTLP/HTTP
// (protobuf: encoded on arrival and batched here; http/json: the SDK's
// batch processor and exporter), prints them as a waterfall, or both.
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
	Exported     uint64 // spans sampled and handed to the batch queue
	Dropped      uint64 // spans dropped by --drop-route
	Unsampled    uint64 // spans the sampler did not record
	Sent         uint64 // spans the sink accepted
	ExportFailed uint64 // spans the sink refused (network, collector)
	QueueFull    uint64 // spans dropped because the queue was full (OTLP protobuf output only; the SDK's processor keeps its count)
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
	sink    spanSink
	console *consoleExporter
	sampler sdktrace.Sampler
	limits  sdktrace.SpanLimits

	// mu is held shared while a span is emitted, so Shutdown (exclusive)
	// never stops the sink under a span in flight.
	mu        sync.RWMutex
	providers map[uint32]*process // built on a process's first span
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
	if otlp && !console {
		ocfg, err := otlpConfigFromEnv(os.Getenv)
		if err != nil {
			return nil, fmt.Errorf("otlp exporter: %w", err)
		}
		if !ocfg.json {
			b := newOTLPBatcher(newOTLPExporter(ocfg, cfg.Version), bspConfigFromEnv(os.Getenv))
			return build(ctx, cfg, b, nil)
		}
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

// newPipeline wires a pipeline around any exporter behind the SDK's batch
// processor (tests use in-memory).
func newPipeline(ctx context.Context, cfg Config, exp sdktrace.SpanExporter, con *consoleExporter, opts ...sdktrace.BatchSpanProcessorOption) (*Pipeline, error) {
	return build(ctx, cfg, newSDKSink(exp, sdkBatchOptions(opts...)...), con)
}

// sdkBatchOptions puts the agent's queue default before opts.
func sdkBatchOptions(opts ...sdktrace.BatchSpanProcessorOption) []sdktrace.BatchSpanProcessorOption {
	if os.Getenv("OTEL_BSP_MAX_QUEUE_SIZE") == "" {
		// The SDK's 2048 default drops spans in bursts (an agent sees a
		// whole node's traffic); a span queued is a few hundred bytes.
		opts = append([]sdktrace.BatchSpanProcessorOption{sdktrace.WithMaxQueueSize(defaultQueueSize)}, opts...)
	}
	return opts
}

// build wires a pipeline around its sink; the sink is shut down on error.
func build(ctx context.Context, cfg Config, sink spanSink, con *consoleExporter) (*Pipeline, error) {
	filter, err := newRouteFilter(cfg.DropRoutes)
	if err != nil {
		_ = sink.shutdown(ctx)
		return nil, err
	}
	base, err := baseResource(ctx, cfg.Version)
	if err != nil {
		_ = sink.shutdown(ctx)
		return nil, fmt.Errorf("resource: %w", err)
	}
	lookup := cfg.Lookup
	if lookup == nil {
		lookup = func(pid uint32) ServiceInfo { return ServiceInfo{PID: pid} }
	}
	return &Pipeline{
		lookup:    lookup,
		filter:    filter,
		base:      base,
		sink:      sink,
		console:   con,
		sampler:   samplerFromEnv(),
		limits:    sdktrace.NewSpanLimits(),
		providers: map[uint32]*process{},
	}, nil
}

// Export turns one probe span into an OpenTelemetry span of its process's
// service. It never blocks on the network: the sink queues (and drops when
// full).
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
		if pr := p.providers[s.PID]; pr != nil {
			p.emit(pr, &s)
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
	pr := &process{res: processResource(p.base, info)}
	p.mu.Lock()
	if !p.closed && p.providers[pid] == nil {
		p.providers[pid] = pr
	}
	p.mu.Unlock()
}

func (p *Pipeline) emit(pr *process, s *probe.Span) {
	r, sampled := p.decide(s)
	if !sampled {
		p.unsampled.Add(1)
		return
	}
	p.sink.add(pr, r)
	p.exported.Add(1)
}

// ForgetProcess drops an exited (or re-identified) process's resource;
// its next span, if any, reads its identity again. Its spans already
// ended are queued already.
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
	p.providers = map[uint32]*process{}
	p.mu.Unlock()
	return p.sink.shutdown(ctx)
}

// Stats reports the counters; safe to call concurrently.
func (p *Pipeline) Stats() Stats {
	p.mu.RLock()
	n := len(p.providers)
	p.mu.RUnlock()
	c := p.sink.counts()
	st := Stats{
		Exported:     p.exported.Load(),
		Dropped:      p.dropped.Load(),
		Unsampled:    p.unsampled.Load(),
		Sent:         c.sent,
		ExportFailed: c.failed,
		QueueFull:    c.queueFull,
		Providers:    n,
	}
	if p.console != nil {
		st.ConsoleEarly, st.ConsoleLost = p.console.counters()
	}
	return st
}
