package probe

import (
	"encoding/hex"
	"strings"

	"go.opentelemetry.io/otel/trace"
)

// ParseTraceparent parses a W3C traceparent header value
// (https://www.w3.org/TR/trace-context/#traceparent-header). It returns an
// invalid SpanContext for anything the spec says to ignore, so callers start
// a new trace instead. tracestate is attached only when the parent is valid.
func ParseTraceparent(value, tracestate string) trace.SpanContext {
	v := strings.TrimSpace(value)
	// version(2) - trace-id(32) - parent-id(16) - flags(2); future versions may append "-..."
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return trace.SpanContext{}
	}
	ver, ok := hexByte(v[0:2])
	if !ok || ver == 0xff {
		return trace.SpanContext{}
	}
	if ver == 0 && len(v) != 55 {
		return trace.SpanContext{}
	}
	if ver > 0 && len(v) > 55 && v[55] != '-' {
		return trace.SpanContext{}
	}
	var tid trace.TraceID
	var sid trace.SpanID
	if !isLowerHex(v[3:35]) || !isLowerHex(v[36:52]) || !isLowerHex(v[53:55]) {
		return trace.SpanContext{}
	}
	if _, err := hex.Decode(tid[:], []byte(v[3:35])); err != nil {
		return trace.SpanContext{}
	}
	if _, err := hex.Decode(sid[:], []byte(v[36:52])); err != nil {
		return trace.SpanContext{}
	}
	flags, _ := hexByte(v[53:55])
	cfg := trace.SpanContextConfig{
		TraceID:    tid,
		SpanID:     sid,
		TraceFlags: trace.TraceFlags(flags) & trace.FlagsSampled,
		Remote:     true,
	}
	if ts, err := trace.ParseTraceState(strings.TrimSpace(tracestate)); err == nil {
		cfg.TraceState = ts
	}
	sc := trace.NewSpanContext(cfg)
	if !sc.IsValid() { // all-zero ids are invalid per spec
		return trace.SpanContext{}
	}
	return sc
}

// FormatTraceparent renders sc as a version-00 traceparent value.
func FormatTraceparent(sc trace.SpanContext) string {
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + sc.TraceFlags().String()
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func hexByte(s string) (byte, bool) {
	if !isLowerHex(s) {
		return 0, false
	}
	var b [1]byte
	if _, err := hex.Decode(b[:], []byte(s)); err != nil {
		return 0, false
	}
	return b[0], true
}
