package export

import (
	"go.opentelemetry.io/otel/sdk/resource"
	"google.golang.org/protobuf/encoding/protowire"
)

// encBatch is one OTLP request being filled: each span is encoded when it
// arrives (spanRecord → protobuf, no per-span heap object) at the end of
// one buffer, and its process's group notes where; the request around the
// groups is written when the batch is sent. Resources appear in first-seen
// order, spans in arrival order: the bytes otlpEncoder writes for the same
// spans as ReadOnlySpans. One buffer rather than one per group keeps its
// size from batch to batch, whichever processes the spans come from.
type encBatch struct {
	id     uint64 // tells a process whether its group is in this batch
	n      int    // spans
	spans  []byte // encoded ScopeSpans.spans entries, in arrival order
	groups []spanGroup
}

type spanGroup struct {
	pr   *process
	size int       // bytes of its spans
	runs []byteRun // where they are in spans; consecutive ones merged
}

type byteRun struct{ start, end int }

// otlpProcess is a process's state in the batcher (see process.otlp).
type otlpProcess struct {
	encoded    bool
	head, tail []byte // encoded ResourceSpans.resource and .schema_url
	batch      uint64 // id of the batch holding its group, and where
	group      int
}

// The scope is the same for every span: its ScopeSpans.scope and
// .schema_url, encoded once.
var scopeHead, scopeTail = headTail(new(otlpEncoder), func(e *otlpEncoder) { e.scope(scope) }, scope.SchemaURL)

func encodeResource(e *otlpEncoder, res *resource.Resource) (head, tail []byte) {
	return headTail(e, func(e *otlpEncoder) { e.resource(res) }, res.SchemaURL())
}

// headTail encodes what goes before a ResourceSpans' or ScopeSpans' spans
// (head: field 1, written by head) and after them (tail: schema_url, field
// 3) into buffers of their own, with e, whose buffer it leaves as it was.
func headTail(e *otlpEncoder, head func(*otlpEncoder), schemaURL string) (h, t []byte) {
	saved := e.buf
	e.buf = nil
	head(e)
	h = e.buf
	e.buf = nil
	e.str(3, schemaURL)
	t = e.buf
	e.buf = saved
	return h, t
}

// add encodes r into pr's group with e (whose buffer it borrows).
func (b *encBatch) add(e *otlpEncoder, pr *process, r *spanRecord) {
	o := &pr.otlp
	if !o.encoded {
		o.head, o.tail = encodeResource(e, pr.res)
		o.encoded = true
	}
	if o.batch != b.id {
		o.batch, o.group = b.id, len(b.groups)
		if len(b.groups) < cap(b.groups) { // reuse the slot's runs
			b.groups = b.groups[:len(b.groups)+1]
			g := &b.groups[o.group]
			g.pr, g.size, g.runs = pr, 0, g.runs[:0]
		} else {
			b.groups = append(b.groups, spanGroup{pr: pr})
		}
	}
	g := &b.groups[o.group]
	start := len(b.spans)
	e.buf = b.spans
	e.span(r)
	b.spans, e.buf = e.buf, nil
	end := len(b.spans)
	g.size += end - start
	if n := len(g.runs); n > 0 && g.runs[n-1].end == start {
		g.runs[n-1].end = end
	} else {
		g.runs = append(g.runs, byteRun{start, end})
	}
	b.n++
}

// appendRequest appends the ExportTraceServiceRequest: per group one
// ResourceSpans holding one ScopeSpans, lengths known up front.
func (b *encBatch) appendRequest(buf []byte) []byte {
	for i := range b.groups {
		g := &b.groups[i]
		o := &g.pr.otlp
		scopeLen := len(scopeHead) + g.size + len(scopeTail)
		rsLen := len(o.head) + 1 + protowire.SizeVarint(uint64(scopeLen)) + scopeLen + len(o.tail)
		buf = protowire.AppendTag(buf, 1, protowire.BytesType) // resource_spans
		buf = protowire.AppendVarint(buf, uint64(rsLen))
		buf = append(buf, o.head...)
		buf = protowire.AppendTag(buf, 2, protowire.BytesType) // scope_spans
		buf = protowire.AppendVarint(buf, uint64(scopeLen))
		buf = append(buf, scopeHead...)
		for _, r := range g.runs {
			buf = append(buf, b.spans[r.start:r.end]...)
		}
		buf = append(buf, scopeTail...)
		buf = append(buf, o.tail...)
	}
	return buf
}

// reset empties the batch for reuse under a new id. A buffer over
// keptBuffer is let go, so one burst does not pin its memory.
func (b *encBatch) reset(id uint64) {
	for i := range b.groups {
		b.groups[i].pr = nil
	}
	if cap(b.spans) > keptBuffer {
		b.spans = nil
	}
	b.spans, b.groups, b.n, b.id = b.spans[:0], b.groups[:0], 0, id
}
