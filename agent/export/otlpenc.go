package export

import (
	"math"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/encoding/protowire"
)

// otlpEncoder writes OTLP protobuf straight from spanRecords (the OTLP
// batcher, span by span) or ReadOnlySpans (the SDK path, a request at a
// time) into a reused buffer. otlptracehttp first converts each
// span into generated protobuf structs (three allocations per attribute)
// and then marshals them: half of the agent's CPU per span. The output
// decodes to what otlptracehttp sends (otlpenc_test.go compares them),
// plus the links' trace_state, which it leaves out.
//
// Field numbers are those of opentelemetry/proto/{collector/trace,trace,
// common,resource}/v1; proto3 zero scalars are omitted, oneof members and
// messages otlptracehttp always sets (status, attribute values) are not.
type otlpEncoder struct {
	buf    []byte
	res    []resourceGroup
	resIdx map[attribute.Distinct]int
}

// resourceGroup is one ResourceSpans: its scopes in first-seen order.
type resourceGroup struct {
	res    *resource.Resource
	scopes []scopeGroup
}

type scopeGroup struct {
	scope instrumentation.Scope
	spans []sdktrace.ReadOnlySpan
}

// encode fills e.buf with the request for spans; it reports how many spans
// it holds (nil spans are skipped, as otlptracehttp does).
func (e *otlpEncoder) encode(spans []sdktrace.ReadOnlySpan) int {
	n := e.group(spans)
	e.buf = e.buf[:0]
	for i := range e.res {
		e.resourceSpans(&e.res[i])
	}
	e.release()
	return n
}

// release drops the references to the batch's spans and resources (the
// slices stay for the next batch).
func (e *otlpEncoder) release() {
	for i := range e.res {
		for j := range e.res[i].scopes {
			clear(e.res[i].scopes[j].spans)
		}
		e.res[i].res = nil
	}
	clear(e.resIdx)
}

// group sorts spans by resource, then scope, keeping first-seen order.
// The groups' slices are reused from call to call.
func (e *otlpEncoder) group(spans []sdktrace.ReadOnlySpan) int {
	if e.resIdx == nil {
		e.resIdx = map[attribute.Distinct]int{}
	}
	e.res = e.res[:0]
	n := 0
	for _, sd := range spans {
		if sd == nil {
			continue
		}
		n++
		r := sd.Resource()
		ri, ok := e.resIdx[r.Equivalent()]
		if !ok {
			ri = len(e.res)
			e.resIdx[r.Equivalent()] = ri
			if ri < cap(e.res) {
				e.res = e.res[:ri+1]
				e.res[ri].res, e.res[ri].scopes = r, e.res[ri].scopes[:0]
			} else {
				e.res = append(e.res, resourceGroup{res: r})
			}
		}
		g := &e.res[ri]
		sc := sd.InstrumentationScope()
		si := -1
		for j := range g.scopes { // a handful of scopes at most
			if g.scopes[j].scope == sc {
				si = j
				break
			}
		}
		if si < 0 {
			si = len(g.scopes)
			if si < cap(g.scopes) {
				g.scopes = g.scopes[:si+1]
				g.scopes[si].scope, g.scopes[si].spans = sc, g.scopes[si].spans[:0]
			} else {
				g.scopes = append(g.scopes, scopeGroup{scope: sc})
			}
		}
		g.scopes[si].spans = append(g.scopes[si].spans, sd)
	}
	return n
}

func (e *otlpEncoder) resourceSpans(g *resourceGroup) {
	m := e.open(1) // ExportTraceServiceRequest.resource_spans
	e.resource(g.res)
	for i := range g.scopes {
		s := &g.scopes[i]
		ss := e.open(2) // ResourceSpans.scope_spans
		e.scope(s.scope)
		for _, sd := range s.spans {
			r := recordOf(sd)
			e.span(&r)
		}
		e.str(3, s.scope.SchemaURL)
		e.close(ss)
	}
	e.str(3, g.res.SchemaURL())
	e.close(m)
}

// resource writes ResourceSpans.resource (absent for a nil resource).
func (e *otlpEncoder) resource(res *resource.Resource) {
	if res != nil {
		r := e.open(1)
		e.attrSet(1, res.Iter())
		e.close(r)
	}
}

// scope writes ScopeSpans.scope (absent for the zero scope).
func (e *otlpEncoder) scope(sc instrumentation.Scope) {
	if sc != (instrumentation.Scope{}) {
		sm := e.open(1)
		e.str(1, sc.Name)
		e.str(2, sc.Version)
		e.attrSet(3, sc.Attributes.Iter())
		e.close(sm)
	}
}

