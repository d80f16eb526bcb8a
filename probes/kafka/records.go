package kafka

import (
	"encoding/binary"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"go.opentelemetry.io/otel/trace"
)

// maxLinks bounds the producer contexts one span keeps.
const maxLinks = 64

// recordsInfo accumulates what a set of record batches holds.
type recordsInfo struct {
	count       int
	firstOffset int64
	haveOffset  bool
	// contexts are the distinct valid traceparent headers found, in order;
	// perRecord counts records that carried one (for the single-record case).
	contexts  []trace.SpanContext
	perRecord int
}

// Record batch v2 layout (https://kafka.apache.org/documentation/#recordbatch).
const (
	batchOverhead   = 12 // baseOffset int64 + batchLength int32
	batchMagicAt    = 16
	batchAttrsAt    = 21
	batchCountAt    = 57
	batchHeaderSize = 61
	attrCompression = 0x07
	attrControl     = 0x20
)

// addRecords decodes the RECORDS bytes of one partition. cut says the
// bytes are a capture prefix: a batch whose header is there still counts
// its records. Without cut, a trailing partial batch is the broker's
// max-bytes cut-off, which clients discard, so it does not count. budget
// is what the whole message may still inflate (see inflate.go).
func (ri *recordsInfo) addRecords(b []byte, cut bool, budget *int) {
	for len(b) >= batchOverhead {
		base := int64(binary.BigEndian.Uint64(b))
		length := int(int32(binary.BigEndian.Uint32(b[8:])))
		if length < 0 || len(b) <= batchMagicAt {
			return
		}
		whole := length <= len(b)-batchOverhead
		if !whole && !cut {
			return
		}
		end := len(b)
		if whole {
			end = batchOverhead + length
		}
		switch b[batchMagicAt] {
		case 2:
			ri.addBatchV2(b[:end], base, budget)
		case 0, 1:
			// Legacy message set entry: one message (a compressed
			// wrapper counts once).
			ri.note(base, 1)
		default:
			return
		}
		if !whole {
			return
		}
		b = b[end:]
	}
}

func (ri *recordsInfo) note(offset int64, n int) {
	if n <= 0 {
		return
	}
	if !ri.haveOffset {
		ri.firstOffset, ri.haveOffset = offset, true
	}
	ri.count += n
}

func (ri *recordsInfo) addBatchV2(b []byte, base int64, budget *int) {
	if len(b) < batchHeaderSize {
		return
	}
	attrs := binary.BigEndian.Uint16(b[batchAttrsAt:])
	if attrs&attrControl != 0 {
		return // transaction markers are not messages
	}
	n := int(int32(binary.BigEndian.Uint32(b[batchCountAt:])))
	if n <= 0 {
		return
	}
	first := base
	recs := b[batchHeaderSize:]
	if codec := int(attrs & attrCompression); codec != 0 {
		// The count is in the header; record headers only once inflated,
		// within the message's budget.
		if budget == nil || *budget <= 0 {
			ri.note(first, n)
			return
		}
		recs = inflate(codec, recs, min(maxInflate, *budget))
		*budget -= max(len(recs), len(b))
	}
	r := reader{b: recs}
	for i := 0; i < n && !r.bad && len(r.b) > 0; i++ {
		ln := r.varint()
		if r.bad || ln < 0 || ln > int64(len(r.b)) {
			break
		}
		rec := reader{b: r.take(int(ln))}
		rec.int8()   // attributes
		rec.varint() // timestamp delta
		delta := rec.varint()
		if i == 0 && !rec.bad {
			first = base + delta
		}
		ri.scanHeaders(&rec)
	}
	ri.note(first, n)
}

// scanHeaders skips key and value and looks for a traceparent header.
func (ri *recordsInfo) scanHeaders(r *reader) {
	for range 2 { // key, value
		if n := r.varint(); n > 0 {
			r.skip(int(min(n, int64(len(r.b))+1)))
		}
	}
	nh := r.varint()
	var tp, ts string
	for i := int64(0); i < nh && !r.bad; i++ {
		k := r.varBytes()
		v := r.varBytes()
		switch string(k) {
		case "traceparent":
			tp = string(v)
		case "tracestate":
			ts = string(v)
		}
	}
	if tp == "" {
		return
	}
	sc := probe.ParseTraceparent(tp, ts)
	if !sc.IsValid() {
		return
	}
	ri.perRecord++
	for _, have := range ri.contexts {
		if have.Equal(sc) {
			return
		}
	}
	if len(ri.contexts) < maxLinks {
		ri.contexts = append(ri.contexts, sc)
	}
}

// varBytes reads a varint-length byte string of a record (-1: null).
func (r *reader) varBytes() []byte {
	n := r.varint()
	if n < 0 || r.bad {
		return nil
	}
	if n > int64(len(r.b)) {
		r.bad, r.b = true, nil
		return nil
	}
	return r.take(int(n))
}
