package export

import (
	"context"
	"encoding/binary"
	"math/rand/v2"

	"go.opentelemetry.io/otel/trace"
)

// idKey carries the kernel-chosen identity of the span being started to the
// IDGenerator: the SDK offers no other way to start a span with given ids.
type idKey struct{}

func withSpanIdentity(ctx context.Context, sc trace.SpanContext) context.Context {
	if !sc.IsValid() {
		return ctx
	}
	return context.WithValue(ctx, idKey{}, sc)
}

func spanIdentity(ctx context.Context) (trace.SpanContext, bool) {
	sc, ok := ctx.Value(idKey{}).(trace.SpanContext)
	return sc, ok && sc.IsValid()
}

// kernelIDs takes ids from the context when the probe already chose them
// (they were propagated on the wire, so other services reference them) and
// draws random ones otherwise. math/rand/v2's global source is the runtime's
// per-thread ChaCha8 seeded from the OS: unpredictable, lock-free and fast.
type kernelIDs struct{}

func (kernelIDs) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	if sc, ok := spanIdentity(ctx); ok {
		return sc.TraceID(), sc.SpanID()
	}
	return randomTraceID(), randomSpanID()
}

func (kernelIDs) NewSpanID(ctx context.Context, tid trace.TraceID) trace.SpanID {
	if sc, ok := spanIdentity(ctx); ok && sc.TraceID() == tid {
		return sc.SpanID()
	}
	return randomSpanID()
}

func randomTraceID() trace.TraceID {
	var tid trace.TraceID
	for !tid.IsValid() {
		binary.NativeEndian.PutUint64(tid[:8], rand.Uint64())
		binary.NativeEndian.PutUint64(tid[8:], rand.Uint64())
	}
	return tid
}

func randomSpanID() trace.SpanID {
	var sid trace.SpanID
	for !sid.IsValid() {
		binary.NativeEndian.PutUint64(sid[:], rand.Uint64())
	}
	return sid
}