// span writes one ScopeSpans.spans entry. It is the hot path of the OTLP
// output: the fixed fields are appended to a local slice (one-byte tags,
// known lengths) rather than through the field helpers, and the message
// reserves two bytes for its length (spans are mostly 128 B–16 KiB).
func (e *otlpEncoder) span(r *spanRecord) {
	b := append(e.buf, tagByte(2, protowire.BytesType), 0, 0) // ScopeSpans.spans
	start := len(b)
	tid, sid := r.sc.TraceID(), r.sc.SpanID()
	b = append(b, tagByte(1, protowire.BytesType), byte(len(tid)))
	b = append(b, tid[:]...)
	b = append(b, tagByte(2, protowire.BytesType), byte(len(sid)))
	b = append(b, sid[:]...)
	if ts := r.sc.TraceState(); ts.Len() > 0 {
		b = appendString(b, tagByte(3, protowire.BytesType), ts.String())
	}
	if psid := r.parent.SpanID(); psid.IsValid() {
		b = append(b, tagByte(4, protowire.BytesType), byte(len(psid)))
		b = append(b, psid[:]...)
	}
	if r.name != "" {
		b = appendString(b, tagByte(5, protowire.BytesType), r.name)
	}
	if k := spanKind(r.kind); k != trace.SpanKindUnspecified {
		b = append(b, tagByte(6, protowire.VarintType), byte(k))
	}
	if t := unixNano(r.start.UnixNano()); t != 0 {
		b = protowire.AppendFixed64(append(b, tagByte(7, protowire.Fixed64Type)), t)
	}
	if t := unixNano(r.end.UnixNano()); t != 0 {
		b = protowire.AppendFixed64(append(b, tagByte(8, protowire.Fixed64Type)), t)
	}
	e.buf = b
	for _, kv := range r.attrs {
		e.keyValue(9, kv)
	}
	e.uint(10, clampCount(r.droppedAttrs))
	for _, ev := range r.events {
		em := e.open(11)
		e.fixed64(1, unixNano(ev.Time.UnixNano()))
		e.str(2, ev.Name)
		for _, kv := range ev.Attributes {
			e.keyValue(3, kv)
		}
		e.uint(4, clampCount(ev.DroppedAttributeCount))
		e.close(em)
	}
	e.uint(12, clampCount(r.droppedEvents))
	for _, l := range r.links {
		lm := e.open(13)
		ltid, lsid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
		e.bytes(1, ltid[:])
		e.bytes(2, lsid[:])
		e.traceState(3, l.SpanContext.TraceState())
		for _, kv := range l.Attributes {
			e.keyValue(4, kv)
		}
		e.uint(5, clampCount(l.DroppedAttributeCount))
		e.fixed32(6, spanFlags(l.SpanContext.TraceFlags(), l.SpanContext))
		e.close(lm)
	}
	e.uint(14, clampCount(r.droppedLinks))
	b = e.buf
	// Status is always present, as otlptracehttp sets it.
	desc, code := r.status.Description, statusCode(r.status.Code)
	stLen := 0
	if desc != "" {
		stLen += 1 + protowire.SizeBytes(len(desc))
	}
	if code != 0 {
		stLen += 2
	}
	b = appendVarint(append(b, tagByte(15, protowire.BytesType)), uint64(stLen))
	if desc != "" {
		b = appendString(b, tagByte(2, protowire.BytesType), desc)
	}
	if code != 0 {
		b = append(b, tagByte(3, protowire.VarintType), byte(code))
	}
	b = protowire.AppendTag(b, 16, protowire.Fixed32Type)
	e.buf = protowire.AppendFixed32(b, spanFlags(r.sc.TraceFlags(), r.parent))
	e.closeAt(start, 2)
}

// spanFlags are the W3C trace flags plus "whether the parent is remote is
// known" and, if so, "it is remote" (SpanFlags in trace.proto).
func spanFlags(tf trace.TraceFlags, parent trace.SpanContext) uint32 {
	const hasIsRemote, isRemote = 0x100, 0x200
	f := uint32(tf) | hasIsRemote
	if parent.IsRemote() {
		f |= isRemote
	}
	return f
}

// spanKind maps to Span.SpanKind: the same order, unknown → unspecified.
func spanKind(k trace.SpanKind) trace.SpanKind {
	if k < trace.SpanKindInternal || k > trace.SpanKindConsumer {
		return trace.SpanKindUnspecified
	}
	return k
}

