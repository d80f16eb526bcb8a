// Package export turns probe.Span records into OpenTelemetry spans, one
// TracerProvider (hence one resource / service) per traced process, and
// ships them over OTLP/HTTP, prints them as a waterfall, or both.
package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

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
	Exported     uint64 // spans recorded and handed to the batch processor
	Dropped      uint64 // spans dropped by --drop-route
	Unsampled    uint64 // spans the sampler did not record
	Sent         uint64 // spans the sink accepted
	ExportFailed uint64 // spans the sink refused (network, collector)
	Providers    int    // live per-process providers
	ConsoleEarly uint64 // traces printed before their quiet period (memory cap)
	ConsoleLost  uint64 // spans the console could not print (after shutdown)
}

const instrumentationName = "github.com/tracer-agent/tracer-agent"

// Pipeline is the span sink of the agent.
type Pipeline struct {
	lookup  func(pid uint32) ServiceInfo
	filter  *routeFilter
	base    *resource.Resource
	proc    sdktrace.SpanProcessor // the shared batch processor
	counted *countingExporter
	console *consoleExporter

	// mu is held shared while a span is emitted, so ForgetProcess and
	// Shutdown (exclusive) never shut a provider down under a span in flight.
	mu        sync.RWMutex
	providers map[uint32]*procProvider
	closed    bool

	exported, dropped, unsampled atomic.Uint64
}

type procProvider struct {
	tp     *sdktrace.TracerProvider
	tracer trace.Tracer
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
	exp, con, err := buildExporter(ctx, otlp, console, w, cfg.QuietPeriod)
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
		providers: map[uint32]*procProvider{},
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
	for range 3 { // retry only if a ForgetProcess raced the provider away
		p.mu.RLock()
		if p.closed {
			p.mu.RUnlock()
			return
		}
		pp := p.providers[s.PID]
		if pp != nil {
			p.emit(pp.tracer, &s)
			p.mu.RUnlock()
			return
		}
		p.mu.RUnlock()
		p.addProvider(s.PID)
	}
}

// addProvider creates the pid's provider. Lookup runs outside the lock: it
// may read /proc, and other processes' spans must keep flowing meanwhile.
func (p *Pipeline) addProvider(pid uint32) {
	info := p.lookup(pid)
	info.PID = pid
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(processResource(p.base, info)),
		sdktrace.WithIDGenerator(kernelIDs{}),
		sdktrace.WithSpanProcessor(sharedProcessor{p.proc}),
	)
	pp := &procProvider{tp: tp, tracer: tp.Tracer(instrumentationName)}
	p.mu.Lock()
	if p.closed || p.providers[pid] != nil {
		p.mu.Unlock()
		_ = tp.Shutdown(context.Background())
		return
	}
	p.providers[pid] = pp
	p.mu.Unlock()
}

func (p *Pipeline) emit(tr trace.Tracer, s *probe.Span) {
	ctx := context.Background()
	parent := s.Parent
	if parent.IsValid() && s.SpanContext.IsValid() && parent.TraceID() != s.SpanContext.TraceID() {
		// The span's own ids were propagated downstream; a parent of another
		// trace cannot be honoured with them, so the span becomes a root.
		parent = trace.SpanContext{}
	}
	if parent.IsValid() {
		ctx = trace.ContextWithSpanContext(ctx, parent)
	}
	ctx = withSpanIdentity(ctx, s.SpanContext)
	end := s.End
	if end.Before(s.Start) {
		end = s.Start
	}
	opts := []trace.SpanStartOption{
		trace.WithTimestamp(s.Start),
		trace.WithSpanKind(s.Kind),
		trace.WithAttributes(s.Attrs...),
	}
	for _, l := range s.Links {
		if l.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: l}))
		}
	}
	_, span := tr.Start(ctx, s.Name, opts...)
	if !span.IsRecording() {
		p.unsampled.Add(1)
		return
	}
	if s.Error {
		span.SetStatus(codes.Error, s.StatusMessage)
	}
	span.End(trace.WithTimestamp(end))
	p.exported.Add(1)
}

// ForgetProcess drops an exited process's provider. Its ended spans are
// already in the shared processor, which keeps running.
func (p *Pipeline) ForgetProcess(pid uint32) {
	p.mu.Lock()
	pp := p.providers[pid]
	delete(p.providers, pid)
	p.mu.Unlock()
	if pp != nil {
		_ = pp.tp.Shutdown(context.Background())
	}
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
	pps := p.providers
	p.providers = map[uint32]*procProvider{}
	p.mu.Unlock()
	var errs []error
	for _, pp := range pps {
		errs = append(errs, pp.tp.Shutdown(ctx))
	}
	// The batch processor drains its queue, then shuts the exporter down.
	errs = append(errs, p.proc.Shutdown(ctx))
	return errors.Join(errs...)
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
