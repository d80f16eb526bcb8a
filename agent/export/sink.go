package export

import (
	"context"
	"slices"

	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// process is one traced process's resource, built on its first span.
type process struct {
	res *resource.Resource
	// otlp is the OTLP batcher's per-process state (its encoded resource,
	// its place in the batch being filled); guarded by otlpBatcher.mu.
	otlp otlpProcess
}

// spanSink queues decided spans for their outputs without blocking.
type spanSink interface {
	add(pr *process, r spanRecord) // by value: a pointer through the interface would escape
	// shutdown sends everything queued, then stops the outputs.
	shutdown(ctx context.Context) error
	counts() sinkCounts
}

type sinkCounts struct {
	sent, failed, queueFull uint64
}

// sdkSink is the SDK's batch processor in front of any SpanExporter: the
// console, --output both, and OTEL_EXPORTER_OTLP_PROTOCOL=http/json.
type sdkSink struct {
	proc    sdktrace.SpanProcessor
	counted *countingExporter
}

func newSDKSink(exp sdktrace.SpanExporter, opts ...sdktrace.BatchSpanProcessorOption) *sdkSink {
	counted := &countingExporter{next: exp}
	return &sdkSink{proc: sdktrace.NewBatchSpanProcessor(counted, opts...), counted: counted}
}

// add copies the attributes the record may share with the probe's span:
// the processor keeps them until its batch is sent (probe.Parser).
func (s *sdkSink) add(pr *process, r spanRecord) {
	r.attrs = slices.Clone(r.attrs)
	s.proc.OnEnd(r.snapshot(pr.res))
}

// shutdown drains the processor's queue, then shuts the exporter down.
func (s *sdkSink) shutdown(ctx context.Context) error { return s.proc.Shutdown(ctx) }

// counts has no queueFull: the SDK's processor keeps its drops private.
func (s *sdkSink) counts() sinkCounts {
	return sinkCounts{sent: s.counted.sent.Load(), failed: s.counted.failed.Load()}
}