// statusCode maps to Status.StatusCode (unset 0, ok 1, error 2).
func statusCode(c codes.Code) uint32 {
	switch c {
	case codes.Ok:
		return 1
	case codes.Error:
		return 2
	}
	return 0
}

func unixNano(ns int64) uint64 { return uint64(max(0, ns)) }

func clampCount(n int) uint64 { return uint64(min(max(n, 0), math.MaxUint32)) }

func (e *otlpEncoder) attrSet(field protowire.Number, it attribute.Iterator) {
	for it.Next() {
		e.keyValue(field, it.Attribute())
	}
}

func (e *otlpEncoder) keyValue(field protowire.Number, kv attribute.KeyValue) {
	if field < 16 {
		switch kv.Value.Type() {
		case attribute.STRING:
			e.stringKeyValue(field, string(kv.Key), kv.Value.AsString())
			return
		case attribute.INT64:
			e.intKeyValue(field, string(kv.Key), kv.Value.AsInt64())
			return
		}
	}
	m := e.open(field)
	e.str(1, string(kv.Key))
	e.anyValue(2, kv.Value)
	e.close(m)
}

// stringKeyValue and intKeyValue are keyValue for the common attributes
// (field < 16), with the lengths computed up front instead of patched in.
func (e *otlpEncoder) stringKeyValue(field protowire.Number, k, v string) {
	anyLen := 1 + protowire.SizeBytes(len(v))
	b := e.keyValueHead(field, k, anyLen)
	e.buf = appendString(b, tagByte(1, protowire.BytesType), v) // AnyValue.string_value
}

func (e *otlpEncoder) intKeyValue(field protowire.Number, k string, v int64) {
	anyLen := 1 + protowire.SizeVarint(uint64(v))
	b := e.keyValueHead(field, k, anyLen)
	e.buf = appendVarint(append(b, tagByte(3, protowire.VarintType)), uint64(v)) // AnyValue.int_value
}

// keyValueHead appends a KeyValue's tag, length, key and its value's tag
// and length: what is left is an AnyValue body of anyLen bytes.
func (e *otlpEncoder) keyValueHead(field protowire.Number, k string, anyLen int) []byte {
	kvLen := 1 + protowire.SizeBytes(anyLen)
	if k != "" {
		kvLen += 1 + protowire.SizeBytes(len(k))
	}
	b := appendVarint(append(e.buf, tagByte(field, protowire.BytesType)), uint64(kvLen))
	if k != "" {
		b = appendString(b, tagByte(1, protowire.BytesType), k)
	}
	return appendVarint(append(b, tagByte(2, protowire.BytesType)), uint64(anyLen))
}

// anyValue writes an AnyValue: string 1, bool 2, int 3, double 4, array 5,
// kvlist 6, bytes 7; an EMPTY value is an AnyValue with none set.
func (e *otlpEncoder) anyValue(field protowire.Number, v attribute.Value) {
	m := e.open(field)
	switch v.Type() {
	case attribute.EMPTY:
	case attribute.BOOL:
		e.boolValue(v.AsBool())
	case attribute.INT64:
		e.intValue(v.AsInt64())
	case attribute.FLOAT64:
		e.doubleValue(v.AsFloat64())
	case attribute.STRING:
		e.stringValue(v.AsString())
	case attribute.BYTESLICE:
		e.tag(7, protowire.BytesType)
		e.buf = protowire.AppendBytes(e.buf, v.AsByteSlice())
	case attribute.BOOLSLICE:
		arrayValue(e, v.AsBoolSlice(), e.boolValue)
	case attribute.INT64SLICE:
		arrayValue(e, v.AsInt64Slice(), e.intValue)
	case attribute.FLOAT64SLICE:
		arrayValue(e, v.AsFloat64Slice(), e.doubleValue)
	case attribute.STRINGSLICE:
		arrayValue(e, v.AsStringSlice(), e.stringValue)
	case attribute.SLICE:
		a := e.open(5)
		for _, x := range v.AsSlice() {
			e.anyValue(1, x)
		}
		e.close(a)
	case attribute.MAP:
		kl := e.open(6)
		for _, kv := range v.AsMap() {
			e.keyValue(1, kv)
		}
		e.close(kl)
	default:
		e.stringValue("INVALID")
	}
	e.close(m)
}

// AnyValue oneof members: written even when zero (presence is the type).
func (e *otlpEncoder) stringValue(s string) {
	e.tag(1, protowire.BytesType)
	e.varint(uint64(len(s)))
	e.buf = append(e.buf, s...)
}

