package export

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracer-agent/tracer-agent/probes/probe"
)

// A probe span is finished when it reaches the exporter, so no
// TracerProvider is involved: its Start/SetAttributes/End (locks, option
// closures, copies, a recording span per span) cost more than the rest of
// the agent. What a provider decides is reproduced here, once, for every
// output: ids (spanIDs), sampling (the env sampler, same parameters), span
// kind validation, attribute validity, de-duplication and limits, link
// limits, zero timestamps.

var scope = instrumentation.Scope{Name: instrumentationName}

// decide returns the span to export, or false when the sampler drops it.
// The record shares s.Attrs when nothing had to change.
func (p *Pipeline) decide(s *probe.Span) (spanRecord, bool) {
	parent := s.Parent
	if parent.IsValid() && s.SpanContext.IsValid() && parent.TraceID() != s.SpanContext.TraceID() {
		// The span's own ids were propagated downstream; a parent of another
		// trace cannot be honoured with them, so the span becomes a root.
		parent = trace.SpanContext{}
	}
	tid, sid := spanIDs(s.SpanContext, parent)

	var links []sdktrace.Link
	for _, l := range s.Links {
		if l.IsValid() {
			links = append(links, sdktrace.Link{SpanContext: l})
		}
	}
	kind := trace.ValidateSpanKind(s.Kind)
	var sr sdktrace.SamplingResult
	if def, ok := p.sampler.(parentBasedAlwaysOn); ok {
		sr = def.sample(parent)
	} else {
		ctx := context.Background()
		if parent.IsValid() {
			ctx = trace.ContextWithSpanContext(ctx, parent)
		}
		var samplerLinks []trace.Link
		for _, l := range links {
			samplerLinks = append(samplerLinks, trace.Link{SpanContext: l.SpanContext})
		}
		sr = p.sampler.ShouldSample(sdktrace.SamplingParameters{
			ParentContext: ctx, TraceID: tid, Name: s.Name, Kind: kind, Attributes: s.Attrs, Links: samplerLinks,
		})
	}
	if sr.Decision != sdktrace.RecordAndSample {
		return spanRecord{}, false // RecordOnly spans are never exported either
	}
	droppedLinks := 0
	if lim := p.limits.LinkCountLimit; lim >= 0 && len(links) > lim {
		// The SDK's queue evicts the oldest.
		droppedLinks = len(links) - lim
		links = links[droppedLinks:]
	}

	attrs := s.Attrs
	if len(sr.Attributes) > 0 {
		attrs = append(append([]attribute.KeyValue(nil), sr.Attributes...), attrs...)
	}
	attrs, dropped := p.limitAttrs(attrs)

	start := s.Start
	if start.IsZero() {
		start = time.Now()
	}
	end := s.End
	if end.Before(s.Start) {
		end = s.Start
	}
	if end.IsZero() {
		end = time.Now()
	}
	r := spanRecord{
		name: s.Name,
		sc: trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: tid, SpanID: sid, TraceFlags: parent.TraceFlags() | trace.FlagsSampled, TraceState: sr.Tracestate,
		}),
		parent:       parent,
		kind:         kind,
		start:        start,
		end:          end,
		attrs:        attrs,
		droppedAttrs: dropped,
		links:        links,
		droppedLinks: droppedLinks,
	}
	if s.Error {
		r.status = sdktrace.Status{Code: codes.Error, Description: s.StatusMessage}
	}
	return r, true
}

// spanIDs picks the span's ids: the kernel's (they were propagated, so
// other services reference them) when they fit the parent's trace, random
// otherwise.
func spanIDs(own, parent trace.SpanContext) (trace.TraceID, trace.SpanID) {
	switch {
	case parent.IsValid() && own.IsValid() && own.TraceID() == parent.TraceID():
		return parent.TraceID(), own.SpanID()
	case parent.IsValid():
		return parent.TraceID(), randomSpanID()
	case own.IsValid():
		return own.TraceID(), own.SpanID()
	}
	return randomTraceID(), randomSpanID()
}

// limitAttrs applies what SetAttributes and snapshotting do: invalid
// attributes dropped, duplicate keys collapsed (first position, last
// value), the count and value-length limits. Probe attributes are almost
// always clean: then the slice is returned as is, without a copy.
func (p *Pipeline) limitAttrs(attrs []attribute.KeyValue) ([]attribute.KeyValue, int) {
	if p.attrsClean(attrs) {
		return attrs, 0
	}
	out := make([]attribute.KeyValue, 0, len(attrs))
	dropped := 0
	for _, a := range attrs {
		if !a.Valid() {
			dropped++
			continue
		}
		a, _ = p.truncate(a)
		if i := indexKey(out, a.Key); i >= 0 {
			out[i] = a
			continue
		}
		if lim := p.limits.AttributeCountLimit; lim >= 0 && len(out) >= lim {
			dropped++
			continue
		}
		out = append(out, a)
	}
	return out, dropped
}

func (p *Pipeline) attrsClean(attrs []attribute.KeyValue) bool {
	if lim := p.limits.AttributeCountLimit; lim >= 0 && len(attrs) > lim {
		return false
	}
	lengthLimit := p.limits.AttributeValueLengthLimit >= 0
	var seen uint64 // a bit per key hash: the linear search only on a hit
	for i := range attrs {
		a := &attrs[i]
		if !a.Valid() {
			return false
		}
		if bit := keyBit(a.Key); seen&bit == 0 {
			seen |= bit
		} else if indexKey(attrs[:i], a.Key) >= 0 {
			return false
		}
		if lengthLimit {
			if _, cut := p.truncate(*a); cut {
				return false
			}
		}
	}
	return true
}

// keyBit is one of 64 bits chosen by a key's length and two of its bytes:
// the span's keys (semconv names) rarely share one, so checking them for
// duplicates costs a few instructions a key instead of a search.
func keyBit(k attribute.Key) uint64 {
	n := uint(len(k)) // > 0: Valid
	return 1 << ((n ^ uint(k[n-1])<<1 ^ uint(k[n/2])<<3) & 63)
}

// indexKey is a linear search: spans carry a few dozen attributes at most,
// where this beats a map.
func indexKey(attrs []attribute.KeyValue, k attribute.Key) int {
	for i := range attrs {
		if attrs[i].Key == k {
			return i
		}
	}
	return -1
}

// truncate cuts string values to the value-length limit, in characters;
// it reports whether it cut anything.
func (p *Pipeline) truncate(a attribute.KeyValue) (attribute.KeyValue, bool) {
	lim := p.limits.AttributeValueLengthLimit
	if lim < 0 {
		return a, false
	}
	switch a.Value.Type() {
	case attribute.STRING:
		if v, cut := cutRunes(a.Value.AsString(), lim); cut {
			return a.Key.String(v), true
		}
	case attribute.STRINGSLICE:
		vs := a.Value.AsStringSlice() // a copy
		changed := false
		for i, v := range vs {
			if c, cut := cutRunes(v, lim); cut {
				vs[i], changed = c, true
			}
		}
		if changed {
			return a.Key.StringSlice(vs), true
		}
	}
	return a, false
}

// cutRunes keeps the first n characters of s (an invalid byte counts as one).
func cutRunes(s string, n int) (string, bool) {
	if len(s) <= n {
		return s, false
	}
	for i := range s {
		if n == 0 {
			return s[:i], true
		}
		n--
	}
	return s, false
}
