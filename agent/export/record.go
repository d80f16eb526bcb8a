package export

import (
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// spanRecord is one finished span as exported: what a provider would have
// decided (span.go), as a plain value. The OTLP protobuf output encodes it
// directly (no per-span heap object); the console and http/json outputs
// turn it into the SDK's ReadOnlySpan; the encoder reads ReadOnlySpans
// through it too, so both paths share one span writer.
type spanRecord struct {
	name          string
	sc, parent    trace.SpanContext
	kind          trace.SpanKind
	start, end    time.Time
	attrs         []attribute.KeyValue
	droppedAttrs  int
	events        []sdktrace.Event
	droppedEvents int
	links         []sdktrace.Link
	droppedLinks  int
	status        sdktrace.Status
}

// snapshot is the record as the SDK's ReadOnlySpan of res.
func (r *spanRecord) snapshot(res *resource.Resource) sdktrace.ReadOnlySpan {
	return tracetest.SpanStub{
		Name:                 r.name,
		SpanContext:          r.sc,
		Parent:               r.parent,
		SpanKind:             r.kind,
		StartTime:            r.start,
		EndTime:              r.end,
		Attributes:           r.attrs,
		DroppedAttributes:    r.droppedAttrs,
		Events:               r.events,
		DroppedEvents:        r.droppedEvents,
		Links:                r.links,
		DroppedLinks:         r.droppedLinks,
		Status:               r.status,
		Resource:             res,
		InstrumentationScope: scope,
	}.Snapshot()
}

// recordOf reads a ReadOnlySpan's exported fields (resource and scope are
// the encoder's grouping, not part of the record).
func recordOf(sd sdktrace.ReadOnlySpan) spanRecord {
	return spanRecord{
		name:          sd.Name(),
		sc:            sd.SpanContext(),
		parent:        sd.Parent(),
		kind:          sd.SpanKind(),
		start:         sd.StartTime(),
		end:           sd.EndTime(),
		attrs:         sd.Attributes(),
		droppedAttrs:  sd.DroppedAttributes(),
		events:        sd.Events(),
		droppedEvents: sd.DroppedEvents(),
		links:         sd.Links(),
		droppedLinks:  sd.DroppedLinks(),
		status:        sd.Status(),
	}
}