// arrayValue writes an ArrayValue (AnyValue field 5) whose elements are
// AnyValues written by put.
func arrayValue[T any](e *otlpEncoder, xs []T, put func(T)) {
	a := e.open(5)
	for _, x := range xs {
		el := e.open(1)
		put(x)
		e.close(el)
	}
	e.close(a)
}

func (e *otlpEncoder) boolValue(b bool) {
	e.tag(2, protowire.VarintType)
	e.varint(protowire.EncodeBool(b))
}

func (e *otlpEncoder) intValue(i int64) {
	e.tag(3, protowire.VarintType)
	e.varint(uint64(i))
}

func (e *otlpEncoder) doubleValue(f float64) {
	e.tag(4, protowire.Fixed64Type)
	e.buf = protowire.AppendFixed64(e.buf, math.Float64bits(f))
}

func (e *otlpEncoder) traceState(field protowire.Number, ts trace.TraceState) {
	if ts.Len() > 0 {
		e.str(field, ts.String())
	}
}

// Proto3 scalars: omitted when zero.

func (e *otlpEncoder) str(field protowire.Number, s string) {
	if s != "" {
		e.tag(field, protowire.BytesType)
		e.varint(uint64(len(s)))
		e.buf = append(e.buf, s...)
	}
}

func (e *otlpEncoder) bytes(field protowire.Number, b []byte) {
	if len(b) > 0 {
		e.tag(field, protowire.BytesType)
		e.buf = protowire.AppendBytes(e.buf, b)
	}
}

func (e *otlpEncoder) uint(field protowire.Number, v uint64) {
	if v != 0 {
		e.tag(field, protowire.VarintType)
		e.varint(v)
	}
}

func (e *otlpEncoder) fixed64(field protowire.Number, v uint64) {
	if v != 0 {
		e.tag(field, protowire.Fixed64Type)
		e.buf = protowire.AppendFixed64(e.buf, v)
	}
}

func (e *otlpEncoder) fixed32(field protowire.Number, v uint32) {
	if v != 0 {
		e.tag(field, protowire.Fixed32Type)
		e.buf = protowire.AppendFixed32(e.buf, v)
	}
}

// tagByte is the one-byte tag of a field below 16.
func tagByte(field protowire.Number, typ protowire.Type) byte { return byte(field)<<3 | byte(typ) }

// appendVarint is protowire.AppendVarint with the one-byte case inline.
func appendVarint(b []byte, v uint64) []byte {
	if v < 0x80 {
		return append(b, byte(v))
	}
	return protowire.AppendVarint(b, v)
}

// appendString appends a length-delimited field with a one-byte tag.
func appendString(b []byte, tag byte, s string) []byte {
	return append(appendVarint(append(b, tag), uint64(len(s))), s...)
}

// tag and varint append a field tag and a varint, with the one-byte case
// (every tag here, most lengths) inline: protowire's are function calls.
func (e *otlpEncoder) tag(field protowire.Number, typ protowire.Type) {
	if field < 16 {
		e.buf = append(e.buf, tagByte(field, typ))
		return
	}
	e.buf = protowire.AppendTag(e.buf, field, typ)
}

func (e *otlpEncoder) varint(v uint64) { e.buf = appendVarint(e.buf, v) }

// open starts an embedded message with a one-byte length placeholder and
// returns where its body starts; close fills the length in. Most messages
// (attributes) are shorter than 128 bytes; longer ones are shifted right
// once to make room, which costs less than sizing every message first.
func (e *otlpEncoder) open(field protowire.Number) int {
	e.tag(field, protowire.BytesType)
	e.buf = append(e.buf, 0)
	return len(e.buf)
}

func (e *otlpEncoder) close(start int) { e.closeAt(start, 1) }

var zeros [10]byte // a varint is at most 10 bytes

// closeAt writes the length of the message whose body starts at start
// into the width bytes reserved before it, moving the body when the
// length's varint is shorter or longer than that.
func (e *otlpEncoder) closeAt(start, width int) {
	n := len(e.buf) - start
	size := protowire.SizeVarint(uint64(n))
	switch {
	case size == width:
	case size < width:
		copy(e.buf[start-width+size:], e.buf[start:])
		e.buf = e.buf[:len(e.buf)-(width-size)]
	default:
		e.buf = append(e.buf, zeros[:size-width]...)
		copy(e.buf[start-width+size:], e.buf[start:start+n])
	}
	protowire.AppendVarint(e.buf[:start-width], uint64(n))
}
